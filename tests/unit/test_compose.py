"""The docker-compose stack, its Dockerfile and deploy/, checked without Docker.

What a typo would break at ``docker compose up`` time, caught here instead: environment
variables the settings object would silently ignore, ports and addresses that disagree between
Kafka, the worker and Prometheus, mounts of files that do not exist, a worker that cannot be
scaled, and dashboard or alert queries on metrics the worker does not export.
``test_deploy_tools.py`` runs the real promtool and amtool on the same files.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import os
import re
import shlex
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import typer
import yaml
from deployfiles import (
    SYNTHETIC,
    alert_rules,
    all_exprs,
    exported_series,
    panels_of,
    promql_names,
    recorded_series,
    rule_files,
)

from streams.cli import app as cli_app
from streams.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = ROOT / "docker-compose.yml"
PROMETHEUS_FILE = DEPLOY / "prometheus" / "prometheus.yml"
RULE_TEST_FILES = sorted((DEPLOY / "prometheus" / "tests").glob("*.yml"))
DASHBOARD_FILES = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
DATASOURCE_FILES = sorted((DEPLOY / "grafana" / "provisioning" / "datasources").glob("*.yml"))
DASHBOARD_PROVIDER_FILES = sorted(
    (DEPLOY / "grafana" / "provisioning" / "dashboards").glob("*.yml")
)

IMAGE_SERVICES = ("worker", "simulator", "deliver")  # services that run the frictionwatch image


# --- loading -------------------------------------------------------------------------------


def _load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return _load_yaml(COMPOSE_FILE)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture(scope="module")
def prometheus() -> dict[str, Any]:
    return _load_yaml(PROMETHEUS_FILE)


_INTERPOLATION = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def interpolate(value: Any) -> str:
    """Compose's ``${VAR:-default}`` with nothing set in the environment: the default."""
    return _INTERPOLATION.sub(lambda m: m.group(2) or "", str(value)).replace("$$", "$")


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: interpolate(v) for k, v in env.items()}


def _volume(entry: str | dict[str, Any]) -> tuple[str, str, str]:
    """(type, source, target) of a short or long volume entry."""
    if isinstance(entry, dict):
        return entry["type"], entry.get("source", ""), entry["target"]
    parts = entry.split(":")
    if len(parts) == 1:
        return "volume", "", parts[0]
    source, target = parts[0], parts[1]
    kind = "bind" if source.startswith((".", "/", "~")) else "volume"
    return kind, source, target


def binds(service: dict[str, Any]) -> list[tuple[Path, str]]:
    """(host path, container path) of each bind mount; host paths relative to the repo."""
    out = []
    for entry in service.get("volumes", []):
        kind, source, target = _volume(entry)
        if kind == "bind":
            out.append(((ROOT / source).resolve(), target))
    return out


def host_path(service: dict[str, Any], container_path: str) -> Path | None:
    """Where a path inside the container comes from on the host, through the bind mounts."""
    p = PurePosixPath(container_path)
    for source, target in binds(service):
        t = PurePosixPath(target)
        if p == t or t in p.parents:
            return source / p.relative_to(t)
    return None


def command(service: dict[str, Any]) -> list[str]:
    cmd = service.get("command", [])
    return shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]


def flag(service: dict[str, Any], name: str) -> str:
    """Value of ``--name=value`` in a service's command."""
    for arg in command(service):
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
    raise AssertionError(f"--{name} is not set in {command(service)}")


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


def listeners(value: str) -> dict[str, tuple[str, int]]:
    """``NAME://host:port,...`` -> {NAME: (host, port)}."""
    out = {}
    for item in value.split(","):
        name, _, address = item.strip().partition("://")
        out[name] = _host_port(address)
    return out


