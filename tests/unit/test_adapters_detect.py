"""Shape detection, ``adapt()`` dispatch, and canonical input.

The shapes are those of the public examples in tests/data/adapters/ (each fixture's
``_source`` names its spec page; the list fixture follows
https://segment.com/docs/connections/spec/ecommerce/v2/).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from detectors.events import Click, Identify, PageView, to_builtins
from streams.adapters import adapt, adapt_canonical, ga4, segment, support
from streams.adapters.base import AdapterError
from streams.adapters.detect import detect

DATA = Path(__file__).resolve().parent.parent / "data" / "adapters"


def load(name: str) -> Any:
    return json.loads((DATA / name).read_text())


CLICK = {"type": "click", "id": "e1", "time": 1.0, "session_id": "s1", "x": 1, "y": 2}


@pytest.mark.parametrize(
    ("fixture", "source"),
    [
        ("segment_batch.json", "segment"),
        ("segment_order_completed.json", "segment"),
        ("segment_calls.json", "segment"),
        ("ga4_ecommerce.json", "ga4"),
        ("ga4_friction.json", "ga4"),  # app stream: app_instance_id, no client_id
        ("zendesk_trigger_ticket.json", "support"),
        ("zendesk_event_ticket_created.json", "support"),
        ("zendesk_event_status_changed.json", "support"),
    ],
)
def test_detects_each_fixture_and_adapt_dispatches(fixture: str, source: str) -> None:
    payload = load(fixture)
    assert detect(payload) == source
    module = {"segment": segment, "ga4": ga4, "support": support}[source]
    auto, explicit = adapt(payload), adapt(payload, source)
    expected = module.adapt(load(fixture))
    assert auto.events == explicit.events == expected.events
    assert auto.events  # every fixture yields events


@pytest.mark.parametrize("payload", [CLICK, [CLICK, CLICK]])
def test_detects_canonical(payload: Any) -> None:
    assert detect(payload) == "canonical"


def test_identify_is_canonical_only_with_a_session_id() -> None:
    seg = {"type": "identify", "messageId": "m1", "userId": "u1", "traits": {"plan": "pro"}}
    seg["timestamp"] = "2024-05-01T12:00:00Z"
    canon = {"type": "identify", "id": "i1", "time": 1.0, "session_id": "s1", "customer_id": "u1"}
    assert detect(seg) == "segment"
    assert detect(canon) == "canonical"
    assert [type(e) for e in adapt(seg).events] == [Identify]
    assert adapt(canon).events[0].session_id == "s1"


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        ({}, "empty"),
        ([], "empty"),
        ({"hello": "world"}, "unknown_format"),
        ({"events": [{"name": "purchase"}]}, "unknown_format"),  # GA4 needs a client id
        ({"type": "alias"}, "unknown_format"),
        ([1, 2], "unknown_format"),
        ([{"name": "purchase"}], "unknown_format"),
        ("track", "unknown_format"),
        (42, "unknown_format"),
        (None, "unknown_format"),
    ],
)
def test_unrecognised_payloads_raise(payload: Any, why: str) -> None:
    for call in (detect, adapt):
        with pytest.raises(AdapterError) as info:
            call(payload)
        assert info.value.reason == why


def test_source_header_is_case_insensitive_and_empty_means_detect() -> None:
    payload = load("ga4_ecommerce.json")
    assert adapt(payload, "GA4").events == adapt(payload, "").events == adapt(payload).events


def test_unknown_source_header_is_unknown_format() -> None:
    with pytest.raises(AdapterError) as info:
        adapt(CLICK, "mixpanel")
    assert info.value.reason == "unknown_format"


def test_explicit_source_that_does_not_fit_is_unknown_format() -> None:
    with pytest.raises(AdapterError) as info:
        adapt(load("segment_batch.json"), "ga4")
    assert info.value.reason == "unknown_format"


# --- canonical -------------------------------------------------------------------------------


def test_canonical_round_trip() -> None:
    view = PageView(id="p1", time=2.0, session_id="s1", url="https://x/", status_code=500)
    click = Click(id="c1", time=3.0, session_id="s1", x=1.0, y=2.0, target="#pay")
    out = adapt([to_builtins(view), to_builtins(click)])
    assert out.events == [view, click]
    assert not out.rejected


@pytest.mark.parametrize(
    ("item", "why"),
    [
        ({**CLICK, "type": "rage_click"}, "unknown_event"),
        ({k: v for k, v in CLICK.items() if k != "id"}, "missing_id"),
        ({k: v for k, v in CLICK.items() if k != "session_id"}, "missing_id"),
        ({**CLICK, "x": "left"}, "invalid_field"),
        ({**CLICK, "time": "2024-05-01T12:00:00Z"}, "invalid_field"),
        ({**CLICK, "y": "up"}, "invalid_field"),  # no position at all is valid (Click.x)
        ("click", "invalid_field"),
    ],
)
def test_canonical_rejections_keep_the_good_items(item: Any, why: str) -> None:
    out = adapt([CLICK, item], "canonical")
    assert [e.id for e in out.events] == ["e1"]
    [rej] = out.rejected
    assert (rej.reason, rej.item) == (why, item)


@pytest.mark.parametrize("payload", [[], {}])
def test_empty_canonical_is_empty(payload: Any) -> None:
    with pytest.raises(AdapterError) as info:
        adapt_canonical(payload)
    assert info.value.reason == "empty"
