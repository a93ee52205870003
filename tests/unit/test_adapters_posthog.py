"""PostHog adapter -> canonical events.

Fixture tests/data/adapters/posthog_batch.json: a ``/batch`` body as posthog-js sends it
(github.com/PostHog/posthog-js, ``packages/browser/src``): the common properties it registers
(``$session_id``, ``$window_id``, ``$device_type``, ``$current_url``, ``$pathname``,
``$is_identified``, ``distinct_id`` and ``token`` in ``properties``), ``$autocapture`` with
``$event_type`` and ``$elements_chain`` (``getElementsChainString``: classes sorted, then
``key="value"`` attributes sorted), ``$rageclick`` beside the click's own ``$autocapture``,
``$dead_click`` with both ``$elements`` and ``$elements_chain`` and its ``$dead_click_*``
properties, ``$exception`` with ``$exception_list``, ``$web_vitals`` with
``$web_vitals_<NAME>_value`` and ``_event``, ``$identify`` with ``$anon_distinct_id`` and a
top-level ``$set``, ``$pageleave``; and two custom events named as in Segment's e-commerce spec.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from detectors.events import (
    CartUpdated,
    Click,
    DeadClick,
    FormSubmitted,
    Identify,
    JsError,
    OrderCompleted,
    PagePerformance,
    PageView,
    Presence,
    decode_batch,
    encode_batch,
)
from streams.adapters import adapt, detect, posthog
from streams.adapters.base import AdapterError

DATA = Path(__file__).resolve().parent.parent / "data" / "adapters"
NOON = 1714564800.0  # 2024-05-01T12:00:00Z
SESSION = "0190b4f5-7a8b-7c9d-9e0f-1a2b3c4d5e6f"
ANON = "0190b4f2-1c2d-7e3f-8a9b-0c1d2e3f4a5b"


def body() -> dict[str, Any]:
    return json.loads((DATA / "posthog_batch.json").read_text())  # type: ignore[no-any-return]


def events() -> list[Any]:
    out = posthog.adapt(body())
    assert [r.item["event"] for r in out.rejected] == ["$rageclick"]
    return out.events


def one(name: str, **props: Any) -> dict[str, Any]:
    return {"event": name, "distinct_id": ANON, "timestamp": "2024-05-01T12:00:00Z",
            "properties": {"$session_id": SESSION, **props}}


def test_batch_maps_every_family_and_round_trips() -> None:
    out = events()
    assert [type(e) for e in out] == [PageView, Click, FormSubmitted, DeadClick, JsError,
                                      PagePerformance, CartUpdated, Identify, OrderCompleted,
                                      Presence]
    assert all(e.session_id == SESSION and not e.derived_session for e in out)
    assert all(e.device == "desktop" for e in out)
    assert decode_batch(encode_batch(out)) == out


def test_pageview() -> None:
    page = events()[0]
    assert (page.id, page.time, page.url, page.path, page.title, page.referrer) == (
        "0190b4f5-8000-7000-8000-000000000001", NOON, "https://shop.example/checkout/payment",
        "/checkout/payment", "Payment", "https://shop.example/checkout/shipping")
    assert page.customer_id is None  # an anonymous distinct id is a browser, not a customer
    [error_page] = posthog.adapt(one("$pageview", status_code=503)).events
    assert error_page.status_code == 503


def test_autocapture_click_submit_and_dead_click_targets() -> None:
    click, form, dead = events()[1:4]
    assert (click.target, click.x, click.y, click.time) == ("button#pay", None, None, NOON + 12)
    assert (form.form, form.success) == ("payment", True)
    assert dead.target == "span.apply.promo" and dead.time == NOON + 16
    # The older $elements list alone: classes as sent, no id.
    props = {"$event_type": "click", "$elements": [{"tag_name": "a", "classes": ["nav", "cart"],
                                                    "nth_child": 1}]}
    assert posthog.adapt(one("$autocapture", **props)).events[0].target == "a.nav.cart"
    # A class holding a ":" (Tailwind's hover:...) does not cut the selector short.
    chain = 'a.hover:underline.nav:attr__class="nav hover:underline"nth-child="1"'
    [e] = posthog.adapt(one("$autocapture", **{"$event_type": "click",
                                              "$elements_chain": chain})).events
    assert e.target == "a.hover:underline.nav"


def test_rageclick_is_not_mapped() -> None:
    """Its clicks arrive as $autocapture already: the rage detector finds the burst there.
    Like any unmapped event it is rejected, not dropped in silence."""
    [rejected] = posthog.adapt(body()).rejected
    assert rejected.reason == "unknown_event" and "$autocapture" in rejected.detail
    assert rejected.item["uuid"] == "0190b4f5-8000-7000-8000-000000000003"


def test_autocapture_clicks_make_a_rage_click_by_target() -> None:
    from detectors.clicks import RageClickDetector
    from detectors.session import SessionProcessor

    chain = 'button:attr__id="pay"attr_id="pay"nth-child="1"nth-of-type="1"'
    calls = [{**one("$autocapture", **{"$event_type": "click", "$elements_chain": chain}),
              "timestamp": NOON + i * 0.2} for i in range(4)]
    clicks = posthog.adapt(calls).events
    _, signals = SessionProcessor([RageClickDetector()]).apply(None, clicks)
    assert [(s.type, s.evidence["target"], s.evidence["clicks"]) for s in signals] == [
        ("rage_click", "button#pay", 3)]


def test_exception_and_web_vitals() -> None:
    error, vitals = events()[4:6]
    assert error.message == "Cannot read properties of undefined (reading 'total')"
    assert error.source == "https://shop.example/static/js/app.js"  # the throwing frame
    assert (vitals.lcp_ms, vitals.inp_ms, vitals.cls, vitals.ttfb_ms) == (4800.2, 640, 0.31, None)
    [older] = posthog.adapt(one("$exception", **{"$exception_message": "boom",
                                                 "$exception_type": "Error"})).events
    assert (older.message, older.source) == ("boom", None)


def test_segment_named_ecommerce_events_and_identify() -> None:
    add, ident, order = events()[6:9]
    assert (add.action, add.product_id, add.quantity, add.price, add.currency) == (
        "add", "SKU-1234", 2, 89.0, "GBP")
    assert ident.customer_id == "cust-8812" and ident.traits == {"email": "max@example.com",
                                                                 "plan": "gold"}
    assert (order.order_id, order.revenue, order.customer_id) == ("T-20240501-0042", 98.5,
                                                                  "cust-8812")


def test_pageleave_is_presence_left() -> None:
    leave = events()[9]
    assert leave.state == "left" and leave.time == NOON + 28


def test_session_falls_back_to_distinct_id_and_id_to_a_content_hash() -> None:
    call = {"event": "$pageview", "distinct_id": ANON, "timestamp": "2024-05-01T12:00:00Z",
            "properties": {"$current_url": "https://shop.example/"}}
    [a] = posthog.adapt(call).events
    [b] = posthog.adapt(json.loads(json.dumps(call))).events
    assert (a.session_id, a.derived_session) == (ANON, True)
    assert a.id == b.id and a.id.startswith("h")


@pytest.mark.parametrize(
    ("event", "why"),
    [
        (one("$feature_flag_called", **{"$feature_flag": "new-checkout"}), "unknown_event"),
        (one("$autocapture", **{"$event_type": "change"}), "unknown_event"),
        (one("$web_vitals", **{"$web_vitals_LCP_value": "slow"}), "invalid_field"),
        (one("$exception", **{"$exception_list": "TypeError"}), "invalid_field"),
        (one("Order Completed", revenue=-1), "invalid_field"),
        ({**one("$pageview"), "timestamp": None}, "invalid_field"),
        ({"event": "$pageview", "timestamp": 1.0, "properties": {}}, "missing_id"),
    ],
)
def test_rejections_keep_the_good_items(event: dict[str, Any], why: str) -> None:
    out = posthog.adapt({"api_key": "phc_x", "batch": [one("$pageview"), event]})
    assert len(out.events) == 1
    assert [r.reason for r in out.rejected] == [why]


def test_detection_does_not_take_segment_batches() -> None:
    assert detect(body()) == "posthog"
    assert detect(body()["batch"]) == "posthog" and detect(body()["batch"][0]) == "posthog"
    assert detect({"batch": [one("$pageview")]}) == "posthog"  # no api_key: by its items
    assert detect({"batch": [{"type": "track", "event": "Order Completed"}]}) == "segment"
    assert detect({"batch": []}) == "segment"
    assert adapt(body()).events == events()
    with pytest.raises(AdapterError) as exc:
        posthog.adapt({"api_key": "phc_x", "batch": []})
    assert exc.value.reason == "empty"


def test_replay_keys_by_session() -> None:
    from streams.replay import parse_line

    item = parse_line(json.dumps(body()).encode())
    assert item is not None and item.key == SESSION.encode()
