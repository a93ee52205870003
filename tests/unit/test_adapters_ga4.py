"""GA4 Measurement Protocol adapter -> canonical events.

Fixtures in tests/data/adapters/ follow
- the Measurement Protocol body: https://developers.google.com/analytics/devguides/collection/protocol/ga4/sending-events
- recommended (e-commerce) events and their params, e.g. the purchase example with
  transaction_id "T_12345", value 30.03: https://developers.google.com/analytics/devguides/collection/ga4/reference/events
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from detectors.events import (
    ApiError,
    CartUpdated,
    CheckoutStarted,
    CheckoutStepCompleted,
    CheckoutStepViewed,
    Click,
    CouponEntered,
    FormFieldError,
    JsError,
    OrderCompleted,
    PagePerformance,
    PageView,
    PaymentAttempted,
    decode_batch,
    encode_batch,
)
from streams.adapters import ga4
from streams.adapters.base import AdapterError

DATA = Path(__file__).resolve().parent.parent / "data" / "adapters"
NOON = 1714564800.0  # 2024-05-01T12:00:00Z


def load(name: str) -> Any:
    return json.loads((DATA / name).read_text())


def payload_of(name: str, params: dict[str, Any] | None = None, **top: Any) -> dict[str, Any]:
    body = {"client_id": "123456.7654321", "timestamp_micros": 1714564800000000, **top}
    body["events"] = [{"name": name, "params": params or {}}]
    return body


def reason(payload: dict[str, Any]) -> str:
    out = ga4.adapt(payload)
    assert not out.events
    assert len(out.rejected) == 1
    return out.rejected[0].reason


def test_ecommerce_funnel_fields_land_where_expected() -> None:
    out = ga4.adapt(load("ga4_ecommerce.json"))
    assert not out.rejected
    page, add, view, begin, ship, pay, purchase = out.events
    for e in out.events:
        assert (e.session_id, e.customer_id, e.device) == ("1714564700", "user-8812", "mobile")

    assert isinstance(page, PageView)
    assert page.time == NOON  # payload-level timestamp_micros
    assert (page.url, page.title, page.referrer) == (
        "https://shop.example.com/product/tee",
        "Stan and Friends Tee",
        "https://www.google.com/",
    )
    assert isinstance(add, CartUpdated)
    assert add.time == NOON + 1  # params.timestamp_micros, sent as a string
    assert (add.action, add.product_id, add.quantity, add.price, add.currency) == (
        "add",
        "SKU_12345",
        3,
        10.01,
        "USD",
    )
    assert add.cart_value is None  # add_to_cart's value is the items added, not the cart
    assert isinstance(view, CartUpdated)
    assert view.time == NOON + 2  # event-level timestamp_micros
    assert (view.action, view.cart_value) == ("view", 30.03)
    assert isinstance(begin, CheckoutStarted) and begin.cart_value == 30.03
    assert isinstance(ship, CheckoutStepCompleted) and (ship.step, ship.step_name) == (
        2,
        "shipping",
    )
    assert isinstance(pay, CheckoutStepCompleted) and (pay.step, pay.step_name) == (3, "payment")
    assert isinstance(purchase, OrderCompleted)
    assert (purchase.order_id, purchase.revenue, purchase.currency) == ("T_12345", 30.03, "USD")
    assert purchase.time == NOON + 6
    assert decode_batch(encode_batch(out.events)) == out.events


def test_generated_ids_are_deterministic_and_distinct() -> None:
    body = load("ga4_ecommerce.json")
    first = [e.id for e in ga4.adapt(body).events]
    again = [e.id for e in ga4.adapt(load("ga4_ecommerce.json")).events]
    assert first == again
    assert len(set(first)) == len(first)
    assert all(i.startswith("ga4:") and len(i) == 20 for i in first)
    body["client_id"] = "999.111"
    assert [e.id for e in ga4.adapt(body).events] != first


def test_event_id_param_wins() -> None:
    [e] = ga4.adapt(payload_of("page_view", {"event_id": "evt-1"})).events
    assert e.id == "evt-1"


def test_step_param_overrides_the_convention() -> None:
    [e] = ga4.adapt(payload_of("add_payment_info", {"step": 4})).events
    assert (e.step, e.step_name) == (4, "payment")


def test_session_falls_back_to_client_id() -> None:
    [e] = ga4.adapt(payload_of("page_view")).events
    assert e.session_id == "123456.7654321" and e.customer_id is None
    assert e.derived_session  # a client id spans visits: idle time splits it
    [named] = ga4.adapt(payload_of("page_view", {"session_id": "987"})).events
    assert (named.session_id, named.derived_session) == ("987", False)


def test_page_view_status_code_marks_error_pages() -> None:
    [e] = ga4.adapt(payload_of("page_view", {"status_code": 503})).events
    assert isinstance(e, PageView) and e.status_code == 503
    [e] = ga4.adapt(payload_of("page_view")).events
    assert e.status_code is None
    assert reason(payload_of("page_view", {"status_code": "oops"})) == "invalid_field"


def test_custom_friction_events() -> None:
    out = ga4.adapt(load("ga4_friction.json"))
    step, pay, coupon, field, exc, vitals, click, api = out.events
    assert isinstance(step, CheckoutStepViewed)
    assert (step.step, step.step_name, step.session_id) == (2, "shipping", "1714564700")
    # No session param: the app_instance_id is the session; payload micros sent as a string.
    assert pay.session_id == "cbd7bd95fd5ee1a6d5a3a7c5a76d1c36" and pay.time == NOON
    assert isinstance(pay, PaymentAttempted)
    assert (pay.id, pay.success, pay.decline_reason, pay.method, pay.provider, pay.amount) == (
        "evt-pay-1",
        False,
        "do_not_honor",
        "card",
        "adyen",
        30.03,
    )
    assert isinstance(coupon, CouponEntered)
    assert (coupon.success, coupon.code, coupon.reason) == (False, "SUMMER_FUN", "expired")
    assert isinstance(field, FormFieldError) and (field.form, field.field) == (
        "address",
        "postal_code",
    )
    assert isinstance(exc, JsError) and exc.message == "TypeError: x is undefined"
    assert isinstance(vitals, PagePerformance)
    assert (vitals.lcp_ms, vitals.inp_ms, vitals.cls) == (3100.5, 220.0, 0.12)
    assert vitals.url == "https://shop.example.com/checkout"
    assert isinstance(click, Click) and (click.x, click.y, click.target) == (10.0, 20.0, "#pay")
    assert isinstance(api, ApiError) and (api.endpoint, api.status_code) == ("/api/cart", 500)

    # tutorial_begin (the Measurement Protocol page's example) is not mapped.
    [rej] = out.rejected
    assert rej.reason == "unknown_event" and "tutorial_begin" in rej.detail
    # The rejected item is a payload of its own: replaying it gives the same answer.
    assert rej.item["app_instance_id"] == "cbd7bd95fd5ee1a6d5a3a7c5a76d1c36"
    assert [e["name"] for e in rej.item["events"]] == ["tutorial_begin"]
    assert ga4.adapt(rej.item).rejected[0].reason == "unknown_event"


# --- rejections ------------------------------------------------------------------------------


def test_no_timestamp_anywhere_is_invalid_field() -> None:
    body = payload_of("page_view")
    del body["timestamp_micros"]
    assert reason(body) == "invalid_field"


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("purchase", {"transaction_id": "T_1", "value": "abc"}),
        ("purchase", {"transaction_id": "T_1"}),
        ("purchase", {"value": True}),
        ("payment_attempted", {"decline_reason": "do_not_honor"}),
        ("payment_attempted", {"success": "maybe"}),
        ("click", {"x": "left", "y": 3}),
        ("checkout_step_viewed", {}),
        ("add_to_cart", {"items": "SKU_1"}),
        ("add_to_cart", {"items": [{"item_id": "SKU_1", "quantity": 1.5}]}),
        ("page_view", {"timestamp_micros": "noon"}),
        ("api_error", {"endpoint": "/x", "status_code": 1000}),
        ("form_field_error", {"form": "address"}),
    ],
)
def test_bad_params_are_invalid_field(name: str, params: dict[str, Any]) -> None:
    assert reason(payload_of(name, params)) == "invalid_field"


def test_unmapped_name_is_unknown_event() -> None:
    assert reason(payload_of("level_up", {"level": 5})) == "unknown_event"


def test_no_session_and_no_client_id_is_missing_id() -> None:
    body = payload_of("page_view")
    del body["client_id"]
    assert reason(body) == "missing_id"


def test_unusable_user_id_rejects_the_whole_payload() -> None:
    out = ga4.adapt(payload_of("page_view", user_id={"id": 1}))
    assert not out.events
    assert [r.reason for r in out.rejected] == ["invalid_field"]


def test_bad_events_do_not_stop_good_ones() -> None:
    body = load("ga4_ecommerce.json")
    body["events"].insert(1, {"name": "purchase", "params": {"value": "abc"}})
    body["events"].insert(1, "junk")
    out = ga4.adapt(body)
    assert len(out.events) == 7
    assert [r.reason for r in out.rejected] == ["invalid_field", "invalid_field"]


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        ({"client_id": "1.2", "events": []}, "empty"),
        ({"client_id": "1.2"}, "unknown_format"),
        ({"client_id": "1.2", "events": {"name": "purchase"}}, "unknown_format"),
        ([{"name": "purchase"}], "unknown_format"),
    ],
)
def test_whole_payload_errors_raise(payload: Any, why: str) -> None:
    with pytest.raises(AdapterError) as info:
        ga4.adapt(payload)
    assert info.value.reason == why
