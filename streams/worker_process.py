"""``frictionwatch worker`` as a child process: what the demo, the benches and the integration
tests start, so they exercise the same worker users run, not an in-process imitation.

Settings travel through ``FRICTIONWATCH_*`` environment variables, exactly as they would for a
deployed worker.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import TracebackType

from streams.settings import ENV_PREFIX, Settings

__all__ = ["WorkerProcess", "WorkerError", "settings_env"]


class WorkerError(RuntimeError):
    pass


def settings_env(settings: Settings, bootstrap: str) -> dict[str, str]:
    """This process's environment with ``settings`` and ``bootstrap`` as FRICTIONWATCH_* vars."""
    env = dict(os.environ)
    for name, value in settings.model_dump(exclude_none=True).items():
        # Complex fields are JSON in the environment (as pydantic-settings reads them).
        text = json.dumps(value) if isinstance(value, dict | list) else str(value)
        env[f"{ENV_PREFIX}{name.upper()}"] = text
    env[f"{ENV_PREFIX}BOOTSTRAP_SERVERS"] = bootstrap
    return env


class WorkerProcess:
    """A worker subprocess: ``start`` waits until it owns partitions; ``stop`` is SIGTERM then
    SIGKILL; ``kill`` is SIGKILL alone (no shutdown hooks, no final commit)."""

    def __init__(self, settings: Settings, bootstrap: str, log_path: Path) -> None:
        self.settings = settings
        self.bootstrap = bootstrap
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.web_port}"

    def start(self, timeout: float = 90.0) -> WorkerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streams.cli", "worker"],
                env=settings_env(self.settings, self.bootstrap),
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise WorkerError(f"worker exited {self.proc.returncode}:\n{self.log_tail()}")
            if self.assigned_partitions() > 0:
                return self
            time.sleep(0.2)
        self.stop()
        raise WorkerError(f"worker not ready in {timeout} s:\n{self.log_tail()}")

    def assigned_partitions(self) -> int:
        """Partitions the worker's consumer owns now (0 while it joins or if it is down)."""
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=1.0) as r:  # noqa: S310
                return int(json.loads(r.read()).get("assigned_partitions", 0))
        except (OSError, ValueError):
            return 0

    def metrics_text(self, timeout: float = 5.0) -> str:
        with urllib.request.urlopen(self.url + "/metrics", timeout=timeout) as r:  # noqa: S310
            return str(r.read().decode())

    def cpu_seconds(self, children: bool = True) -> float:
        """User + system CPU seconds so far of the worker and (``children``) the processes it
        started (its ingest stage, ``streams.ingest_process``), alive or ended (Linux
        ``/proc``)."""
        if self.proc is None:
            return 0.0
        if not children:
            return _cpu(self.proc.pid)
        return sum(_cpu(pid, ended=True) if pid == self.proc.pid else _cpu(pid)
                   for pid in _tree(self.proc.pid))

    def log_tail(self, chars: int = 4000) -> str:
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-chars:]

    def freeze(self, frozen: bool = True) -> None:
        """Stop (SIGSTOP) or, with ``frozen`` False, continue (SIGCONT) the worker and the
        processes it started: a bench builds a backlog while the group keeps its partitions
        and reads nothing (for less than the session timeout, or the group rebalances)."""
        if self.proc and self.proc.poll() is None:
            for pid in _tree(self.proc.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGSTOP if frozen else signal.SIGCONT)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (state first), or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()
    except OSError:
        return None


def _tree(root: int) -> list[int]:
    """``root`` and its descendants alive now."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields is not None:
                parents.setdefault(int(fields[1]), []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += parents.get(pid, [])
    return out


def _cpu(pid: int, ended: bool = False) -> float:
    """User + system CPU seconds of ``pid`` (and, if ``ended``, of its children that ended
    and were waited for)."""
    fields = _stat(pid)
    if fields is None:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if ended:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")
