"""`docker compose up --scale worker=N`, checked without Docker: every worker keeps its state
in a data dir of its own on a volume, one published port reaches all of them, and the README's
``curl localhost:6066/collect/...`` lands on a worker.

``test_compose.py`` checks the rest of the stack (Kafka, Prometheus, the Dockerfile).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from deployfiles import WorkerFacts, worker_facts
from test_compose import _volume, command, dockerfile_env, environment, host_path, settings_for

from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_DIR = ROOT / "deploy" / "compose"
CLAIM_SCRIPT = COMPOSE_DIR / "claim_data_dir.py"
HAPROXY_FILE = COMPOSE_DIR / "haproxy.cfg"
HAPROXY_CONFIG_IN_IMAGE = "/usr/local/etc/haproxy/haproxy.cfg"  # the official image's


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture(scope="module")
def worker_settings(services: dict[str, dict[str, Any]]) -> Settings:
    with pytest.MonkeyPatch.context() as mp:
        return settings_for(services["worker"], mp)


@pytest.fixture(scope="module")
def facts(worker_settings: Settings) -> WorkerFacts:
    return worker_facts(worker_settings)


def published(service: dict[str, Any]) -> list[tuple[str, int, int]]:
    """(host address, host port, container port) of each published port."""
    out = []
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            out.append((entry.get("host_ip", ""), int(entry["published"]), int(entry["target"])))
            continue
        parts = str(entry).split(":")
        host_ip = parts[0] if len(parts) == 3 else ""
        out.append((host_ip, int(parts[-2]), int(parts[-1].split("/")[0])))
    return out


def claim_slots() -> int:
    spec = importlib.util.spec_from_file_location("claim_data_dir", CLAIM_SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return int(module.SLOTS)


def haproxy_sections() -> dict[str, list[list[str]]]:
    """``"backend workers"`` -> its directives, each split into words (comments dropped)."""
    sections: dict[str, list[list[str]]] = {}
    current: list[list[str]] = []
    for raw in HAPROXY_FILE.read_text().splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        words = line.split()
        if not raw[0].isspace():
            current = sections.setdefault(" ".join(words), [])
        else:
            current.append(words)
    return sections


def directive(section: list[list[str]], name: str) -> list[str]:
    found = [words for words in section if words[0] == name]
    assert len(found) == 1, f"{name}: {found}"
    return found[0][1:]


# --- each worker its own data dir, on a volume ---------------------------------------------------


def test_worker_data_dir_is_on_a_named_volume_of_its_own(
    compose: dict[str, Any], services: dict[str, dict[str, Any]], worker_settings: Settings
) -> None:
    worker = services["worker"]
    data_dir = str(worker_settings.data_dir)
    assert data_dir == dockerfile_env()["FRICTIONWATCH_DATA_DIR"]  # created there, as its user
    mounts = [_volume(v) for v in worker.get("volumes", [])]
    (volume,) = [source for kind, source, target in mounts if target == data_dir]
    # Named, so `up --build`, restarts and `down`/`up` keep it (only `down -v` drops it).
    assert volume and volume in (compose.get("volumes") or {})
    for name, other in services.items():
        if name != "worker":
            assert volume not in {_volume(v)[1] for v in other.get("volumes", [])}, name
    assert worker_settings.store == "rocksdb://"


def test_each_replica_claims_a_slot_before_it_runs_the_worker(
    services: dict[str, dict[str, Any]],
) -> None:
    worker = services["worker"]
    entrypoint = [str(a) for a in worker["entrypoint"]]
    assert entrypoint[0] == "python"  # the image's
    assert host_path(worker, entrypoint[1]) == CLAIM_SCRIPT
    # The script runs its arguments: the image's entrypoint, then compose's command.
    assert entrypoint[2:] == ["frictionwatch"] and command(worker) == ["worker"]
    # Its FRICTIONWATCH_DATA_DIR is the volume's root, which the script divides.
    assert "FRICTIONWATCH_DATA_DIR" not in environment(worker)


def _claim(root: Path, *cmd: str) -> subprocess.Popen[str]:
    env = {**os.environ, "FRICTIONWATCH_DATA_DIR": str(root)}
    return subprocess.Popen([sys.executable, str(CLAIM_SCRIPT), *cmd], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)


def _claimed_dir(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    return proc.stdout.readline().strip()


HOLD = ("sh", "-c", 'echo "$FRICTIONWATCH_DATA_DIR"; exec sleep 60')


def test_claim_script_gives_each_live_worker_its_own_dir(tmp_path: Path) -> None:
    first, second = _claim(tmp_path, *HOLD), _claim(tmp_path, *HOLD)
    try:
        a, b = _claimed_dir(first), _claimed_dir(second)
        assert {a, b} == {str(tmp_path / "worker-1"), str(tmp_path / "worker-2")}
        # Killed without a chance to clean up, its lock goes with it; the next worker takes
        # its dir, with what it left there.
        (Path(a) / "kept").write_text("state")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        third = _claim(tmp_path, *HOLD)
        try:
            assert _claimed_dir(third) == a
            assert (Path(a) / "kept").read_text() == "state"
        finally:
            third.kill()
            third.wait(timeout=10)
    finally:
        for proc in (first, second):
            proc.kill()
            proc.wait(timeout=10)
    # The command and its arguments arrive intact; the process is the command (exec).
    done = _claim(tmp_path, "sh", "-c", 'printf "%s|%s" "$0" "$1"', "a b", "c")
    out, _ = done.communicate(timeout=10)
    assert out == "a b|c" and done.returncode == 0


# --- one way in for the collector ----------------------------------------------------------------


def test_collector_is_the_one_published_entry_point(
    services: dict[str, dict[str, Any]], worker_settings: Settings
) -> None:
    port = worker_settings.web_port
    collector = services["collector"]
    assert published(collector) == [("127.0.0.1", port, port)]
    assert host_path(collector, HAPROXY_CONFIG_IN_IMAGE) == HAPROXY_FILE
    image = collector["image"]
    assert image.startswith("haproxy:") and not image.endswith(":latest")
    for name, service in services.items():
        if name != "collector":
            assert port not in {host for _, host, _ in published(service)}, name
    assert not published(services["worker"])  # replicas cannot share a host port


def test_proxy_spreads_over_every_worker_replica(
    worker_settings: Settings, facts: WorkerFacts
) -> None:
    sections = haproxy_sections()
    port = worker_settings.web_port
    (frontend,) = [s for name, s in sections.items() if name.startswith("frontend ")]
    assert directive(frontend, "bind") == [f":{port}"]
    backend = sections["backend " + directive(frontend, "default_backend")[0]]
    template = directive(backend, "server-template")
    prefix, count, address, *options = template
    low, high = (int(x) for x in count.split("-"))
    # A server slot for every worker that can run: one per data-dir slot, and so more than
    # the partitions (a worker beyond them gets none).
    assert high - low + 1 >= max(worker_settings.partitions, claim_slots())
    assert address == f"worker:{port}"  # the compose service, as Docker's DNS names it
    resolvers = options[options.index("resolvers") + 1]
    nameservers = [w for w in sections[f"resolvers {resolvers}"] if w[0] == "nameserver"]
    assert [w[2] for w in nameservers] == ["127.0.0.11:53"]  # Docker's embedded DNS
    assert "check" in options and options[options.index("init-addr") + 1] == "none"
    method, path = _httpchk(backend)
    assert method == "GET" and path in facts.routes
    # Retry only what never reached a worker: a POST is not applied twice.
    defaults = sections["defaults"]
    assert directive(defaults, "retry-on") == ["conn-failure"]


def _httpchk(section: list[list[str]]) -> tuple[str, str]:
    (words,) = [w for w in section if w[:2] == ["option", "httpchk"]]
    return words[2], words[3]


def test_haproxy_accepts_the_config() -> None:
    haproxy = shutil.which("haproxy")
    if not haproxy:
        pytest.skip("haproxy is not installed (apt-get install haproxy)")
    proc = subprocess.run([haproxy, "-c", "-f", str(HAPROXY_FILE)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_readme_curl_reaches_the_collector(
    services: dict[str, dict[str, Any]], facts: WorkerFacts
) -> None:
    readme = (ROOT / "README.md").read_text()
    calls = re.findall(r"curl [^\n]*?localhost:(\d+)(/[\w/-]*\w)", readme)
    collect = [(int(p), path) for p, path in calls if path.startswith("/collect")]
    assert collect
    host_ports = {host for _, host, _ in published(services["collector"])}
    for port, path in collect:
        assert port in host_ports, f"curl localhost:{port}{path} reaches nothing in compose"
        assert path in facts.routes


def test_worker_healthcheck_asks_a_worker_route(
    services: dict[str, dict[str, Any]], facts: WorkerFacts
) -> None:
    check = " ".join(services["worker"]["healthcheck"]["test"])
    paths = re.findall(r"https?://[^/'\"]+(/[\w/]+)", check)
    assert paths and set(paths) <= facts.routes
