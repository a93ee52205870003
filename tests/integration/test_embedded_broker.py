"""The embedded tansu broker starts on a free port, speaks Kafka, and is gone after exit, also
after a SIGKILL of the worker that started it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kafkahelp import isolated_settings, settings_env

from streams.broker import EmbeddedBroker, _api_versions_ok, broker_for

pytestmark = pytest.mark.integration


def test_starts_answers_and_stops() -> None:
    with EmbeddedBroker() as broker:
        host, _, port = broker.bootstrap_servers.rpartition(":")
        assert host == "127.0.0.1"
        assert _api_versions_ok(host, int(port), timeout=2.0)
        proc = broker._proc
        assert proc is not None and proc.poll() is None
    assert proc.poll() is not None  # the process is gone
    assert not _api_versions_ok(host, int(port), timeout=0.5)


def test_configured_servers_are_used_as_given() -> None:
    with broker_for("kafka-1:9092,kafka-2:9092") as bootstrap:
        assert bootstrap == "kafka-1:9092,kafka-2:9092"


def test_broker_for_none_starts_one() -> None:
    with broker_for(None) as bootstrap:
        host, _, port = bootstrap.rpartition(":")
        assert _api_versions_ok(host, int(port), timeout=2.0)


def _children(pid: int) -> list[tuple[int, str]]:
    """(pid, command name) of the live processes whose parent is ``pid`` (Linux /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces, so split after its last ")".
        comm = text[text.index("(") + 1 : text.rindex(")")]
        state, ppid = text[text.rindex(")") + 2 :].split()[:2]
        if int(ppid) == pid and state != "Z":
            out.append((int(stat.parent.name), comm))
    return out


def _alive(pid: int) -> bool:
    """Running, not a zombie (a reparented process may wait a moment to be reaped)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return fields[fields.rindex(")") + 2] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_embedded_broker_dies_when_its_worker_is_sigkilled(tmp_path: Path) -> None:
    """A SIGKILLed worker runs no clean-up, so only the kernel can take its tansu down."""
    settings = isolated_settings(tmp_path)
    env = settings_env(settings, "")
    del env["FRICTIONWATCH_BOOTSTRAP_SERVERS"]  # no broker configured: the worker embeds one
    with open(tmp_path / "worker.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "worker"], env=env,
                                stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    tansu: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while not tansu and time.monotonic() < deadline and proc.poll() is None:
            tansu = [pid for pid, comm in _children(proc.pid) if "tansu" in comm]
            time.sleep(0.1)
        assert tansu, f"no tansu child of the worker:\n{(tmp_path / 'worker.log').read_text()}"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 10
        while _alive(tansu[0]) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(tansu[0]), "the embedded broker outlived its SIGKILLed worker"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in tansu:  # do not leave an orphan behind when the assertion fails
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
