"""``WorkerProcess.freeze``: the benches stop a worker and the processes it started while they
build a backlog, and continue them after (Linux ``/proc``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from streams.settings import Settings
from streams.worker_process import WorkerProcess, _stat, _tree

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="Linux /proc")

# A parent that starts a child of its own, as the worker starts its ingest process.
_PARENT = ("import subprocess, sys, time; "
           "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
           "time.sleep(60)")


def _states(w: WorkerProcess) -> list[str]:
    assert w.proc is not None
    return [fields[0] for pid in _tree(w.proc.pid) if (fields := _stat(pid)) is not None]


def _wait_for(w: WorkerProcess, pred: Callable[[list[str]], bool], timeout: float = 10.0
              ) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        states = _states(w)
        if pred(states) or time.monotonic() > deadline:
            return states
        time.sleep(0.05)


def test_freeze_stops_the_worker_and_its_children_and_thaw_continues_them(tmp_path: Path
                                                                           ) -> None:
    w = WorkerProcess(Settings(), "127.0.0.1:9", tmp_path / "w.log")
    w.proc = subprocess.Popen([sys.executable, "-c", _PARENT])
    try:
        running = _wait_for(w, lambda s: len(s) == 2)
        assert len(running) == 2 and "T" not in running
        w.freeze()
        assert _wait_for(w, lambda s: s == ["T", "T"]) == ["T", "T"]
        cpu = w.cpu_seconds()
        w.freeze(False)
        thawed = _wait_for(w, lambda s: "T" not in s)
        assert len(thawed) == 2 and "T" not in thawed
        assert w.cpu_seconds() >= cpu
    finally:
        for pid in _tree(w.proc.pid)[1:]:  # the child first: it outlives a killed parent
            os.kill(pid, signal.SIGKILL)
        w.kill()
