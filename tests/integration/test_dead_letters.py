"""Bad input of every kind lands on the dead-letter topic with its reason; good input flows."""

from __future__ import annotations

import json

import pytest
from kafkahelp import http_get, producer, read_topic, topic

from streams.bundle import events_of
from streams.deadletter import decode_dead_letter
from streams.topics import SOURCE_HEADER

pytestmark = pytest.mark.integration


def seg(event: str, mid: str, **props: object) -> dict[str, object]:
    return {
        "type": "track",
        "event": event,
        "messageId": mid,
        "anonymousId": "anon-1",
        "timestamp": "2026-01-01T10:00:00Z",
        "context": {"sessionId": "sess-good"},
        "properties": props,
    }


def test_ten_kinds_of_bad_input_reach_dead_letters_while_good_events_flow(
    worker, kafka_bootstrap
):
    limit = worker.settings.max_payload_bytes
    max_events = worker.settings.max_events_per_message
    no_session = seg("Order Completed", "nosess", revenue=5.0)
    del no_session["anonymousId"], no_session["context"]
    bad = {
        "not JSON": (b"this is not json {", "not_json"),
        "not UTF-8": (b'{"type": "page", "name": "\xff\xfe"}', "not_json"),
        "empty body": (b"", "empty"),
        "oversized": (b'{"pad": "' + b"x" * (limit + 10) + b'"}', "too_large"),
        "unknown shape": (json.dumps({"hello": "world"}).encode(), "unknown_format"),
        "unknown event": (json.dumps(seg("Spaceship Launched", "u1")).encode(), "unknown_event"),
        "no session or user": (json.dumps(no_session).encode(), "missing_id"),
        "wrong type": (
            json.dumps(seg("Order Completed", "w1", revenue="lots")).encode(), "invalid_field"
        ),
        "too many events": (
            json.dumps({"batch": [seg("Cart Viewed", f"m{i}") for i in range(max_events + 1)]})
            .encode(),
            "too_many_events",
        ),
    }
    good = [seg("Checkout Step Viewed", f"g{i}", step=1) for i in range(3)]
    p = producer(kafka_bootstrap)
    ingest = topic(worker.settings, "ingest")
    for i, (value, _) in enumerate(bad.values()):
        p.send(ingest, value=value, key=b"k")
        # Good input interleaved with bad: a bad message must not hold up its neighbours.
        if i < len(good):
            p.send(ingest, value=json.dumps(good[i]).encode(), key=b"k",
                   headers=[(SOURCE_HEADER, b"segment")])
    p.flush()

    dead = read_topic(kafka_bootstrap, topic(worker.settings, "dead_letters"),
                      until=lambda rs: len(rs) >= len(bad))
    letters = [decode_dead_letter(r.value) for r in dead]
    assert sorted(d.reason for d in letters) == sorted(reason for _, reason in bad.values())
    assert all(d.stage == "normalize" and d.topic == ingest for d in letters)
    by_offset = {d.offset: d for d in letters}
    assert len(by_offset) == len(bad)  # one record per bad message, each with its offset
    originals = {d.original_bytes for d in letters}
    assert b"this is not json {" in originals  # the original bytes travel with the reason

    web = read_topic(kafka_bootstrap, topic(worker.settings, "web_events"),
                     until=lambda rs: sum(len(events_of(r.value, r.key)) for r in rs) >= 3)
    ids = sorted(e.id for r in web for e in events_of(r.value, r.key))
    assert ids == ["g0", "g1", "g2"]

    assert json.loads(http_get(worker.url + "/health"))["status"] == "ok"
    metrics = http_get(worker.url + "/metrics")
    assert 'frictionwatch_dead_letters_total{reason="missing_id",stage="normalize"} 1.0' in metrics
    assert 'frictionwatch_dead_letters_total{reason="not_json",stage="normalize"} 2.0' in metrics


def test_bad_message_on_a_canonical_topic_is_dead_lettered_by_the_session_agent(
    worker, kafka_bootstrap
):
    p = producer(kafka_bootstrap)
    web = topic(worker.settings, "web_events")
    p.send(web, key=b"s1", value=b'[{"type": "click", "id": "1"}]')  # no time, no session
    p.flush()
    dead = read_topic(kafka_bootstrap, topic(worker.settings, "dead_letters"),
                      until=lambda rs: len(rs) >= 1)
    d = decode_dead_letter(dead[0].value)
    assert (d.stage, d.reason, d.topic) == ("sessions", "invalid_field", web)
