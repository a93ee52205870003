"""Restart the Apache Kafka broker under load: the worker keeps running and resumes, every
acknowledged input event reaches ``fw.web-events``, and no event is applied twice.

The test runs its own broker (``.ci/kafka/kafka.sh`` with ``KAFKA_BROKER_NAME``), so stopping
it leaves the broker the rest of the suite shares untouched. The broker is stopped with SIGTERM
and started again on the same data dir and ports, as an operator's restart or a rolling
upgrade of a one-node cluster does; it is down for several seconds while the producer keeps
sending (its sends wait and are retried, idempotently) and the worker keeps running.

It needs Java and the Kafka jars (``bash .ci/kafka/kafka.sh fetch``); without them it skips,
except in CI (``FRICTIONWATCH_EXPECT_APACHE_KAFKA=1``), where it must run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer
from kafkahelp import (
    WorkerProcess,
    changelog_topic,
    isolated_settings,
    latest_by_key,
    read_to_end,
    read_topic,
    topic,
)

from detectors.session import decode_state
from streams.app import SESSIONS_TABLE
from streams.bundle import events_of
from streams.kafka_io import ensure_topics
from streams.topics import SOURCE_HEADER

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
KAFKA_SH = ROOT / ".ci" / "kafka" / "kafka.sh"
EXPECT_APACHE_KAFKA = os.environ.get("FRICTIONWATCH_EXPECT_APACHE_KAFKA") == "1"

N_SESSIONS = 40
#: Messages per second the producer aims at: load, without starving the 2-core CI machine.
RATE = 150
BEFORE, DOWN, AFTER = 6.0, 5.0, 8.0  # seconds of load before, outage, load after the restart


def _missing() -> str | None:
    """Why this machine cannot run an Apache Kafka broker, or None."""
    if shutil.which(os.path.join(os.environ["JAVA_HOME"], "bin", "java")
                    if os.environ.get("JAVA_HOME") else "java") is None:
        return "java not found (Apache Kafka 4 needs Java 17+)"
    home = Path(os.environ.get("KAFKA_HOME_DIR", ROOT / ".ci" / "kafka" / "target"))
    if not (home / "libs" / ".fetched").exists():
        return f"no Kafka jars in {home / 'libs'}: run `bash .ci/kafka/kafka.sh fetch`"
    return None


@dataclass
class OwnBroker:
    """A named broker of kafka.sh's that this test may stop and restart."""

    name: str
    bootstrap: str = ""
    env: dict[str, str] = field(default_factory=dict)

    def sh(self, *args: str) -> str:
        r = subprocess.run(["bash", str(KAFKA_SH), *args], env=self.env, capture_output=True,
                           text=True, timeout=180, check=False)
        assert r.returncode == 0, f"kafka.sh {' '.join(args)}: {r.stderr[-3000:]}"
        return r.stdout.strip()


@pytest.fixture
def own_broker() -> Iterator[OwnBroker]:
    reason = _missing()
    if reason:
        if EXPECT_APACHE_KAFKA:
            pytest.fail(f"CI must run the broker-restart test: {reason}")
        pytest.skip(reason)
    broker = OwnBroker(name=f"restart-{uuid.uuid4().hex[:8]}")
    # A smaller heap than the shared broker's: both run beside the tests on 2 cores.
    broker.env = dict(os.environ, KAFKA_BROKER_NAME=broker.name,
                      KAFKA_HEAP_OPTS="-Xms128m -Xmx384m")
    broker.bootstrap = broker.sh("start")
    try:
        yield broker
    finally:
        broker.sh("stop")


