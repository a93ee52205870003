"""A simulated payment blocker's chat trigger, written by the worker, reaches a local
"Intercom" exactly once, although ``frictionwatch deliver`` is SIGKILLed after Intercom
accepted it and before its offset was committed, then restarted (issue 16, delivery)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition
from kafkahelp import (
    WorkerProcess,
    isolated_settings,
    producer,
    read_to_idle,
    settings_env,
)

from detectors.alerting import Alerting
from detectors.base import Signal
from detectors.session import SessionState
from streams.broker import free_port
from streams.deliver.runner import deliver_group
from streams.kafka_io import ensure_topics
from streams.settings import Settings
from streams.topics import SOURCE_HEADER, topic_name

pytestmark = pytest.mark.integration


class FakeIntercom:
    """``POST /messages`` answering 200 as Intercom does, recording every request."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.seen.append((self.path, dict(self.headers), json.loads(body)))
                reply = json.dumps({"type": "user_message", "id": str(len(outer.seen))})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply.encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def intercom() -> Iterator[FakeIntercom]:
    api = FakeIntercom()
    yield api
    api.close()


def blocker_trigger(session_id: str, customer: str) -> dict[str, Any]:
    """The chat trigger the worker's alert policy writes for a payment blocker now."""
    now = time.time()
    state = SessionState(session_id=session_id, customer_id=customer, cart_value=120.0,
                         checkout_step=3, first_time=now - 90)
    sig = Signal(type="payment_declined", session_id=session_id, time=now, start=now - 8,
                 step=3, evidence={"reasons": ["do_not_honor", "insufficient_funds"]})
    _, chats = Alerting().on_signals(state, [sig])
    assert chats, "a payment blocker offers chat"
    return chats[0]


def blocker_events(session_id: str, user_id: str) -> dict[str, Any]:
    """A shopper's Segment batch, timed now: a cart, checkout's payment step, two declines."""
    now = time.time()

    def stamp(ago: float) -> str:
        return datetime.fromtimestamp(now - ago, UTC).isoformat().replace("+00:00", "Z")
    events = [("Product Added", {"price": 120.0, "quantity": 1}, 40),
              ("Checkout Started", {}, 30), ("Checkout Step Viewed", {"step": 3}, 20),
              ("Payment Declined", {"reason": "do_not_honor"}, 10),
              ("Payment Declined", {"reason": "do_not_honor"}, 5)]
    return {"batch": [{"type": "track", "event": name, "messageId": f"{session_id}-{i}",
                       "userId": user_id, "anonymousId": f"a-{session_id}",
                       "context": {"sessionId": session_id}, "timestamp": stamp(ago),
                       "properties": props} for i, (name, props, ago) in enumerate(events)]}


class Deliver:
    def __init__(self, settings: Settings, bootstrap: str, log: Path) -> None:
        self.settings, self.bootstrap, self.log = settings, bootstrap, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, **env: str) -> Deliver:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streams.cli", "deliver"],
                env={**settings_env(self.settings, self.bootstrap), **env},
                stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        return self

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.settings.deliver_metrics_port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 - loopback
                return str(r.read().decode())
        except OSError:
            return ""

    def sample(self, name: str) -> float:
        for line in self.metrics().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
        return 0.0

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


def wait_for(cond: Any, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} not in {timeout} s:\n" + log.read_text(errors="replace")[-3000:])


def committed(settings: Settings, bootstrap: str) -> dict[int, int]:
    """The deliver group's committed offsets on the chat-triggers topic (without joining)."""
    topic = topic_name("chat_triggers", settings.topic_prefix)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=deliver_group(settings),
                             enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        found = {tp.partition: consumer.committed(tp) for tp in tps}
    finally:
        consumer.close(autocommit=False)
    return {p: o for p, o in found.items() if o is not None and o >= 0}


