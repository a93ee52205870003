"""Churn risk end to end: a known customer's ended session reaches their state, a subscription
comes in through the Segment adapter, and a bad support experience raises a churn alert from a
model restored from its checkpoint."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from kafkahelp import (
    WorkerProcess,
    changelog_topic,
    http_post,
    isolated_settings,
    latest_by_key,
    read_topic,
    topic,
)

from detectors import events as ev
from detectors.alerting import hash_customer
from detectors.customer import apply_customer, decode_customer
from models.churn import DAY, ChurnScorer
from streams import checkpoints
from streams.app import CUSTOMERS_TABLE
from streams.kafka_io import ensure_topics

pytestmark = pytest.mark.integration

T0 = 1_790_000_000.0


def _trained() -> ChurnScorer:
    """A churn model taught that customers with a bad rating leave."""
    scorer = ChurnScorer()
    for i in range(400):
        cid, bad, t0 = f"c{i}", i % 2 == 1, i * DAY
        state = apply_customer(None, [
            ev.Subscription(id=f"s{i}", time=t0, session_id=cid, customer_id=cid,
                            action="started"),
            ev.Ticket(id=f"t{i}", time=t0, session_id=cid, customer_id=cid, ticket_id=f"t{i}",
                      action="solved", satisfaction="bad" if bad else "good")])
        scorer.update(state)
        end = ev.Subscription(id=f"e{i}", time=t0 + (5 if bad else 31) * DAY, session_id=cid,
                              customer_id=cid, action="cancelled" if bad else "renewed")
        scorer.update(apply_customer(state, [end]))
    return scorer


def _canonical(*events: object) -> bytes:
    return ev.encode_batch(list(events))


def test_a_bad_experience_raises_one_explained_churn_alert(tmp_path, kafka_bootstrap):
    settings = isolated_settings(tmp_path, partitions=1, session_gap=60.0)
    ensure_topics(settings, kafka_bootstrap)
    checkpoints.save(_trained(), settings.data_dir / "models" / "churn.ckpt")
    worker = WorkerProcess(settings, kafka_bootstrap, tmp_path / "worker.log").start()
    try:
        url = worker.url + "/collect"
        cid = "cust-7"
        subscribed = {"type": "track", "event": "Subscription Started", "messageId": "m1",
                      "userId": cid,
                      "timestamp": datetime.fromtimestamp(T0, UTC).isoformat(),
                      "properties": {"plan": "pro", "mrr": 99.0}}
        assert http_post(url, json.dumps(subscribed).encode())[0] == 200
        # A known customer's session, ended by a later event in the same partition.
        assert http_post(url, _canonical(
            ev.PageView(id="p1", time=T0 + 10, session_id="web-1", customer_id=cid),
            ev.Click(id="c1", time=T0 + 20, session_id="web-1", x=10, y=10, target="#pay"),
        ))[0] == 200
        assert http_post(url, _canonical(
            ev.PageView(id="p2", time=T0 + 600, session_id="web-2")))[0] == 200
        assert http_post(url, _canonical(ev.Ticket(
            id="k1", time=T0 + 700, session_id=cid, customer_id=cid, ticket_id="77",
            action="solved", satisfaction="bad")))[0] == 200

        alerts = read_topic(kafka_bootstrap, topic(settings, "alerts"),
                            until=lambda rs: any(b"churn_risk" in r.value for r in rs))
        [alert] = [json.loads(r.value) for r in alerts if b"churn_risk" in r.value]
        hashed = hash_customer(cid)
        assert alert["subject"] == hashed and alert["data"]["customer"] == hashed
        assert alert["data"]["risk"] >= settings.churn_alert_at
        assert any("bad satisfaction" in f for f in alert["data"]["factors"])

        def settled(rs: list[object]) -> bool:
            raw = latest_by_key(rs).get(cid.encode())
            return raw is not None and decode_customer(raw).sessions == 1 and \
                decode_customer(raw).bad_satisfaction == 1

        changelog = read_topic(kafka_bootstrap, changelog_topic(settings, CUSTOMERS_TABLE),
                               until=settled)
        state = decode_customer(latest_by_key(changelog)[cid.encode()] or b"")
        assert (state.plan, state.mrr, state.sessions, state.churn_alerted) == ("pro", 99.0, 1,
                                                                                True)
        assert state.churn_risk is not None and state.churn_risk >= settings.churn_alert_at
    finally:
        worker.stop()
