"""Segment adapter: V2 E-commerce spec calls and HTTP API batches -> canonical events.

Payload fixtures in tests/data/adapters/ follow the public examples of
- the V2 E-commerce spec: https://segment.com/docs/connections/spec/ecommerce/v2/
- the Spec's common fields: https://segment.com/docs/connections/spec/common/
- the HTTP Tracking API batch: https://segment.com/docs/connections/sources/catalog/libraries/server/http-api/#batch
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from detectors.account import route
from detectors.events import (
    ApiError,
    CartUpdated,
    CheckoutStarted,
    CheckoutStepCompleted,
    CheckoutStepViewed,
    Click,
    CouponEntered,
    DeadClick,
    FormFieldError,
    FormSubmitted,
    Identify,
    JsError,
    OrderCompleted,
    PagePerformance,
    PageView,
    PaymentAttempted,
    decode_batch,
    encode_batch,
)
from streams.adapters import segment
from streams.adapters.base import AdapterError
from streams.adapters.detect import detect
from streams.normalize import normalize

DATA = Path(__file__).resolve().parent.parent / "data" / "adapters"
NOON = 1714564800.0  # 2024-05-01T12:00:00Z


def load(name: str) -> Any:
    return json.loads((DATA / name).read_text())


def one(payload: dict[str, Any]) -> Any:
    out = segment.adapt(payload)
    assert not out.rejected, out.rejected
    assert len(out.events) == 1
    return out.events[0]


def reason(payload: Any) -> str:
    out = segment.adapt(payload)
    assert not out.events
    assert len(out.rejected) == 1
    return out.rejected[0].reason


@pytest.fixture
def order() -> dict[str, Any]:
    return load("segment_order_completed.json")


# --- positive mapping ------------------------------------------------------------------------


def test_order_completed_fields_land_where_expected(order: dict[str, Any]) -> None:
    e = one(order)
    assert isinstance(e, OrderCompleted)
    assert e.id == "ajs-next-1714564800000-6a1f8f47"
    assert e.time == NOON  # "timestamp" wins over originalTimestamp/sentAt/receivedAt
    assert e.session_id == "1714564790123"  # numeric context.sessionId, as a string
    assert e.customer_id == "019mr8mf4r"
    assert e.url == "https://shop.example.com/checkout/thank-you"
    assert (e.order_id, e.revenue, e.currency) == ("50314b8e9bcf000000000000", 25.0, "USD")


def test_revenue_falls_back_to_total_then_value(order: dict[str, Any]) -> None:
    del order["properties"]["revenue"]
    assert one(order).revenue == 27.5
    del order["properties"]["total"]
    order["properties"]["value"] = "12.5"
    assert one(order).revenue == 12.5


@pytest.mark.parametrize(
    ("drop", "expected"),
    [
        (["timestamp"], NOON - 0.5),  # originalTimestamp
        (["timestamp", "originalTimestamp"], NOON + 0.1),  # sentAt
        (["timestamp", "originalTimestamp", "sentAt"], NOON + 0.4),  # receivedAt
    ],
)
def test_time_fallbacks(order: dict[str, Any], drop: list[str], expected: float) -> None:
    for key in drop:
        del order[key]
    assert one(order).time == pytest.approx(expected)


def test_naive_timestamp_is_utc(order: dict[str, Any]) -> None:
    order["timestamp"] = "2024-05-01T12:00:00"
    assert one(order).time == NOON


@pytest.mark.parametrize(
    ("where", "key", "value", "expected"),
    [
        ("context", "session_id", "ctx-snake", "ctx-snake"),
        ("properties", "session_id", "prop-session", "prop-session"),
        (None, None, None, "23adfd82-aa0f-45a7-a756-24f2a7a4c895"),  # anonymousId
    ],
)
def test_session_id_fallbacks(
    order: dict[str, Any], where: str | None, key: str | None, value: Any, expected: str
) -> None:
    del order["context"]["sessionId"]
    if where is not None and key is not None:
        order[where][key] = value
    event = one(order)
    # A device id spans visits: only then may idle time split the session (Engine).
    assert (event.session_id, event.derived_session) == (expected, where is None)


def test_session_falls_back_to_user_id(order: dict[str, Any]) -> None:
    del order["context"]["sessionId"]
    del order["anonymousId"]
    event = one(order)
    assert (event.session_id, event.derived_session) == ("019mr8mf4r", True)


def test_coupon_entered_is_an_action_not_a_coupon_result(order: dict[str, Any]) -> None:
    call = {**order, "event": "Coupon Entered",
            "properties": {"order_id": "50314b8e", "cart_id": "923c", "coupon_id": "sale20"}}
    event = one(call)
    assert isinstance(event, FormSubmitted)
    assert (event.form, event.success) == ("coupon", True)


@pytest.mark.parametrize("kind", ["page", "track"])
def test_pages_and_product_views_keep_the_product(order: dict[str, Any], kind: str) -> None:
    call = {**order, "type": kind, "properties": {"product_id": 507, "price": "18.99",
                                                 "name": "Monopoly: 3rd Edition"}}
    if kind == "track":
        call["event"] = "Product Viewed"
    event = one(call)
    assert isinstance(event, PageView)
    assert (event.product_id, event.price) == ("507", 18.99)
    call["properties"] = {"price": "not a price", "sku": "G-32"}
    assert reason(call) == "invalid_field"


def test_http_api_batch_maps_each_call_and_merges_batch_context() -> None:
    out = segment.adapt(load("segment_batch.json"))
    ident, page, checkout, completed = out.events
    assert isinstance(ident, Identify)
    assert ident.traits["email"] == "jake@yahoo.com"
    assert ident.customer_id == "019mr8mf4r" and ident.session_id == "507f191e810c19729de860ea"
    assert isinstance(page, PageView)
    assert (page.url, page.path, page.title, page.referrer) == (
        "https://shop.example.com/checkout",
        "/checkout",
        "Checkout | Initech",
        "https://shop.example.com/cart",
    )
    assert isinstance(checkout, CheckoutStarted)
    assert (checkout.cart_value, checkout.currency) == (30.0, "USD")  # value before revenue
    assert isinstance(completed, OrderCompleted) and completed.revenue == 25.0
    # The batch-level context ("phone") reaches every call; a call's own context wins.
    assert [e.device for e in out.events] == ["mobile", "mobile", "mobile", "tablet"]
    # "Song Played" (the HTTP API doc's own example) is not a mapped name; the rest still flow.
    [rej] = out.rejected
    assert rej.reason == "unknown_event" and "Song Played" in rej.detail
    assert rej.item["messageId"] == "msg-song-1"


def test_top_level_list_of_calls() -> None:
    out = segment.adapt(load("segment_calls.json"))
    assert not out.rejected
    by_id = {e.id: e for e in out.events}
    assert len(by_id) == 19

    add = by_id["m-add"]
    assert isinstance(add, CartUpdated)
    assert (add.action, add.product_id, add.quantity, add.price) == (
        "add",
        "507f1f77bcf86cd799439011",
        1,
        18.99,
    )
    assert add.url == "https://www.example.com/product/path"  # properties.url without a page
    remove = by_id["m-remove"]
    assert (remove.action, remove.quantity, remove.cart_value) == ("remove", 2, 0.0)
    view = by_id["m-cart"]
    assert (view.action, view.product_id, view.cart_value, view.currency) == (
        "view",
        None,
        41.5,
        "EUR",
    )

    viewed, completed = by_id["m-step-v"], by_id["m-step-c"]
    assert isinstance(viewed, CheckoutStepViewed) and viewed.step == 2
    assert isinstance(completed, CheckoutStepCompleted)
    assert (completed.step, completed.step_name) == (2, "shipping")
    pay_info = by_id["m-pay-info"]
    assert isinstance(pay_info, CheckoutStepCompleted)
    assert (pay_info.step, pay_info.step_name) == (3, "payment")  # shared step convention

    applied, denied = by_id["m-coupon-ok"], by_id["m-coupon-no"]
    assert isinstance(applied, CouponEntered) and isinstance(denied, CouponEntered)
    assert (applied.success, applied.code, applied.reason) == (True, "may_deals_2016", None)
    assert (denied.success, denied.code, denied.reason) == (
        False,
        "may_deals_2016",
        "Coupon expired",
    )

    search = by_id["m-search"]
    assert isinstance(search, PageView)
    assert (search.title, search.url) == (
        "Products Searched",
        "https://www.example.com/search?q=blue+roses",
    )

    declined, attempted = by_id["m-pay-no"], by_id["m-pay-try"]
    assert isinstance(declined, PaymentAttempted)
    assert (declined.success, declined.decline_reason, declined.method) == (
        False,
        "insufficient_funds",
        "card",
    )
    assert (declined.provider, declined.amount, declined.currency) == ("stripe", 41.5, "EUR")
    assert (attempted.success, attempted.method, attempted.amount) == (True, "paypal", 41.5)

    click, dead = by_id["m-click"], by_id["m-dead"]
    assert isinstance(click, Click) and (click.x, click.y, click.target) == (
        412.0,
        980.5,
        "button#pay",
    )
    assert isinstance(dead, DeadClick) and (dead.x, dead.target) == (None, "img.hero")

    field = by_id["m-field"]
    assert isinstance(field, FormFieldError)
    assert (field.form, field.field, field.message) == (
        "checkout",
        "postcode",
        "Enter a valid postcode",
    )
    form = by_id["m-form"]
    assert isinstance(form, FormSubmitted) and form.success is False

    js, api, vitals = by_id["m-js"], by_id["m-api"], by_id["m-vitals"]
    assert isinstance(js, JsError) and js.message.startswith("TypeError")
    assert isinstance(api, ApiError)
    assert (api.endpoint, api.status_code) == ("/api/payments", 502)
    assert api.url == "https://shop.example.com/checkout"  # the page, not the failed endpoint
    assert isinstance(vitals, PagePerformance)
    assert (vitals.lcp_ms, vitals.inp_ms, vitals.cls, vitals.ttfb_ms) == (
        4200.0,
        350.0,
        0.31,
        900.0,
    )

    screen = by_id["m-screen"]
    assert isinstance(screen, PageView) and screen.title == "Checkout"
    assert screen.device == "mobile"  # "ios" device type


def test_events_survive_the_canonical_codec() -> None:
    """Types really are what the structs declare (msgspec does not check on __init__)."""
    events = segment.adapt(load("segment_calls.json")).events
    events += segment.adapt(load("segment_batch.json")).events
    assert decode_batch(encode_batch(events)) == events


def test_form_submitted_defaults_to_success(order: dict[str, Any]) -> None:
    order["event"] = "Form Submitted"
    order["properties"] = {"form": "newsletter"}
    assert one(order).success is True


# --- rejections ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Song Played", "order completed", "Coupon Removed"])
def test_unmapped_track_name_is_unknown_event(order: dict[str, Any], name: str) -> None:
    order["event"] = name
    assert reason(order) == "unknown_event"


def test_unmapped_call_type_is_unknown_event(order: dict[str, Any]) -> None:
    order["type"] = "alias"
    assert reason(order) == "unknown_event"


def _group(**fields: Any) -> dict[str, Any]:
    return {"type": "group", "messageId": "g1", "userId": "u1", "groupId": "acme",
            "timestamp": "2024-05-01T12:00:00Z",
            "traits": {"name": "Acme", "industry": "retail", "employees": 40}, **fields}


def test_a_group_call_ties_its_user_to_the_account() -> None:
    joined = one(_group(traits={"employees": 40, "account_id": "other"}))
    assert isinstance(joined, Identify)
    assert joined.customer_id == "u1"
    # the group id is the account, whatever trait of that name the call carries
    assert joined.traits == {"employees": 40, "account_id": "acme"}
    assert route(joined, {}) == "acme"


def test_a_group_call_is_detected_as_segment() -> None:
    assert detect(_group()) == "segment"


@pytest.mark.parametrize("group_id", [None, ""])
def test_a_group_call_without_group_id_is_missing_id(group_id: Any) -> None:
    assert reason(_group(groupId=group_id)) == "missing_id"


@pytest.mark.parametrize("fields", [{"groupId": "g" * 5000}, {"groupId": ["acme"]},
                                    {"traits": {"name": "x" * 100_000}},
                                    {"traits": {"employees": 10**30}},
                                    {"traits": "acme"}])
def test_a_group_call_out_of_bounds_is_invalid_field(fields: dict[str, Any]) -> None:
    # The adapter checks types; the edge (normalize) checks every field's length and range.
    out = normalize(json.dumps(_group(**fields)).encode(), "segment", max_bytes=1 << 20,
                    max_events=10, now=NOON)
    assert not out.support and [d.reason for d in out.dead] == ["invalid_field"]


@pytest.mark.parametrize("value", [None, ""])
def test_an_empty_message_id_is_none(order: dict[str, Any], value: Any) -> None:
    order["messageId"] = value
    assert one(order).id == segment.content_id(order)


def test_no_session_or_user_is_missing_id(order: dict[str, Any]) -> None:
    del order["context"]["sessionId"]
    del order["anonymousId"]
    del order["userId"]
    assert reason(order) == "missing_id"


@pytest.mark.parametrize("value", ["abc", True, "NaN", -5, [25]])
def test_bad_revenue_is_invalid_field(order: dict[str, Any], value: Any) -> None:
    order["properties"]["revenue"] = value
    out = segment.adapt(order)
    assert [r.reason for r in out.rejected] == ["invalid_field"]
    assert "revenue" in out.rejected[0].detail


def test_no_revenue_at_all_is_invalid_field(order: dict[str, Any]) -> None:
    for key in ("revenue", "total"):
        del order["properties"][key]
    assert reason(order) == "invalid_field"


@pytest.mark.parametrize("stamp", ["yesterday", "May18, 2014", True, 10**30, float("nan"),
                                   "2024-05-01 12:00:00+02:00 UTC", "12345678"])
def test_unparseable_timestamp_is_invalid_field(order: dict[str, Any], stamp: Any) -> None:
    order["timestamp"] = stamp
    assert reason(order) == "invalid_field"


@pytest.mark.parametrize("stamp", [
    "2024-05-01T12:00:00Z",  # RFC 3339
    "2024-05-01T14:00:00+02:00",
    "2024-05-01 12:00:00",  # space-separated, no zone: UTC
    "2024-05-01 12:00:00 UTC",  # as BigQuery and many CSV exports write it
    "2024-05-01 12:00:00 GMT",
    1714564800,  # epoch seconds
    1714564800.0,
    1714564800000,  # epoch milliseconds
    "1714564800",
    "1714564800000",
    "20240501T120000Z",  # ISO 8601's basic form
])
def test_common_timestamp_forms_are_read(order: dict[str, Any], stamp: Any) -> None:
    order["timestamp"] = stamp
    assert segment.adapt(order).events[0].time == NOON


def test_no_timestamp_at_all_is_invalid_field(order: dict[str, Any]) -> None:
    for key in ("timestamp", "originalTimestamp", "sentAt", "receivedAt"):
        del order[key]
    assert reason(order) == "invalid_field"


@pytest.mark.parametrize(
    ("event", "props"),
    [
        ("Element Clicked", {"x": "left", "y": 1}),
        ("Element Clicked", {"y": 1}),
        ("Checkout Step Viewed", {"step": "two"}),
        ("Checkout Step Viewed", {"step": 1.5}),
        ("Checkout Step Viewed", {}),
        ("API Error", {"endpoint": "/api", "status_code": 700}),
        ("Form Field Error", {"form": "checkout"}),
        ("Payment Attempted", {"amount": 3}),
        ("Product Added", {"quantity": -1}),
        ("JS Error", {"source": "app.js"}),
    ],
)
def test_bad_or_missing_fields_are_invalid_field(
    order: dict[str, Any], event: str, props: dict[str, Any]
) -> None:
    order["event"] = event
    order["properties"] = props
    assert reason(order) == "invalid_field"


def test_non_object_properties_or_traits_are_invalid_field(order: dict[str, Any]) -> None:
    bad = copy.deepcopy(order)
    bad["properties"] = ["not", "an", "object"]
    assert reason(bad) == "invalid_field"
    ident = {"type": "identify", "messageId": "i1", "userId": "u1", "traits": "vip"}
    ident["timestamp"] = "2024-05-01T12:00:00Z"
    assert reason(ident) == "invalid_field"


def test_a_call_without_message_id_gets_one_from_its_content(order: dict[str, Any]) -> None:
    del order["messageId"]
    first = segment.adapt(order).events[0].id
    resent = segment.adapt(dict(order, sentAt="2024-05-01T12:00:30Z")).events[0].id
    other = segment.adapt(dict(order, timestamp="2024-05-01T12:00:01Z")).events[0].id
    assert first == resent  # a retry restamps sentAt: still the same call
    assert other != first
    assert first.startswith("h") and len(first) == 25


def test_bad_items_do_not_stop_good_ones_in_a_batch(order: dict[str, Any]) -> None:
    no_id = {k: v for k, v in order.items() if k not in ("anonymousId", "userId", "context")}
    out = segment.adapt({"batch": [order, "junk", no_id, order]})
    assert len(out.events) == 2
    assert [r.reason for r in out.rejected] == ["invalid_field", "missing_id"]
    assert out.rejected[0].item == "junk"


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        ({"batch": []}, "empty"),
        ([], "empty"),
        ({}, "empty"),
        ({"batch": "nope"}, "unknown_format"),
        ({"event": "Order Completed"}, "unknown_format"),
        ("Order Completed", "unknown_format"),
    ],
)
def test_whole_payload_errors_raise(payload: Any, why: str) -> None:
    with pytest.raises(AdapterError) as info:
        segment.adapt(payload)
    assert info.value.reason == why


@pytest.mark.parametrize(("name", "action"), [
    ("Subscription Started", "started"), ("Subscription Renewed", "renewed"),
    ("Subscription Cancelled", "cancelled"), ("Subscription Canceled", "cancelled"),
    ("Contract Not Renewed", "expired"),
])
def test_subscription_events_are_customer_events_with_plan_and_mrr(name: str,
                                                                   action: str) -> None:
    from detectors.events import SUPPORT_EVENT_TYPES, Subscription

    out = segment.adapt({"type": "track", "event": name, "messageId": "m", "userId": "u1",
                         "timestamp": "2026-03-01T10:00:00Z",
                         "properties": {"plan": "pro", "mrr": 99}})
    [event] = out.events
    assert isinstance(event, Subscription) and isinstance(event, SUPPORT_EVENT_TYPES)
    assert (event.action, event.plan, event.mrr, event.customer_id) == (action, "pro", 99.0,
                                                                        "u1")
    bad = segment.adapt({"type": "track", "event": name, "messageId": "m", "userId": "u1",
                         "timestamp": "2026-03-01T10:00:00Z", "properties": {"mrr": -5}})
    assert bad.rejected[0].reason == "invalid_field"
