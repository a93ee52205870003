"""normalize(): raw ingest bytes -> canonical events by key, and dead letters with reasons."""

from __future__ import annotations

import json

import pytest

from detectors import events as ev
from streams.deadletter import decode_dead_letter, encode_dead_letter
from streams.normalize import normalize

LIMITS = {"max_bytes": 4096, "max_events": 10, "now": 100.0}


def _segment(i: int, anon: str = "a1", **extra: object) -> dict[str, object]:
    return {"type": "page", "messageId": f"m{i}", "anonymousId": anon,
            "timestamp": "2026-01-01T00:00:00Z", **extra}


def test_batch_is_grouped_by_session_and_counted_by_detected_format() -> None:
    body = {"batch": [_segment(1), _segment(2, "a2"), _segment(3)]}
    out = normalize(json.dumps(body).encode(), None, topic="ingest", partition=0, offset=1,
                    **LIMITS)
    assert {k: [e.id for e in v] for k, v in out.web.items()} == {"a1": ["m1", "m3"],
                                                                   "a2": ["m2"]}
    assert out.dead == [] and dict(out.counts) == {("segment", "page_view"): 3}


def test_support_events_are_keyed_by_customer() -> None:
    canonical = [{"type": "identify", "id": "i1", "time": 1.0, "session_id": "s",
                  "customer_id": "c1", "traits": {"plan": "pro"}},
                 {"type": "ticket", "id": "t1", "time": 1.0, "session_id": "s",
                  "action": "created", "ticket_id": "7"}]
    out = normalize(json.dumps(canonical).encode(), "canonical", **LIMITS)
    assert list(out.support) == ["c1"] and isinstance(out.support["c1"][0], ev.Identify)
    assert [d.reason for d in out.dead] == ["missing_id"]  # a ticket nobody owns


@pytest.mark.parametrize(
    ("raw", "source", "reason"),
    [
        (b"", None, "empty"),
        (b"   ", None, "empty"),
        (b"{not json", None, "not_json"),
        (b"\xff\xfe{}", None, "not_json"),
        (b"x" * 5000, None, "too_large"),
        (b'{"hello": 1}', None, "unknown_format"),
        (b'{"type": "page"}', "nonsense", "unknown_format"),
        (json.dumps([_segment(i) for i in range(11)]).encode(), "segment", "too_many_events"),
        (json.dumps({"type": "track", "event": "Teleported", "messageId": "m",
                     "anonymousId": "a", "timestamp": "2026-01-01T00:00:00Z"}).encode(),
         "segment", "unknown_event"),
        (json.dumps({"type": "page", "messageId": "m",
                     "timestamp": "2026-01-01T00:00:00Z"}).encode(), "segment", "missing_id"),
    ],
)
def test_bad_input_becomes_a_dead_letter_with_its_reason(raw: bytes, source: str | None,
                                                         reason: str) -> None:
    out = normalize(raw, source, topic="fw.ingest", partition=3, offset=42, **LIMITS)
    assert not out.web and not out.support
    assert [d.reason for d in out.dead] == [reason]
    d = decode_dead_letter(encode_dead_letter(out.dead[0]))
    assert (d.stage, d.topic, d.partition, d.offset, d.time) == ("normalize", "fw.ingest", 3,
                                                                42, 100.0)
    if reason != "too_large":
        assert d.original_bytes == raw  # the exact input, to fix and replay
    else:
        assert raw.startswith(d.original_bytes)


def test_one_bad_item_does_not_sink_the_batch() -> None:
    bad = _segment(2)
    bad["timestamp"] = "yesterday-ish"
    out = normalize(json.dumps({"batch": [_segment(1), bad]}).encode(), "segment", **LIMITS)
    assert [e.id for e in out.web["a1"]] == ["m1"]
    assert [d.reason for d in out.dead] == ["invalid_field"]
    assert json.loads(out.dead[0].original_bytes)["messageId"] == "m2"


def test_adapter_bug_is_a_processing_error_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    import streams.normalize as mod

    def boom(payload: object, source: str | None = None) -> object:
        raise ZeroDivisionError("bug")

    monkeypatch.setattr(mod, "adapt", boom)
    out = normalize(json.dumps(_segment(1)).encode(), "segment", **LIMITS)
    assert [d.reason for d in out.dead] == ["processing_error"]
    assert "ZeroDivisionError" in out.dead[0].detail
