"""Follow-ups through the worker: an abandoned cart gets exactly one trigger on
fw.email-triggers after the delay, none when the shopper orders in between, and one waiting
across a worker restart is neither lost nor sent twice."""

from __future__ import annotations

import json

import pytest
from kafkahelp import (
    WorkerProcess,
    changelog_topic,
    isolated_settings,
    latest_by_key,
    producer,
    read_to_idle,
    read_topic,
    topic,
)

from detectors.holdout import customer_unit
from detectors.session import decode_state
from streams import detection
from streams.app import SESSIONS_TABLE
from streams.kafka_io import ensure_topics
from streams.topics import SOURCE_HEADER

pytestmark = pytest.mark.integration

GAP, DELAY = 60.0, 120.0  # seconds of event time: small, so the test is short


def _treated(settings: object, prefix: str) -> str:
    """A customer id the follow-ups' holdout puts in its treatment arm (it gets the email)."""
    exp = next(e for e in detection.experiments(settings)  # type: ignore[arg-type]
               if e.intervention == "followup")
    return next(c for c in (f"{prefix}{i}" for i in range(100))
                if exp.arm(customer_unit(c, settings.customer_salt)) == "treatment")  # type: ignore[attr-defined]


def _at(second: int) -> str:
    return f"2026-01-01T00:{second // 60:02d}:{second % 60:02d}Z"


def _events(sid: str, user: str | None, t: int, *what: str) -> dict[str, object]:
    """A Segment batch of one session: a page view, then ``what`` a second apart."""
    ident = {"userId": user} if user else {"anonymousId": "anon-" + sid}
    batch: list[dict[str, object]] = [{"type": "page", "name": "Cart", "messageId": f"{sid}-p",
                                       "context": {"sessionId": sid}, "timestamp": _at(t),
                                       "properties": {"path": "/cart"}, **ident}]
    for i, name in enumerate(what, 1):
        props = ({"cart_value": 80.0} if name == "Product Added" else
                 {"revenue": 80.0, "order_id": f"o-{sid}"} if name == "Order Completed" else {})
        batch.append({"type": "track", "event": name, "messageId": f"{sid}-{i}",
                      "context": {"sessionId": sid}, "timestamp": _at(t + i),
                      "properties": props, **ident})
    return {"batch": batch}


def test_one_trigger_after_the_delay_none_after_an_order_and_none_lost_in_a_restart(
        kafka_bootstrap, tmp_path, request) -> None:  # type: ignore[no-untyped-def]
    # One partition: event time (what runs expiries and follow-ups) moves with every event.
    settings = isolated_settings(tmp_path, partitions=1, followups=True,
                                 followup_delay=DELAY, session_gap=GAP,
                                 holdout_control_share=0.5, abandonment_model=False)
    ensure_topics(settings, kafka_bootstrap)
    alice, bob = _treated(settings, "alice"), _treated(settings, "bob")
    p = producer(kafka_bootstrap)

    def send(*payloads: dict[str, object]) -> None:
        for payload in payloads:
            p.send(topic(settings, "ingest"), key=b"one", value=json.dumps(payload).encode(),
                   headers=[(SOURCE_HEADER, b"segment")])
        p.flush()

    # Both leave a cart at 0-1 s; their sessions expire at 61 s, their follow-ups are due at
    # 121 s. Another shopper's page at 70 s moves event time past the expiry.
    send(_events("s-alice", alice, 0, "Product Added"), _events("s-bob", bob, 0, "Product Added"),
         _events("s-clock1", None, 70))
    first = WorkerProcess(settings, kafka_bootstrap, tmp_path / "w1.log").start()
    request.addfinalizer(first.kill)
    changelog = changelog_topic(settings, SESSIONS_TABLE)

    def waiting(records: list[object]) -> set[str]:
        """Sessions stored as ended with a follow-up waiting."""
        return {k.decode() for k, v in latest_by_key(records).items()
                if v is not None and decode_state(v).followup_due is not None}

    stored = read_topic(kafka_bootstrap, changelog, until=lambda rs: len(waiting(rs)) == 2,
                        timeout=90)
    assert waiting(stored) == {"s-alice", "s-bob"}, first.log_tail()
    assert {decode_state(v).followup_due for v in latest_by_key(stored).values()
            if v is not None and decode_state(v).followup_due} == {1_767_225_600.0 + 1 + DELAY}
    first.stop()
    # A new worker takes the waiting follow-ups over. Bob orders (another session) at 90 s,
    # before his is due; a page at 200 s moves event time past the due time.
    second = WorkerProcess(settings, kafka_bootstrap, tmp_path / "w2.log").start()
    request.addfinalizer(second.kill)
    send(_events("s-bob-2", bob, 90, "Order Completed"), _events("s-clock2", None, 200))
    triggers = [json.loads(r.value) for r in read_topic(
        kafka_bootstrap, topic(settings, "email_triggers"), until=lambda rs: len(rs) >= 1,
        timeout=90)]
    assert triggers, second.log_tail()
    # Anything sent twice, or sent for bob, would show up by now.
    triggers = [json.loads(r.value) for r in read_to_idle(
        kafka_bootstrap, topic(settings, "email_triggers"), idle=4.0)]
    second.stop()
    assert [(d["subject"], d["data"]["customer_id"], d["data"]["kind"]) for d in triggers] == [
        ("s-alice", alice, "abandoned_cart")]
    assert triggers[0]["time"].startswith(_at(int(DELAY) + 1)[:-1])  # last event + delay
    # Both follow-ups are gone from the stored state: sent, and cancelled by the order.
    after = read_to_idle(kafka_bootstrap, changelog, idle=2.0)
    assert not waiting(after)
