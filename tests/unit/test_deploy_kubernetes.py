"""deploy/kubernetes checked against the worker it runs, without a cluster.

What would otherwise show only in a cluster, as pods that never get ready, a silent default or
an autoscaler watching the wrong thing: environment variables the settings object ignores,
ports and probe paths the worker does not serve, RocksDB state off the pod's volume, a KEDA
trigger on another consumer group or topic, and more workers than partitions.

The kustomizations are read here as kustomize reads them (resources, ConfigMap generators);
``kubectl kustomize`` builds them too when kubectl is installed, and ``kubernetes-validate``
checks the built objects against the Kubernetes API schemas when it is installed.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from deployfiles import WorkerFacts, worker_facts

from streams.journeys import load_journeys
from streams.settings import ENV_PREFIX, Settings
from streams.topics import topic_name

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "deploy" / "kubernetes"
BASE = KUBE / "base"
OVERLAYS = (KUBE, KUBE / "keda")  # what users apply: `kubectl apply -k DIR`
CREDENTIALS_EXAMPLE = BASE / "credentials.example.env"
SECRET_NAME = "frictionwatch-credentials"


# --- reading the kustomizations --------------------------------------------------------------


def read_env_file(path: Path, commented: bool = False) -> dict[str, str]:
    """``KEY=value`` lines as kustomize's ``envs`` reads them (``#`` lines are comments);
    with ``commented``, also the ``# KEY=value`` lines of an example file."""
    out: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if commented:
            line = line.removeprefix("#").strip()
        if not line or line.startswith("#") or "=" not in line or " " in line.split("=")[0]:
            continue
        key, _, value = line.partition("=")
        out[key] = value
    return out


@dataclass
class Built:
    """The objects a kustomization makes, and the files it read to make them."""

    objects: list[dict[str, Any]] = field(default_factory=list)
    files: set[Path] = field(default_factory=set)

    def one(self, kind: str, name: str | None = None) -> dict[str, Any]:
        found = [
            o for o in self.objects
            if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
        ]
        assert len(found) == 1, f"{kind} {name or ''}: {len(found)} found"
        return found[0]

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]


def build(directory: Path) -> Built:
    """What ``kubectl kustomize DIRECTORY`` makes (resources and ConfigMap generators, the
    features these files use), with generated names left without their hash suffix."""
    path = directory / "kustomization.yaml"
    spec = yaml.safe_load(path.read_text())
    out = Built(files={path})
    for entry in spec.get("resources", []):
        target = directory / entry
        if target.is_dir():
            sub = build(target)
            out.objects += sub.objects
            out.files |= sub.files
        else:
            out.objects += [d for d in yaml.safe_load_all(target.read_text()) if d]
            out.files.add(target)
    for gen in spec.get("configMapGenerator", []):
        data: dict[str, str] = {}
        for env in gen.get("envs", []):
            data.update(read_env_file(directory / env))
            out.files.add(directory / env)
        for file in gen.get("files", []):
            key, _, source = file.rpartition("=") if "=" in file else ("", "", file)
            data[key or Path(source).name] = (directory / source).read_text()
            out.files.add(directory / source)
        out.objects.append({"apiVersion": "v1", "kind": "ConfigMap",
                            "metadata": {"name": gen["name"]}, "data": data})
    return out


@functools.cache
def built(directory: Path) -> Built:
    return build(directory)


@pytest.fixture(scope="module")
def base() -> Built:
    return built(BASE)


@pytest.fixture(scope="module")
def statefulset(base: Built) -> dict[str, Any]:
    return base.one("StatefulSet")


@pytest.fixture(scope="module")
def pod(statefulset: dict[str, Any]) -> dict[str, Any]:
    return statefulset["spec"]["template"]


@pytest.fixture(scope="module")
def container(pod: dict[str, Any]) -> dict[str, Any]:
    (worker,) = [c for c in pod["spec"]["containers"] if c["name"] == "worker"]
    return worker


