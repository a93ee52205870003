"""Snowplow enriched events adapter -> canonical events.

Fixtures in tests/data/adapters/:
- snowplow_enriched.tsv: enriched TSV lines, the 131 fields in the order of the Snowplow Python
  Analytics SDK's ``ENRICHED_EVENT_FIELD_TYPES``; self-describing JSON in ``contexts`` and
  ``unstruct_event`` with the Iglu Central schemas: link_click 1-0-1, button_click 1-0-0,
  submit_form 1-0-0, web_vitals 1-0-0, snowplow_ecommerce_action 1-0-2 with the product,
  cart, checkout_step and transaction entities 1-0-0.
- snowplow_events.json: the same lines through the SDK's own ``transform`` (its 2016 source,
  github.com/snowplow/snowplow-python-analytics-sdk), i.e. its JSON form exactly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from detectors.events import (
    CartUpdated,
    CheckoutStepViewed,
    Click,
    FormInteraction,
    FormSubmitted,
    OrderCompleted,
    PagePerformance,
    PageView,
    Presence,
    decode_batch,
    encode_batch,
)
from streams.adapters import adapt, detect, snowplow
from streams.adapters.base import AdapterError
from streams.normalize import normalize

DATA = Path(__file__).resolve().parent.parent / "data" / "adapters"
NOON = 1714564800.0  # 2024-05-01T12:00:00Z
LIMITS: dict[str, Any] = {"max_bytes": 1 << 20, "max_events": 100, "now": NOON}
SESSION = "7d5b6f5e-3a9e-4b8b-b5d3-2c1f6e9a0b44"


def tsv() -> str:
    return (DATA / "snowplow_enriched.tsv").read_text()


def events_json() -> list[dict[str, Any]]:
    return json.loads((DATA / "snowplow_events.json").read_text())  # type: ignore[no-any-return]


def test_tsv_has_the_sdk_field_count_and_both_forms_agree() -> None:
    lines = tsv().splitlines()
    assert all(len(line.split("\t")) == len(snowplow.FIELDS) == 131 for line in lines)
    from_tsv, from_json = snowplow.adapt(tsv()), snowplow.adapt(events_json())
    assert not from_tsv.rejected and not from_json.rejected
    assert from_tsv.events == from_json.events
    assert len(from_tsv.events) == len(lines)
    assert decode_batch(encode_batch(from_tsv.events)) == from_tsv.events
    # Flat keys as the SDK names them.
    assert snowplow.from_tsv(lines[2])["unstruct_event_com_snowplowanalytics_snowplow_link_click_1"]


def test_ids_time_session_device() -> None:
    page = snowplow.adapt(tsv()).events[0]
    assert isinstance(page, PageView)
    assert (page.id, page.session_id, page.derived_session) == (
        "c6ef3124-b53a-4b13-a233-0088f79dcbcb", SESSION, False)
    assert page.time == NOON  # derived_tstamp, not collector_tstamp (a second later)
    assert (page.url, page.path, page.title, page.referrer, page.device) == (
        "https://shop.example/checkout/payment", "/checkout/payment", "Payment",
        "https://shop.example/checkout/shipping", "desktop")


def test_session_falls_back_to_domain_userid_and_time_to_older_stamps() -> None:
    ev = {**events_json()[0], "user_id": "cust-7"}
    del ev["domain_sessionid"], ev["derived_tstamp"]
    [page] = snowplow.adapt(ev).events
    assert (page.session_id, page.derived_session, page.customer_id) == (
        "f6b2b8e0-8ad0-4a5c-9b9e-1f0d8b2e7c11", True, "cust-7")
    assert page.time == NOON  # dvce_created_tstamp
    del ev["dvce_created_tstamp"]
    assert snowplow.adapt(ev).events[0].time == NOON + 1  # collector_tstamp


def test_page_ping_is_presence_here() -> None:
    ping = snowplow.adapt(tsv()).events[1]
    assert isinstance(ping, Presence) and ping.state == "here" and ping.time == NOON + 10


def test_clicks_have_a_target_and_no_position() -> None:
    link, button = snowplow.adapt(tsv()).events[2:4]
    assert isinstance(link, Click) and isinstance(button, Click)
    assert (link.target, link.x, link.y) == ("a#delivery-help", None, None)
    assert button.target == "button#pay"
    ev = events_json()[2]
    ev["unstruct_event_com_snowplowanalytics_snowplow_link_click_1"] = {
        "targetUrl": "https://shop.example/returns", "elementClasses": ["foot", "small"]}
    assert snowplow.adapt(ev).events[0].target == "a.foot.small"
    # button_click's model 2 (iglu:com.snowplowanalytics.snowplow/button_click/jsonschema/2-0-0)
    ev = events_json()[3]
    data = ev.pop("unstruct_event_com_snowplowanalytics_snowplow_button_click_1")
    ev["unstruct_event_com_snowplowanalytics_snowplow_button_click_2"] = data
    assert snowplow.adapt(ev).events[0].target == "button#pay"


def test_submit_form_and_web_vitals() -> None:
    form, vitals = snowplow.adapt(tsv()).events[4:6]
    assert isinstance(form, FormSubmitted) and (form.form, form.success) == ("payment", True)
    assert isinstance(vitals, PagePerformance)
    assert (vitals.lcp_ms, vitals.inp_ms, vitals.cls, vitals.ttfb_ms) == (4800.2, 640, 0.31, 350.1)


def test_form_tracking_focus_and_change_are_activity_without_the_value() -> None:
    # focus_form 1-0-0 and change_form 1-0-0 (Iglu Central), as form tracking sends them.
    submit = events_json()[4]
    del submit["unstruct_event_com_snowplowanalytics_snowplow_submit_form_1"]
    focus = {**submit, "event_id": "e-focus",
             "unstruct_event_com_snowplowanalytics_snowplow_focus_form_1": {
                 "formId": "payment", "elementId": "card_number", "nodeName": "INPUT",
                 "elementType": "text", "elementClasses": ["field"], "value": None}}
    change = {**submit, "event_id": "e-change",
              "unstruct_event_com_snowplowanalytics_snowplow_change_form_1": {
                  "formId": "payment", "elementId": "email", "nodeName": "INPUT",
                  "type": "email", "elementClasses": [], "value": "jane@example.com"}}
    out = snowplow.adapt([focus, change])
    assert not out.rejected
    got = [(e.form, e.field, e.action) for e in out.events if isinstance(e, FormInteraction)]
    assert got == [("payment", "card_number", "focus"), ("payment", "email", "change")]
    assert b"jane" not in encode_batch(out.events)


def test_ecommerce_actions() -> None:
    view, add, remove, step, order = snowplow.adapt(tsv()).events[6:]
    assert isinstance(view, PageView) and (view.product_id, view.price) == ("SKU-1234", 89.0)
    assert isinstance(add, CartUpdated)
    assert (add.action, add.product_id, add.quantity, add.price, add.cart_value, add.currency) \
        == ("add", "SKU-1234", 2, 89.0, 178.0, "GBP")
    assert isinstance(remove, CartUpdated) and (remove.action, remove.quantity,
                                                 remove.cart_value) == ("remove", 1, 89.0)
    assert isinstance(step, CheckoutStepViewed) and step.step == 2
    assert isinstance(order, OrderCompleted)
    assert (order.order_id, order.revenue, order.currency) == ("T-20240501-0042", 98.5, "GBP")


EC = "com_snowplowanalytics_snowplow_ecommerce"


def test_declines_errors_and_list_views() -> None:
    """trns_error with its transaction_error entity; the JavaScript tracker's
    application_error; a list view as a page view."""
    order = events_json()[10]
    decline = {**order, f"unstruct_event_{EC}_snowplow_ecommerce_action_1": {"type": "trns_error"},
               f"contexts_{EC}_transaction_error_1": [{
                   "error_code": "E522", "error_shortcode": "card_declined",
                   "error_description": "Card declined by issuer", "error_type": "hard",
                   "resolution": "retry_allowed"}]}
    error = {**events_json()[5], "event_name": "application_error"}
    del error["unstruct_event_com_snowplowanalytics_snowplow_web_vitals_1"]
    error["unstruct_event_com_snowplowanalytics_snowplow_application_error_1"] = {
        "programmingLanguage": "JAVASCRIPT", "message": "Uncaught TypeError: x is undefined",
        "fileName": "https://shop.example/static/js/app.js", "lineNumber": 3, "lineColumn": 14}
    listed = {**events_json()[6], f"unstruct_event_{EC}_snowplow_ecommerce_action_1": {
        "type": "list_view", "name": "search results"}}
    out = snowplow.adapt([decline, error, listed])
    assert not out.rejected
    pay, js, page = out.events
    assert (pay.success, pay.decline_reason, pay.method, pay.amount, pay.currency) == (
        False, "card_declined", "card", 98.5, "GBP")
    assert (js.message, js.source) == ("Uncaught TypeError: x is undefined",
                                       "https://shop.example/static/js/app.js")
    assert isinstance(page, PageView) and page.title == "search results"


def test_unknown_events_and_invalid_fields_are_rejected_one_by_one() -> None:
    good = events_json()[0]
    struct = {**good, "event": "struct", "event_id": "e-struct", "se_category": "video"}
    list_view = {**events_json()[6], "event_id": "e-list",
                 "unstruct_event_com_snowplowanalytics_snowplow_ecommerce_snowplow_ecommerce_"
                 "action_1": {"type": "refund"}}
    bad_vitals = {**events_json()[5], "event_id": "e-vitals",
                  "unstruct_event_com_snowplowanalytics_snowplow_web_vitals_1": {"lcp": "slow"}}
    bad_order = {**events_json()[10], "event_id": "e-order"}
    del bad_order["contexts_com_snowplowanalytics_snowplow_ecommerce_transaction_1"]
    no_id = {k: v for k, v in good.items() if k != "event_id"}
    out = snowplow.adapt([good, struct, list_view, bad_vitals, bad_order, no_id])
    assert [e.id for e in out.events] == [good["event_id"]]
    assert [r.reason for r in out.rejected] == [
        "unknown_event", "unknown_event", "invalid_field", "invalid_field", "missing_id"]


def test_bad_tsv_lines() -> None:
    lines = tsv().splitlines()
    short = "\t".join(lines[0].split("\t")[:130])
    fields = lines[2].split("\t")
    fields[snowplow.FIELDS.index("unstruct_event")] = '{"schema": "iglu:com.snowplowanalytics'
    broken = "\t".join(fields)
    out = snowplow.adapt("\n".join([lines[0], short, broken]))
    assert len(out.events) == 1
    assert [r.reason for r in out.rejected] == ["invalid_field", "invalid_field"]
    assert "131" in out.rejected[0].detail
    with pytest.raises(AdapterError) as exc:
        snowplow.adapt("\n\n")
    assert exc.value.reason == "empty"


def test_detected_and_normalized_from_tsv_bytes() -> None:
    assert detect(tsv()) == "snowplow"
    assert detect(events_json()) == "snowplow" and detect(events_json()[0]) == "snowplow"
    assert adapt(tsv()).events == adapt(events_json(), "snowplow").events
    for source in (None, "snowplow"):
        out = normalize(tsv().encode(), source, **LIMITS)
        assert not out.dead
        assert [len(v) for v in out.web.values()] == [11]
    # TSV bytes sent as another source are not JSON, as before.
    assert [d.reason for d in normalize(tsv().encode(), "segment", **LIMITS).dead] == ["not_json"]


def test_a_tsv_file_backtests_and_replays_line_by_line() -> None:
    """Lines end in tabs (empty last fields): neither the backtest nor replay strips them."""
    import io

    from detectors.alerting import Alerting
    from detectors.engine import Engine
    from detectors.session import SessionProcessor
    from streams.backtest import run
    from streams.replay import parse_line

    assert tsv().splitlines()[0].endswith("\t")
    res = run(io.BytesIO(tsv().encode()), Engine(SessionProcessor(), Alerting(),
                                                  session_gap=600))
    assert (res.messages, res.events, res.dead) == (11, 11, 0)
    [outcome] = res.outputs.outcomes
    assert outcome["converted"]
    item = parse_line(tsv().splitlines()[0].encode())
    assert item is not None and not item.bad and item.key == SESSION.encode()
