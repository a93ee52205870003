"""Feedback on alerts end to end: POST /feedback, the label it becomes, its count, and bad
feedback dead-lettered."""

from __future__ import annotations

import json

import pytest
from kafkahelp import http_get, http_post, producer, read_to_end, read_topic, topic

from streams.deadletter import decode_dead_letter

pytestmark = pytest.mark.integration


def test_feedback_becomes_a_label_and_a_count(worker, kafka_bootstrap):
    verdict = {"alert_id": "alert-sess-9-1", "session_id": "sess-9", "verdict": "false_alarm",
               "reason": "payment_declined", "by": "ana", "note": "test card"}
    code, body = http_post(worker.url + "/feedback", json.dumps(verdict).encode())
    assert (code, body) == (202, {"accepted": True, "alert_id": "alert-sess-9-1"})
    # Another tool writes straight to the feedback topic.
    p = producer(kafka_bootstrap)
    p.send(topic(worker.settings, "feedback"), key=b"sess-8", value=json.dumps(
        {"alert_id": "alert-sess-8-1", "session_id": "sess-8", "verdict": "useful",
         "reason": "made_up"}).encode())
    p.flush()

    records = read_topic(kafka_bootstrap, topic(worker.settings, "labels"),
                         until=lambda rs: len(rs) >= 2)
    labels = {r.key.decode(): json.loads(r.value) for r in records}
    assert labels["sess-9"]["type"] == "alert_feedback"
    assert labels["sess-9"]["useful"] is False and labels["sess-9"]["by"] == "ana"
    assert labels["sess-8"]["useful"] is True
    metrics = http_get(worker.url + "/metrics")
    assert 'frictionwatch_alert_feedback_total{reason="payment_declined",verdict="false_alarm"}' \
        ' 1.0' in metrics
    # An unknown reason is counted as "other": labels stay a bounded set.
    assert 'frictionwatch_alert_feedback_total{reason="other",verdict="useful"} 1.0' in metrics
    # The verdict re-weighed the alert policy: a false alarm lowers its reason's weight.
    assert 'frictionwatch_alert_weight{reason="payment_declined"} 0.8333' in metrics
    assert 'frictionwatch_alert_weight{reason="rage_click"} 0.6' in metrics


def test_bad_feedback_is_refused_and_dead_lettered(worker, kafka_bootstrap):
    code, body = http_post(worker.url + "/feedback", json.dumps(
        {"alert_id": "a", "session_id": "s", "verdict": "maybe"}).encode())
    assert code == 400 and body["error"] == "invalid_field"
    code, body = http_post(worker.url + "/feedback", b"{nope")
    assert code == 400 and body["error"] == "not_json"
    records = read_topic(kafka_bootstrap, topic(worker.settings, "dead_letters"),
                         until=lambda rs: len(rs) >= 2)
    dead = [decode_dead_letter(r.value) for r in records]
    assert sorted(d.reason for d in dead) == ["invalid_field", "not_json"]
    assert {d.stage for d in dead} == {"feedback"}
    assert read_to_end(kafka_bootstrap, topic(worker.settings, "labels")) == []