def test_blocker_s_trigger_reaches_intercom_exactly_once_across_sigkill(
        tmp_path: Path, kafka_bootstrap: str, intercom: FakeIntercom) -> None:
    settings = isolated_settings(
        tmp_path, partitions=1,
        # Every blocker gets its offer (no unit drawn into the holdout's control arm).
        holdout=False,
        deliver_intercom_url=intercom.url, deliver_intercom_token="tok",
        deliver_intercom_admin_id="814860", deliver_start="earliest",
        # No commit before the kill: the delivery is done, its offset is not committed.
        deliver_commit_interval=3600.0, deliver_metrics_port=free_port())
    ensure_topics(settings, kafka_bootstrap)
    ingest = topic_name("ingest", settings.topic_prefix)
    p = producer(kafka_bootstrap)

    def shop(session_id: str, user_id: str) -> None:
        p.send(ingest, key=f"a-{session_id}".encode(),
               value=json.dumps(blocker_events(session_id, user_id)).encode(),
               headers=[(SOURCE_HEADER, b"segment")])
        p.flush()

    log = tmp_path / "deliver.log"
    journal = settings.data_dir / "deliver" / "delivered.log"
    worker = WorkerProcess(settings, kafka_bootstrap, tmp_path / "worker.log").start()
    try:
        d = Deliver(settings, kafka_bootstrap, log).start()
        try:
            shop("s-blocked", "customer-1")
            wait_for(lambda: len(intercom.seen) >= 1, 120, "the trigger at Intercom", log)
            first = intercom.seen[0][1]["Idempotency-Key"]
            # Written before any commit would be: then the kill lands between the two.
            wait_for(lambda: journal.exists() and first in journal.read_text(), 10,
                     "the delivery in the journal", log)
            d.kill()
        finally:
            d.stop()
        assert committed(settings, kafka_bootstrap) == {}, "killed before the offset commit"

        d = Deliver(settings, kafka_bootstrap, log).start(
            FRICTIONWATCH_DELIVER_COMMIT_INTERVAL="0.5")
        try:
            # The restarted deliver reads the trigger again, recognises it, commits past it.
            wait_for(lambda: committed(settings, kafka_bootstrap).get(0) == 1, 90,
                     "the commit past the trigger", log)
            assert d.sample('frictionwatch_deliveries_total{destination="intercom",'
                            'outcome="duplicate"}') == 1.0
            # It goes on delivering: a second blocker's trigger arrives too.
            shop("s-blocked-2", "customer-2")
            wait_for(lambda: len(intercom.seen) >= 2, 90, "the second trigger at Intercom",
                     log)
            wait_for(lambda: committed(settings, kafka_bootstrap).get(0) == 2, 30,
                     "the commit past the second trigger", log)
        finally:
            d.stop()
    finally:
        worker.stop()
        p.close()

    triggers = [json.loads(r.value) for r in read_to_idle(
        kafka_bootstrap, topic_name("chat_triggers", settings.topic_prefix), idle=1.0)]
    assert [t["subject"] for t in triggers] == ["s-blocked", "s-blocked-2"]
    keys = [headers["Idempotency-Key"] for _, headers, _ in intercom.seen]
    assert keys == [t["id"] for t in triggers], "each trigger exactly once"
    path, headers, body = intercom.seen[0]
    assert path == "/messages" and headers["Authorization"] == "Bearer tok"
    assert headers["Intercom-Version"] == settings.deliver_intercom_version
    assert body == {"message_type": "inapp", "body": triggers[0]["data"]["message"],
                    "from": {"type": "admin", "id": "814860"},
                    "to": {"type": "user", "user_id": triggers[0]["data"]["customer"]}}
    assert triggers[0]["data"]["reason"] == "payment_declined"


def test_a_trigger_as_the_worker_writes_it_is_delivered_once_per_id(
        tmp_path: Path, kafka_bootstrap: str, intercom: FakeIntercom) -> None:
    """Without a worker: the same trigger produced twice (a replay) goes out once."""
    settings = isolated_settings(
        tmp_path, partitions=1, deliver_intercom_url=intercom.url,
        deliver_intercom_token="tok", deliver_intercom_admin_id="1",
        deliver_start="earliest", deliver_commit_interval=0.5,
        deliver_metrics_port=free_port())
    ensure_topics(settings, kafka_bootstrap)
    topic = topic_name("chat_triggers", settings.topic_prefix)
    doc = json.dumps(blocker_trigger("s-replayed", "c-1")).encode()
    p = producer(kafka_bootstrap)
    for _ in range(2):
        p.send(topic, key=b"s-replayed", value=doc)
    p.flush()
    p.close()
    log = tmp_path / "deliver.log"
    d = Deliver(settings, kafka_bootstrap, log).start()
    try:
        wait_for(lambda: committed(settings, kafka_bootstrap).get(0) == 2, 90,
                 "both records done", log)
    finally:
        d.stop()
    assert len(intercom.seen) == 1
