"""The HTTP collector end to end: payloads in over HTTP, canonical events out of Kafka."""

from __future__ import annotations

import json

import pytest
from kafkahelp import http_get, http_post, read_topic, topic

from streams.bundle import decode_bundle
from streams.deadletter import decode_dead_letter

pytestmark = pytest.mark.integration

SEGMENT_BATCH = {
    "batch": [
        {
            "type": "track",
            "event": "Checkout Step Viewed",
            "messageId": "seg-1",
            "anonymousId": "anon-42",
            "userId": "cust-7",
            "timestamp": "2026-01-01T10:00:00.000Z",
            "context": {"sessionId": "sess-A", "page": {"url": "https://shop.example/checkout"}},
            "properties": {"checkout_id": "c1", "step": 2, "shipping_method": "Fedex"},
        },
        {
            "type": "track",
            "event": "Order Completed",
            "messageId": "seg-2",
            "anonymousId": "anon-42",
            "userId": "cust-7",
            "timestamp": "2026-01-01T10:03:00.000Z",
            "context": {"sessionId": "sess-A"},
            "properties": {"order_id": "50314b8e9bcf000000000000", "total": 27.5,
                           "revenue": 25.0, "currency": "USD"},
        },
    ]
}

GA4_PAYLOAD = {
    "client_id": "123456.7654321",
    "user_id": "cust-8",
    "events": [
        {
            "name": "begin_checkout",
            "params": {"session_id": "sess-G", "currency": "USD", "value": 30.03,
                       "timestamp_micros": 1767261600000000},
        },
        {
            "name": "purchase",
            "params": {"session_id": "sess-G", "transaction_id": "T_12345", "currency": "USD",
                       "value": 30.03, "timestamp_micros": 1767261660000000},
        },
    ],
}


def test_segment_and_ga4_through_collector_reach_web_events(worker, kafka_bootstrap):
    code, body = http_post(worker.url + "/collect/segment", json.dumps(SEGMENT_BATCH).encode())
    assert (code, body["accepted"]) == (200, 2), body
    code, body = http_post(worker.url + "/collect/ga4", json.dumps(GA4_PAYLOAD).encode())
    assert (code, body["accepted"]) == (200, 2), body

    def events_of(records):
        return {e.key: e.events for r in records for e in decode_bundle(r.value, r.key)}

    records = read_topic(kafka_bootstrap, topic(worker.settings, "web_events"),
                         until=lambda rs: len(events_of(rs)) >= 2)
    by_session = events_of(records)
    seg = by_session["sess-A"]
    assert [type(e).__name__ for e in seg] == ["CheckoutStepViewed", "OrderCompleted"]
    assert seg[0].step == 2 and seg[0].customer_id == "cust-7"
    assert seg[1].revenue == 25.0
    ga4 = by_session["sess-G"]
    assert [type(e).__name__ for e in ga4] == ["CheckoutStarted", "OrderCompleted"]
    assert ga4[1].revenue == pytest.approx(30.03) and ga4[1].order_id == "T_12345"
    assert ga4[0].time == pytest.approx(1767261600.0)

    metrics = http_get(worker.url + "/metrics")
    assert 'frictionwatch_collector_requests_total{code="200",endpoint="/collect/segment"}' \
        in metrics


def test_collector_answers_400_and_413_and_dead_letters(worker, kafka_bootstrap):
    code, body = http_post(worker.url + "/collect/segment", b"{not json")
    assert code == 400 and body["error"] == "not_json"
    code, body = http_post(worker.url + "/collect", json.dumps({"hello": 1}).encode())
    assert code == 400 and body["error"] == "unknown_format"
    big = b'{"batch": [' + b'"x",' * (worker.settings.max_payload_bytes // 4) + b'"x"]}'
    code, body = http_post(worker.url + "/collect/segment", big)
    assert code == 413 and body["error"] == "too_large"

    records = read_topic(kafka_bootstrap, topic(worker.settings, "dead_letters"),
                         until=lambda rs: len(rs) >= 3)
    reasons = sorted(decode_dead_letter(r.value).reason for r in records)
    assert reasons == ["not_json", "too_large", "unknown_format"]
    assert all(decode_dead_letter(r.value).stage == "collector" for r in records)
    assert 'frictionwatch_dead_letters_total{reason="not_json",stage="collector"} 1.0' in \
        http_get(worker.url + "/metrics")