@pytest.fixture(scope="module")
def settings_env(base: Built, container: dict[str, Any]) -> dict[str, str]:
    """FRICTIONWATCH_* as the worker container gets them: its ConfigMaps, then its own env."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(base.one("ConfigMap", source["configMapRef"]["name"])["data"])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
    return env


def settings_from(env: dict[str, str]) -> Settings:
    """The Settings a process with exactly these FRICTIONWATCH_* variables builds."""
    with pytest.MonkeyPatch.context() as mp:
        for key in list(os.environ):
            if key.startswith(ENV_PREFIX):
                mp.delenv(key)
        for key, value in env.items():
            mp.setenv(key, value)
        return Settings(_env_file=None)  # type: ignore[call-arg]


@pytest.fixture(scope="module")
def settings(settings_env: dict[str, str]) -> Settings:
    return settings_from(settings_env)


@pytest.fixture(scope="module")
def facts(settings: Settings) -> WorkerFacts:
    # The pod reads the journeys from its ConfigMap, made from this file (checked below).
    local = settings.model_copy(update={"journeys_file": BASE / "journeys.yaml"})
    return worker_facts(local)


def mount_for(pod: dict[str, Any], container: dict[str, Any], path: str) -> tuple[str, str]:
    """(volume name, path inside that volume) of a path in the container."""
    p = PurePosixPath(path)
    best: tuple[str, str] | None = None
    best_len = -1
    for m in container.get("volumeMounts", []):
        t = PurePosixPath(m["mountPath"])
        if (p == t or t in p.parents) and len(t.parts) > best_len:
            best, best_len = (m["name"], str(p.relative_to(t))), len(t.parts)
    assert best is not None, f"{path} is on no volume of the container"
    return best


def named_port(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container["ports"] if p.get("name") == port]
    return int(number)


# --- the kustomizations ----------------------------------------------------------------------


@pytest.mark.parametrize("directory", OVERLAYS, ids=lambda p: str(p.relative_to(ROOT)))
def test_kustomization_reads_only_existing_files(directory: Path) -> None:
    result = build(directory)  # raises on a file that is missing
    assert result.one("StatefulSet", "frictionwatch-worker")
    for path in result.files:
        assert path.is_file(), path


def test_every_manifest_is_applied_by_some_kustomization() -> None:
    read = set().union(*(built(d).files for d in OVERLAYS))
    on_disk = {p for p in KUBE.rglob("*") if p.is_file() and p.suffix in (".yaml", ".env")}
    on_disk.discard(BASE / "credentials.env")  # a user's real one, ignored by git
    # The example is for `kubectl create secret`, never applied: real values stay out of git.
    assert on_disk - read == {CREDENTIALS_EXAMPLE}


def test_keda_overlay_is_the_base_plus_a_scaled_object() -> None:
    plain, keda = built(KUBE), built(KUBE / "keda")
    assert [o["kind"] for o in keda.objects if o not in plain.objects] == ["ScaledObject"]
    assert not plain.all("ScaledObject") and not plain.all("HorizontalPodAutoscaler")


# --- settings --------------------------------------------------------------------------------


def test_env_names_are_settings_fields(
    settings_env: dict[str, str], container: dict[str, Any]
) -> None:
    fields = set(Settings.model_fields)
    names = set(settings_env) | {e["name"] for e in container.get("env", [])}
    names |= set(read_env_file(CREDENTIALS_EXAMPLE, commented=True))
    assert names
    for name in names:
        # Settings ignores unknown variables (extra="ignore"): a typo would pass silently.
        assert name.startswith(ENV_PREFIX), name
        assert name[len(ENV_PREFIX):].lower() in fields, f"{name} is not a Settings field"


def test_settings_validate_and_leave_the_defaults_that_cannot_work_in_a_pod(
    settings: Settings, settings_env: dict[str, str]
) -> None:
    for key, value in settings_env.items():
        got = getattr(settings, key[len(ENV_PREFIX):].lower())
        assert str(got) == value or got == type(got)(value), (key, value, got)
    # Unset, the worker would start an embedded broker and listen on loopback only.
    assert settings.bootstrap_list
    assert settings.web_host == "0.0.0.0"


def test_credentials_come_from_the_secret_and_never_from_the_config_map(
    settings_env: dict[str, str], container: dict[str, Any]
) -> None:
    secret_fields = {name for name, f in Settings.model_fields.items() if f.repr is False}
    secret_fields |= {"sasl_password", "customer_salt"}
    example = {k[len(ENV_PREFIX):].lower() for k in read_env_file(CREDENTIALS_EXAMPLE, True)}
    assert secret_fields <= example, f"not in the example: {secret_fields - example}"
    leaked = {k for k in settings_env if k[len(ENV_PREFIX):].lower() in secret_fields}
    assert not leaked, f"credentials in the ConfigMap: {leaked}"
    # Each example line is commented out: copied as it is, it changes nothing.
    assert read_env_file(CREDENTIALS_EXAMPLE) == {}
    refs = [s["secretRef"] for s in container.get("envFrom", []) if "secretRef" in s]
    assert refs == [{"name": SECRET_NAME, "optional": True}]
    ignored = (KUBE / "base" / ".gitignore").read_text().split()
    assert "credentials.env" in ignored


def test_journeys_file_is_mounted_from_its_config_map_and_loads(
    base: Built, pod: dict[str, Any], container: dict[str, Any], settings: Settings
) -> None:
    assert settings.journeys_file is not None
    volume_name, key = mount_for(pod, container, str(settings.journeys_file))
    (volume,) = [v for v in pod["spec"]["volumes"] if v["name"] == volume_name]
    config_map = base.one("ConfigMap", volume["configMap"]["name"])
    assert key in config_map["data"]
    local = BASE / key
    assert config_map["data"][key] == local.read_text()
    assert load_journeys(local)


# --- the worker pods -------------------------------------------------------------------------


def test_ports_are_the_settings_web_port(
    base: Built, container: dict[str, Any], pod: dict[str, Any], settings: Settings,
    facts: WorkerFacts,
) -> None:
    assert [p["containerPort"] for p in container["ports"]] == [settings.web_port]
    annotations = pod["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == settings.web_port
    assert annotations["prometheus.io/path"] in facts.routes
    for service in base.all("Service"):
        for port in service["spec"]["ports"]:
            assert named_port(container, port["targetPort"]) == settings.web_port, service


def test_probes_ask_the_worker_s_health_routes(
    container: dict[str, Any], settings: Settings, facts: WorkerFacts
) -> None:
    probes = {k: container[k]["httpGet"] for k in ("livenessProbe", "readinessProbe")}
    # Liveness restarts a process that stopped serving; readiness (broker, partitions,
    # agents) only takes the pod out of the collector Service.
    assert probes["livenessProbe"]["path"] == "/health/live"
    assert probes["readinessProbe"]["path"] == "/health"
    startup = container.get("startupProbe", {}).get("httpGet")
    for probe in [*probes.values(), *([startup] if startup else [])]:
        assert probe["path"] in facts.routes, f"the worker serves no {probe['path']}"
        assert named_port(container, probe["port"]) == settings.web_port
    # The readiness page waits up to streams.health.BROKER_PROBE_TIMEOUT for the broker.
    from streams.health import BROKER_PROBE_TIMEOUT

    readiness = container["readinessProbe"]
    assert readiness["timeoutSeconds"] > BROKER_PROBE_TIMEOUT
    # A rebalance leaves workers without partitions for seconds; that alone must not empty
    # the collector Service.
    assert readiness["periodSeconds"] * readiness["failureThreshold"] >= 20


def test_state_is_rocksdb_on_the_pod_s_own_volume(
    statefulset: dict[str, Any], pod: dict[str, Any], container: dict[str, Any],
    settings: Settings,
) -> None:
    assert settings.store == "rocksdb://"
    volume_name, _ = mount_for(pod, container, str(settings.data_dir))
    claims = {t["metadata"]["name"]: t for t in statefulset["spec"]["volumeClaimTemplates"]}
    # A claim per pod (not a pod volume, not one shared claim): RocksDB tables and model
    # checkpoints (data_dir/models) survive restarts and rescheduling, one worker's each.
    assert volume_name in claims
    assert claims[volume_name]["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert volume_name not in {v["name"] for v in pod["spec"].get("volumes", [])}
    retention = statefulset["spec"].get("persistentVolumeClaimRetentionPolicy", {})
    assert retention.get("whenScaled", "Retain") == "Retain"


def test_pods_run_as_the_image_s_user_and_own_their_volume(pod: dict[str, Any]) -> None:
    from test_compose import final_stage

    user = [args for ins, args in final_stage() if ins == "USER"][-1]
    uid, _, gid = user.partition(":")
    ctx = pod["spec"]["securityContext"]
    assert ctx["runAsNonRoot"] is True
    assert str(ctx["runAsUser"]) == uid and str(ctx["runAsGroup"]) == (gid or uid)
    assert str(ctx["fsGroup"]) == (gid or uid)  # the claim's files are writable by the worker


def test_services_and_budget_select_the_worker_pods(
    base: Built, statefulset: dict[str, Any], pod: dict[str, Any]
) -> None:
    labels = pod["metadata"]["labels"]
    spec = statefulset["spec"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    services = {s["metadata"]["name"]: s["spec"] for s in base.all("Service")}
    assert services[spec["serviceName"]]["clusterIP"] == "None"  # the governing Service
    assert any(s.get("clusterIP") != "None" for s in services.values()), "no collector Service"
    for service in services.values():
        assert service["selector"].items() <= labels.items()
    budget = base.one("PodDisruptionBudget")
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert budget["spec"].get("maxUnavailable") == 1


# --- scale: partitions and KEDA --------------------------------------------------------------


#: The kafka scaler's trigger metadata (KEDA 2.x, pkg/scalers/apache_kafka_scaler.go).
KAFKA_SCALER_PARAMETERS = {
    "bootstrapServers", "consumerGroup", "topic", "lagThreshold", "activationLagThreshold",
    "offsetResetPolicy", "allowIdleConsumers", "excludePersistentLag",
    "scaleToZeroOnInvalidOffset", "limitToPartitionsWithLag", "partitionLimitation",
    "version", "sasl", "tls",
}


@pytest.fixture(scope="module")
def scaled_object() -> dict[str, Any]:
    return built(KUBE / "keda").one("ScaledObject")


def test_replicas_never_exceed_partitions(
    statefulset: dict[str, Any], scaled_object: dict[str, Any], settings: Settings
) -> None:
    # A worker beyond the partition count gets none: never ready, and a rolling update
    # waits for it forever.
    assert 1 <= statefulset["spec"]["replicas"] <= settings.partitions
    spec = scaled_object["spec"]
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"] <= settings.partitions


def test_keda_scales_the_worker_statefulset(
    statefulset: dict[str, Any], scaled_object: dict[str, Any]
) -> None:
    assert scaled_object["apiVersion"] == "keda.sh/v1alpha1"
    target = scaled_object["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"]) == ("apps/v1", "StatefulSet")
    assert target["name"] == statefulset["metadata"]["name"]


def test_keda_triggers_watch_the_worker_s_group_and_topics(
    scaled_object: dict[str, Any], settings: Settings, facts: WorkerFacts
) -> None:
    triggers = scaled_object["spec"]["triggers"]
    assert triggers
    watched = set()
    for trigger in triggers:
        assert trigger["type"] == "kafka"
        meta = trigger["metadata"]
        # KEDA's CRD takes strings only; its kafka scaler ignores names it does not know.
        assert all(isinstance(v, str) for v in meta.values()), meta
        assert set(meta) <= KAFKA_SCALER_PARAMETERS, set(meta) - KAFKA_SCALER_PARAMETERS
        assert meta["bootstrapServers"] == settings.bootstrap_servers
        assert meta["topic"] in facts.consumed_topics, f"the worker does not read {meta['topic']}"
        # The lag KEDA reads is the lag of the group that reads the topic: Faust's for the
        # agents' topics, the ingest stage's own for the ingest topic.
        assert meta["consumerGroup"] == facts.group_of[meta["topic"]], meta
        assert int(meta["lagThreshold"]) > 0
        # What a new group reads first: the worker's own choice (all of the topic).
        assert meta.get("offsetResetPolicy", "latest") == facts.auto_offset_reset
        # No worker beyond a topic's partitions (the scaler's cap besides maxReplicaCount).
        assert meta.get("allowIdleConsumers", "false") == "false"
        watched.add(meta["topic"])
    # The raw input and the per-session work, where lag shows first.
    assert {topic_name("ingest", settings.topic_prefix),
            topic_name("web_events", settings.topic_prefix)} <= watched


# --- the tools: kustomize and the Kubernetes API schemas ---------------------------------------


def kustomize(directory: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if not kubectl:
        pytest.skip("kubectl is not installed")
    proc = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


@pytest.mark.parametrize("directory", OVERLAYS, ids=lambda p: str(p.relative_to(ROOT)))
def test_kubectl_kustomize_builds_what_these_tests_read(directory: Path) -> None:
    objects = kustomize(directory)
    ours = build(directory).objects

    def names(objs: list[dict[str, Any]], hashed: bool) -> list[tuple[str, str]]:
        # Generated ConfigMaps get a content hash: "frictionwatch-settings-5h8k9m2f7c".
        return sorted(
            (o["kind"], o["metadata"]["name"].rsplit("-", 1)[0]
             if hashed and o["kind"] == "ConfigMap" else o["metadata"]["name"]) for o in objs
        )

    assert names(objects, hashed=True) == names(ours, hashed=False)
    generated = {o["metadata"]["name"] for o in objects if o["kind"] == "ConfigMap"}
    sts = next(o for o in objects if o["kind"] == "StatefulSet")
    pod = sts["spec"]["template"]["spec"]
    refs = {v["configMap"]["name"] for v in pod["volumes"] if "configMap" in v}
    refs |= {s["configMapRef"]["name"] for c in pod["containers"]
             for s in c.get("envFrom", []) if "configMapRef" in s}
    assert refs and refs <= generated  # kustomize rewrote the references to the hashed names
    for obj in objects:
        if obj["kind"] == "ConfigMap":
            mine = next(o for o in ours if o["kind"] == "ConfigMap"
                        and obj["metadata"]["name"].startswith(o["metadata"]["name"] + "-"))
            assert obj["data"] == mine["data"]


@pytest.mark.parametrize("directory", OVERLAYS, ids=lambda p: str(p.relative_to(ROOT)))
def test_objects_match_the_kubernetes_api_schemas(directory: Path) -> None:
    validate = pytest.importorskip("kubernetes_validate")
    checked = 0
    for obj in kustomize(directory):
        if obj["apiVersion"].startswith("keda.sh/"):
            continue  # a custom resource: checked field by field above
        # strict: a misspelt or misplaced field fails instead of being dropped by the server.
        validate.validate(obj, "1.30.0", strict=True)
        checked += 1
    assert checked >= 5


# --- deliver ---------------------------------------------------------------------------------


def test_deliver_runs_one_pod_on_its_own_volume_with_the_worker_s_settings(base: Built) -> None:
    deployment = base.one("Deployment", "frictionwatch-deliver")
    spec = deployment["spec"]
    # Its journal of deliveries is on a ReadWriteOnce volume: one pod, never two at once.
    assert spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate"
    pod = spec["template"]
    assert spec["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    (container,) = pod["spec"]["containers"]
    assert container["args"] == ["deliver"]
    from streams.cli import app as cli_app

    assert "deliver" in {c.name for c in cli_app.registered_commands}
    env: dict[str, str] = {}
    for source in container["envFrom"]:
        if "configMapRef" in source:
            env.update(base.one("ConfigMap", source["configMapRef"]["name"])["data"])
    env.update({e["name"]: e["value"] for e in container.get("env", [])})
    for name in env:
        assert name[len(ENV_PREFIX):].lower() in Settings.model_fields, name
    settings = settings_from(env)
    assert named_port(container, "metrics") == settings.deliver_metrics_port
    assert settings.web_host == "0.0.0.0"  # Prometheus reaches /metrics
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(
        settings.deliver_metrics_port)
    volume, _ = mount_for(pod, container, str(settings.data_dir))
    (claim,) = [v["persistentVolumeClaim"]["claimName"] for v in pod["spec"]["volumes"]
                if v["name"] == volume]
    assert base.one("PersistentVolumeClaim", claim)["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert any(s.get("secretRef", {}).get("name") == SECRET_NAME for s in container["envFrom"])