def settings_for(service: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The Settings a frictionwatch container builds from its image's and compose's env."""
    for key in list(os.environ):
        if key.startswith(ENV_PREFIX):
            monkeypatch.delenv(key)
    for key, value in {**dockerfile_env(), **environment(service)}.items():
        if key.startswith(ENV_PREFIX):
            monkeypatch.setenv(key, value)
    return Settings(_env_file=None)  # type: ignore[call-arg]


# --- the Dockerfile ------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order; comment lines dropped, continuations joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        instruction, _, args = line.partition(" ")
        out.append((instruction.upper(), args.strip()))
    return out


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (ins, _) in enumerate(instructions) if ins == "FROM")
    return instructions[last_from:]


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for ins, args in final_stage():
        if ins == "ENV":
            for token in shlex.split(args):
                key, _, value = token.partition("=")
                env[key] = value
    return env


def dockerignored(rel: str) -> bool:
    """Whether .dockerignore keeps ``rel`` (a path relative to the repo) out of the context.

    Docker's rule: the last pattern that matches the path or one of its parents decides.
    """
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    parts = PurePosixPath(rel).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern.lstrip("!").strip("/")
        candidates = [pat]
        if pat.startswith("**/"):
            candidates.append(pat[3:])
        for prefix in prefixes:
            names = [prefix] + ["/".join(prefix.split("/")[i:]) for i in range(1, len(parts))]
            if any(fnmatch.fnmatchcase(n, c) for n in names for c in candidates):
                ignored = not negate
                break
    return ignored


def cli_command() -> Any:
    """The ``frictionwatch`` command group (typer's, click-compatible)."""
    return typer.main.get_command(cli_app)


def parse_cli(args: list[str]) -> None:
    """Parse a ``frictionwatch`` command line as the CLI would, without running it."""
    group = cli_command()
    name, *rest = args
    if name not in group.commands:
        raise LookupError(name)
    group.commands[name].make_context(name, list(rest))


# --- compose: the services -----------------------------------------------------------------


def test_compose_declares_the_stack(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) >= {
        "kafka",
        "worker",
        "simulator",
        "prometheus",
        "alertmanager",
        "grafana",
    }
    assert compose["services"]["kafka"]["image"].startswith("apache/kafka:4.")
    for name in ("prometheus", "alertmanager", "grafana"):
        image = compose["services"][name]["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name}: pin a version"


def test_bind_mounts_exist_in_the_repo(services: dict[str, dict[str, Any]]) -> None:
    mounted = 0
    for name, service in services.items():
        for source, target in binds(service):
            assert source.exists(), f"{name}: {source} (mounted at {target}) does not exist"
            assert source.is_relative_to(ROOT), f"{name}: mounts {source} from outside the repo"
            mounted += 1
    assert mounted >= 4  # prometheus, alertmanager, grafana provisioning and dashboards


def test_named_volumes_are_declared(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    declared = set(compose.get("volumes") or {})
    for name, service in services.items():
        for entry in service.get("volumes", []):
            kind, source, target = _volume(entry)
            if kind == "volume" and source:
                assert source in declared, f"{name}: volume {source} is not declared"
    for name in ("kafka", "prometheus", "alertmanager", "grafana"):
        assert any(_volume(v)[0] == "volume" for v in services[name].get("volumes", [])), (
            f"{name} keeps its data in a named volume"
        )


def test_image_services_build_this_repo(services: dict[str, dict[str, Any]]) -> None:
    for name in IMAGE_SERVICES:
        build = services[name]["build"]
        context = ROOT / (build if isinstance(build, str) else build.get("context", "."))
        dockerfile = (
            build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else ("Dockerfile")
        )
        assert (context / dockerfile).is_file()
        assert services[name]["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_frictionwatch_env_vars_are_settings(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    fields = set(Settings.model_fields)
    env = {**dockerfile_env()}
    for name in IMAGE_SERVICES:
        env.update(environment(services[name]))
    ours = [k for k in env if k.startswith(ENV_PREFIX)]
    assert ours, "compose sets no FRICTIONWATCH_* variable"
    for key in ours:
        # Settings ignores unknown variables (extra="ignore"), so a typo would pass silently.
        assert key[len(ENV_PREFIX) :].lower() in fields, f"{key} is not a Settings field"
    for name in IMAGE_SERVICES:
        settings = settings_for(services[name], monkeypatch)  # validates every value
        for key, value in environment(services[name]).items():
            if key.startswith(ENV_PREFIX):
                got = getattr(settings, key[len(ENV_PREFIX) :].lower())
                assert str(got) == value or got == type(got)(value), (key, value, got)


def test_worker_web_port_agrees_everywhere(
    services: dict[str, dict[str, Any]],
    prometheus: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    worker = services["worker"]
    port = settings_for(worker, monkeypatch).web_port
    assert port == Settings(_env_file=None).web_port  # type: ignore[call-arg]
    # Prometheus scrapes it, the Dockerfile exposes it, compose exposes it.
    job = next(j for j in prometheus["scrape_configs"] if j["job_name"] == "frictionwatch")
    assert all(sd["port"] == port for sd in job["dns_sd_configs"])
    exposed = {
        int(a.split("/")[0]) for ins, args in final_stage() if ins == "EXPOSE" for a in args.split()
    }
    assert port in exposed
    assert {int(str(p)) for p in worker.get("expose", [])} <= {port}
    # The healthcheck asks the same port (its fallback when the variable is unset included).
    check = " ".join(worker["healthcheck"]["test"])
    assert "/health" in check and (f"'{port}'" in check or f":{port}/" in check)


def test_kafka_advertises_what_the_workers_bootstrap_from(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    kafka = services["kafka"]
    env = environment(kafka)
    listen = listeners(env["KAFKA_LISTENERS"])
    advertised = listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    in_network = {
        name: hp
        for name, hp in advertised.items()
        if hp[0] in ("kafka", kafka.get("hostname", "kafka"))
    }
    assert in_network, "no listener is advertised under the service name"
    for name, (_host, port) in advertised.items():
        assert listen[name][1] == port, f"{name} is advertised on a port it does not listen on"
    for svc in IMAGE_SERVICES:
        settings = settings_for(services[svc], monkeypatch)
        assert settings.bootstrap_list
        for server in settings.bootstrap_list:
            assert _host_port(server) in in_network.values(), (
                f"{svc} bootstraps from {server}; Kafka advertises {advertised}"
            )
        # One broker: topics frictionwatch creates cannot have more replicas.
        assert settings.replication_factor == 1


def test_kafka_is_a_single_kraft_node(services: dict[str, dict[str, Any]]) -> None:
    env = environment(services["kafka"])
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    voter_id, _, voter = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].partition("@")
    assert voter_id == env["KAFKA_NODE_ID"]
    assert _host_port(voter)[1] == listeners(env["KAFKA_LISTENERS"])[controller][1]
    assert controller not in listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    protocols = dict(p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(listeners(env["KAFKA_LISTENERS"])) <= set(protocols)
    for key, value in env.items():
        if key.endswith("REPLICATION_FACTOR") or key.endswith("MIN_ISR"):
            assert value == "1", f"{key}={value} on a single broker"
    assert env["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"] == "0"
    # kafka-storage.sh accepts only a 16-byte id in URL-safe base64.
    assert len(base64.urlsafe_b64decode(env["CLUSTER_ID"] + "==")) == 16
    check = " ".join(services["kafka"]["healthcheck"]["test"])
    assert "/opt/kafka/bin/kafka-broker-api-versions.sh" in check


def test_worker_can_be_scaled(services: dict[str, dict[str, Any]]) -> None:
    worker = services["worker"]
    # `docker compose up --scale worker=3` fails on a fixed name or a fixed host port.
    assert "container_name" not in worker
    for port in worker.get("ports", []):
        spec = port if isinstance(port, str) else str(port.get("published", ""))
        if isinstance(port, dict):
            assert not port.get("published"), f"worker publishes host port {spec}"
        else:
            assert ":" not in spec, f"worker publishes a fixed host port: {spec}"
    assert "profiles" not in worker  # part of the default stack


def test_simulator_is_behind_a_profile(services: dict[str, dict[str, Any]]) -> None:
    simulator = services["simulator"]
    assert simulator.get("profiles") == ["simulator"]
    assert command(simulator)[0] == "simulate"
    assert "container_name" not in simulator


@pytest.mark.parametrize("service", IMAGE_SERVICES)
def test_service_command_parses_with_the_cli(
    services: dict[str, dict[str, Any]], service: str
) -> None:
    args = command(services[service])
    try:
        parse_cli(args)
    except LookupError:
        pytest.skip(f"`frictionwatch {args[0]}` is not registered in the CLI yet")


# --- the Dockerfile ------------------------------------------------------------------------


def test_dockerfile_builds_on_python_311_slim() -> None:
    instructions = dockerfile_instructions()
    stages: set[str] = set()
    for ins, args in instructions:
        if ins == "FROM":
            tokens = [t for t in args.split() if not t.startswith("--")]
            image = tokens[0]
            assert image in stages or image.startswith("python:3.11-slim"), image
            if len(tokens) == 3 and tokens[1].upper() == "AS":
                stages.add(tokens[2])
    final_image = final_stage()[0][1].split()[0]
    assert final_image.startswith("python:3.11-slim")


def test_dockerfile_installs_the_project_with_pip() -> None:
    runs = [args for ins, args in dockerfile_instructions() if ins == "RUN"]
    # The project itself (".") is built or installed with pip ...
    assert any(re.search(r"\bpip (?:install|wheel)\b.*\s\.(?:\s|$)", r) for r in runs), runs
    # ... and installed in the image that runs.
    assert any(re.search(r"\bpip install\b", a) for ins, a in final_stage() if ins == "RUN")
    # Every package pyproject builds is copied into the build.
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    copied = {
        src.rstrip("/")
        for ins, args in dockerfile_instructions()
        if ins == "COPY" and "--from" not in args
        for src in shlex.split(args)[:-1]
        if not src.startswith("--")
    }
    assert "pyproject.toml" in copied
    for pattern in include:
        assert pattern.rstrip("*").rstrip(".") in copied, f"package {pattern} is not copied"


def test_dockerfile_copies_only_what_exists_and_is_not_ignored() -> None:
    for ins, args in dockerfile_instructions():
        if ins != "COPY" or "--from" in args:
            continue
        for src in shlex.split(args)[:-1]:
            if src.startswith("--"):
                continue
            matches = list(ROOT.glob(src))
            if not any(c in src for c in "*?["):
                assert matches, f"COPY {src}: no such file"
            for match in matches:
                files = (
                    [match]
                    if match.is_file()
                    else [f for f in match.rglob("*.py") if "__pycache__" not in f.parts]
                )
                for f in files:
                    rel = f.relative_to(ROOT).as_posix()
                    assert not dockerignored(rel), f"COPY {src}: .dockerignore drops {rel}"
    # The context stays small: no git history, tests or local state.
    for rel in (".git/HEAD", "tests/conftest.py", "var/frictionwatch/x", "deploy/prometheus"):
        assert dockerignored(rel), rel


def test_dockerfile_runs_frictionwatch_worker_as_non_root() -> None:
    stage = final_stage()
    users = [args for ins, args in stage if ins == "USER"]
    assert users, "the image runs as root"
    assert users[-1].split(":")[0] not in ("root", "0")
    entrypoint = [json.loads(args) for ins, args in stage if ins == "ENTRYPOINT"]
    cmd = [json.loads(args) for ins, args in stage if ins == "CMD"]
    assert entrypoint[-1] == ["frictionwatch"]
    assert cmd[-1] == ["worker"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "frictionwatch" in scripts
    parse_cli(cmd[-1])
    settings_dir = Path(dockerfile_env()[f"{ENV_PREFIX}DATA_DIR"])
    assert settings_dir.is_absolute(), "the default data dir is relative to a root-owned cwd"


# --- Prometheus, Alertmanager, Grafana wiring ----------------------------------------------


def test_prometheus_scrapes_every_worker(
    services: dict[str, dict[str, Any]], prometheus: dict[str, Any]
) -> None:
    job = next(j for j in prometheus["scrape_configs"] if j["job_name"] == "frictionwatch")
    assert job.get("metrics_path", "/metrics") == "/metrics"  # streams/app.py serves it there
    assert "static_configs" not in job, "static targets do not follow --scale"
    (sd,) = job["dns_sd_configs"]
    assert sd["type"] == "A" and sd["names"] == ["worker"]
    assert all(name in services for name in sd["names"])


def test_prometheus_sends_alerts_to_alertmanager_and_loads_rules(
    services: dict[str, dict[str, Any]], prometheus: dict[str, Any]
) -> None:
    targets = [
        t
        for am in prometheus["alerting"]["alertmanagers"]
        for sc in am["static_configs"]
        for t in sc["targets"]
    ]
    assert targets
    for target in targets:
        host, port = _host_port(target)
        assert host in services and port == 9093
    assert rule_files(prometheus), "rule_files match no file"
    # The container loads this very file (and so the same relative rule_files).
    prom = services["prometheus"]
    assert host_path(prom, flag(prom, "config.file")) == PROMETHEUS_FILE
    am = services["alertmanager"]
    assert host_path(am, flag(am, "config.file")) == DEPLOY / "alertmanager" / "alertmanager.yml"


def test_grafana_provisioning_points_at_the_stack(services: dict[str, dict[str, Any]]) -> None:
    grafana = services["grafana"]
    assert host_path(grafana, "/etc/grafana/provisioning") == DEPLOY / "grafana" / "provisioning"
    uids = set()
    for path in DATASOURCE_FILES:
        for ds in _load_yaml(path)["datasources"]:
            uids.add(ds["uid"])
            host, port = _host_port(ds["url"].split("://", 1)[1].rstrip("/"))
            assert host in services, f"{path.name}: {ds['url']} is not a compose service"
    assert "prometheus" in uids
    providers = [p for path in DASHBOARD_PROVIDER_FILES for p in _load_yaml(path)["providers"]]
    assert providers
    for provider in providers:
        folder = host_path(grafana, provider["options"]["path"])
        assert folder is not None and folder.is_dir(), provider
        assert list(folder.glob("*.json")), f"no dashboard in {folder}"
    home = environment(grafana).get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home:
        resolved = host_path(grafana, home)
        assert resolved is not None and resolved.is_file(), home
    # Every datasource a dashboard names is provisioned.
    for path in DASHBOARD_FILES:
        for panel in panels_of(json.loads(path.read_text())):
            for ref in [panel.get("datasource")] + [
                t.get("datasource") for t in panel.get("targets", [])
            ]:
                if isinstance(ref, dict) and "uid" in ref:
                    assert ref["uid"] in uids, f"{path.name}: {panel['title']}: {ref}"


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.name)
def test_dashboard_is_valid(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    assert dashboard["uid"] and dashboard["title"]
    panels = list(panels_of(dashboard))
    assert panels
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in panels:
        if panel.get("type") == "row":
            continue
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"])
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip() and target["refId"]


def test_alert_rules_are_well_formed() -> None:
    rules = alert_rules()
    assert len(rules) >= 2
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names))
    for rule in rules:
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
    tested = set()
    for path in RULE_TEST_FILES:
        for case in _load_yaml(path)["tests"]:
            tested |= {t["alertname"] for t in case.get("alert_rule_test", [])}
    assert set(names) <= tested, f"alerts without a promtool test: {set(names) - tested}"


@pytest.mark.parametrize("where,expr", all_exprs(), ids=lambda v: str(v)[:60])
def test_queries_use_exported_metrics(where: str, expr: str, prometheus: dict[str, Any]) -> None:
    series = exported_series() | recorded_series()
    metrics, grouping, matchers, jobs = promql_names(expr)
    assert metrics, f"{where}: no metric found in {expr!r}"
    target_labels = {"job", "instance"}
    for name in metrics:
        assert name in series or name in SYNTHETIC, f"{where}: {name} is not exported"
    for name, labels in matchers.items():
        known = series.get(name, set()) | target_labels
        assert labels <= known, f"{where}: {name} has no label {labels - known}"
    available = target_labels.union(*(series.get(m, set()) for m in metrics))
    assert grouping <= available, f"{where}: no label {grouping - available} to group by"
    job_names = {j["job_name"] for j in prometheus["scrape_configs"]}
    assert jobs <= job_names, f"{where}: job {jobs - job_names} is not scraped"


@pytest.mark.parametrize("path", RULE_TEST_FILES, ids=lambda p: p.name)
def test_rule_tests_feed_exported_series(path: Path) -> None:
    """promtool's input series use the worker's real metric and label names."""
    series = exported_series()
    for case in _load_yaml(path)["tests"]:
        for item in case["input_series"]:
            name, _, body = item["series"].partition("{")
            labels = set(re.findall(r"(\w+)\s*=", body))
            assert name in series or name in SYNTHETIC, name
            assert labels <= series.get(name, set()) | {"job", "instance"}, item["series"]


def test_promql_parser_finds_names() -> None:
    """The helper above, on what it must get right."""
    metrics, grouping, matchers, jobs = promql_names(
        "histogram_quantile(0.99, sum by (le, agent) (rate(frictionwatch_batch_seconds_bucket"
        '{agent="sessions"}[$__rate_interval]))) > 1 or absent(up{job="frictionwatch"} == 1)'
        " unless x offset 5m"
    )
    assert metrics == {"frictionwatch_batch_seconds_bucket", "up", "x"}
    assert grouping == {"le", "agent"}
    assert matchers == {"frictionwatch_batch_seconds_bucket": {"agent"}, "up": {"job"}}
    assert jobs == {"frictionwatch"}
    assert "frictionwatch_events_total" in exported_series()
    assert exported_series()["frictionwatch_dead_letters_total"] >= {"reason", "stage"}