class Load:
    """Segment clicks with unique ids to the ingest topic at ``RATE``, from a thread, with a
    producer that outlives an outage: acks=all, idempotent (a retry after the restart is not a
    second copy), sends that wait and retry for two minutes. Records what was acknowledged."""

    def __init__(self, bootstrap: str, ingest: str) -> None:
        self.ingest = ingest
        self.producer = KafkaProducer(
            bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
            retries=2**31 - 1, delivery_timeout_ms=120_000, max_block_ms=120_000,
            request_timeout_ms=5_000, retry_backoff_ms=200, reconnect_backoff_max_ms=1_000,
            linger_ms=5,
        )
        self.sent = 0
        self.acked: dict[str, str] = {}  # event id -> session id
        self.failed: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=180)
        self.producer.flush(timeout=180)
        self.producer.close(timeout=10)

    def _run(self) -> None:
        t0 = time.monotonic()
        while not self._stop.is_set():
            i = self.sent
            sid = f"s{i % N_SESSIONS}"
            mid = f"r{i}"
            call = {
                "type": "track", "event": "Element Clicked", "messageId": mid,
                "anonymousId": f"a{sid}", "context": {"sessionId": sid},
                "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "properties": {"x": i % 500, "y": 20},
            }
            fut = self.producer.send(self.ingest, key=f"a{sid}".encode(),
                                     value=json.dumps(call).encode(),
                                     headers=[(SOURCE_HEADER, b"segment")])
            fut.add_callback(self._ok, mid, sid)
            fut.add_errback(self._err, mid)
            self.sent += 1
            # Paced by the clock, so the sends held up by the outage are followed by a burst.
            ahead = t0 + self.sent / RATE - time.monotonic()
            if ahead > 0:
                self._stop.wait(ahead)

    def _ok(self, mid: str, sid: str, _metadata: object) -> None:
        with self._lock:
            self.acked[mid] = sid

    def _err(self, mid: str, exc: BaseException) -> None:
        with self._lock:
            self.failed.append((mid, repr(exc)))


def test_worker_survives_a_broker_restart_under_load(own_broker: OwnBroker, tmp_path: Path
                                                     ) -> None:
    bootstrap = own_broker.bootstrap
    # The abandonment model is off: clicks never reach it, and it would only cost CPU here.
    settings = isolated_settings(tmp_path, abandonment_model=False)
    ensure_topics(settings, bootstrap)
    worker = WorkerProcess(settings, bootstrap, tmp_path / "worker.log").start()
    load = Load(bootstrap, topic(settings, "ingest"))
    try:
        load.start()
        time.sleep(BEFORE)
        before = load.sent
        own_broker.sh("stop", "--keep-data")
        time.sleep(DOWN)
        assert worker.proc is not None and worker.proc.poll() is None, (
            f"the worker exited while the broker was down:\n{worker.log_tail()}")
        own_broker.sh("restart")
        time.sleep(AFTER)
        load.stop()
        assert before > 0 and load.sent > before, "the load must run before and after"
        assert not load.failed, f"{len(load.failed)} sends failed, e.g. {load.failed[:3]}"
        assert len(load.acked) == load.sent

        # Every acknowledged event reaches fw.web-events (normalize may re-send some after the
        # restart: that is at-least-once by design, and the sessions agent skips the replays).
        web_events = topic(settings, "web_events")
        seen: dict[str, str] = {}
        read_upto = [0]

        def all_seen(records: list[Any]) -> bool:
            for r in records[read_upto[0]:]:
                for e in events_of(r.value, r.key):
                    seen[e.id] = e.session_id
            read_upto[0] = len(records)
            return set(load.acked) <= set(seen)

        read_topic(bootstrap, web_events, until=all_seen, timeout=180)
        missing = set(load.acked) - set(seen)
        assert not missing, f"{len(missing)} acknowledged events never reached {web_events}"

        # No event is applied twice: each session's state counts exactly its distinct events.
        expected = Counter(seen.values())
        changelog = changelog_topic(settings, SESSIONS_TABLE)

        def counts(records: list[Any]) -> dict[str, int]:
            return {k.decode(): decode_state(v).events
                    for k, v in latest_by_key(records).items() if v is not None}

        read_topic(bootstrap, changelog, timeout=180,
                   until=lambda rs: sum(counts(rs).values()) >= sum(expected.values()))
        # Let a double application (what this guards against) reach the changelog first.
        time.sleep(settings.commit_interval + 1)
        got = counts(read_to_end(bootstrap, changelog))
        wrong = {sid: (got.get(sid), n) for sid, n in expected.items() if got.get(sid) != n}
        assert not wrong, f"sessions whose event count is not what was sent: {wrong}"
        assert worker.proc is not None and worker.proc.poll() is None, (
            f"the worker exited:\n{worker.log_tail()}")
        # The outage is in the log, readably: aiokafka's retry loop once wrote ~19,000 lines
        # for it (streams.clientfixes, streams.logthrottle).
        lines = worker.log_path.read_text(errors="replace").count("\n")
        assert lines < 1000, f"{lines} log lines for a {DOWN:.0f} s outage"
    finally:
        if not load._stop.is_set():
            load.stop()
        worker.stop()
