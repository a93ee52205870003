"""GA4 Measurement Protocol payloads -> canonical events.

The payload is the Measurement Protocol body
(https://developers.google.com/analytics/devguides/collection/protocol/ga4/sending-events):
``{"client_id" | "app_instance_id", "user_id"?, "timestamp_micros"?, "device"?, "events":
[{"name", "params"}]}``. Event names and parameters follow GA4's recommended events
(https://developers.google.com/analytics/devguides/collection/ga4/reference/events), plus the
custom events documented below for friction signals GA4 has no name for.

- ids: session = ``params.session_id``, else ``params.ga_session_id``, else the client id
  (``client_id`` or ``app_instance_id``: ``derived_session``, as it spans visits, idle time
  splits it); customer = ``user_id``. ``id`` = ``params.event_id``
  if sent, else ``"ga4:"`` + a 16-hex blake2b of (client id, timestamp, index in the payload,
  name), so a replayed payload gets the same ids and duplicates can be dropped downstream.
- time: ``params.timestamp_micros``, else the event's, else the payload's ``timestamp_micros``
  (microseconds, as numbers or numeric strings). None at all is ``invalid_field``: the
  collection time is not the event time and would distort gaps in a session.
- url = ``params.page_location``; device = ``device.category`` (mobile/tablet/desktop).
- page_view reads the custom param ``status_code`` (HTTP status of the page, as Segment's
  ``properties.status_code``): GA4 has no name for error pages.
- checkout steps (the convention the Segment adapter shares): ``begin_checkout`` starts the
  checkout (CheckoutStarted); step 2 is shipping (``add_shipping_info``), step 3 payment
  (``add_payment_info``); ``params.step`` overrides either. ``purchase`` ends it.
- carts: ``value`` of add_to_cart/remove_from_cart is the value of the items changed, not the
  cart, so it becomes ``cart_value`` only for ``view_cart``; the first item's ``item_id``,
  ``quantity`` and ``price`` describe the change.

Recommended events mapped: page_view; view_item, view_item_list, select_item, search,
view_promotion, select_promotion (page views titled with the event name); add_to_cart,
remove_from_cart, view_cart; begin_checkout; add_shipping_info; add_payment_info; purchase;
form_submit (enhanced measurement: form_id or form_name). Custom events: checkout_step_viewed
and checkout_step_completed (step, step_name), payment_attempted (success, decline_reason,
payment_type, provider, value, currency), coupon_applied / coupon_denied (coupon, reason),
form_field_error (field, form, message), js_error / exception (description or message,
source), web_vitals (lcp, inp, cls, ttfb in ms), click (x, y, target, text or link_text) and
dead_click (x, y, target),
api_error (endpoint, status_code). Any other name is ``unknown_event``.

>>> from streams.adapters import ga4
>>> out = ga4.adapt({"client_id": "123.456", "timestamp_micros": 1714564800000000,
...     "events": [{"name": "purchase", "params": {"transaction_id": "T_1", "value": 30.03,
...     "currency": "USD", "session_id": "987"}}]})
>>> order = out.events[0]
>>> order.session_id, order.time, order.order_id, order.revenue, order.id
('987', 1714564800.0, 'T_1', 30.03, 'ga4:b417971b6b1c0081')
"""

from __future__ import annotations

from collections.abc import Callable
from hashlib import blake2b
from typing import Any

from detectors.bounds import ID_CHARS, MAX_TIME
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
    JsError,
    OrderCompleted,
    PagePerformance,
    PageView,
    PaymentAttempted,
    Presence,
)
from streams.adapters.base import Adapted, AdapterError, Rejected
from streams.adapters.segment import (
    PAYMENT_STEP,
    SHIPPING_STEP,
    as_bool,
    as_float,
    as_id,
    as_int,
    as_str,
    device_label,
    element_text,
    first,
    invalid,
)

__all__ = ["adapt", "EVENTS", "event_id"]

_Builder = Callable[[dict[str, Any], dict[str, Any]], Any]


def event_id(client_id: str | None, micros: int, index: int, name: str) -> str:
    """The deterministic id of an event that came without ``params.event_id``."""
    key = f"{client_id}\x1f{micros}\x1f{index}\x1f{name}".encode()
    return "ga4:" + blake2b(key, digest_size=8).hexdigest()


def _page_view(base: dict[str, Any], p: dict[str, Any]) -> Any:
    return PageView(
        **base,
        title=as_str(p.get("page_title"), "params.page_title"),
        referrer=as_str(p.get("page_referrer"), "params.page_referrer"),
        status_code=as_int(p.get("status_code"), "params.status_code", nonneg=True),
    )


def _user_engagement(base: dict[str, Any], p: dict[str, Any]) -> Any:
    # gtag sends it as the page is hidden, left or closed, with the time engaged on it; the
    # three cannot be told apart, and a hidden page may come back: "hidden".
    return Presence(**base, state="hidden", engaged_ms=as_float(
        p.get("engagement_time_msec"), "params.engagement_time_msec", nonneg=True))


def _titled_view(name: str) -> _Builder:
    def build(base: dict[str, Any], p: dict[str, Any]) -> Any:
        return PageView(**base, title=name)

    return build


def _cart(action: str) -> _Builder:
    def build(base: dict[str, Any], p: dict[str, Any]) -> Any:
        items = p.get("items")
        item: Any = {}
        if items is not None:
            if type(items) is not list:
                raise invalid("params.items", items, "not an array")
            if items:
                item = items[0]
                if type(item) is not dict:
                    raise invalid("params.items[0]", item, "not an object")
        quantity = as_int(item.get("quantity"), "params.items[0].quantity", nonneg=True)
        cart_value = p.get("cart_value")
        if cart_value is None and action == "view":
            cart_value = p.get("value")
        return CartUpdated(
            **base,
            action=action,  # type: ignore[arg-type]
            product_id=as_id(item.get("item_id"), "params.items[0].item_id"),
            quantity=1 if quantity is None else quantity,
            price=as_float(item.get("price"), "params.items[0].price", nonneg=True),
            cart_value=as_float(cart_value, "params.value", nonneg=True),
            currency=as_str(p.get("currency"), "params.currency"),
        )

    return build


def _begin_checkout(base: dict[str, Any], p: dict[str, Any]) -> Any:
    return CheckoutStarted(
        **base,
        cart_value=as_float(p.get("value"), "params.value", nonneg=True),
        currency=as_str(p.get("currency"), "params.currency"),
    )


def _fixed_step(default: int, step_name: str) -> _Builder:
    def build(base: dict[str, Any], p: dict[str, Any]) -> Any:
        step = as_int(p.get("step"), "params.step", nonneg=True)
        return CheckoutStepCompleted(
            **base, step=default if step is None else step, step_name=step_name
        )

    return build


def _step(cls: type[CheckoutStepViewed] | type[CheckoutStepCompleted]) -> _Builder:
    def build(base: dict[str, Any], p: dict[str, Any]) -> Any:
        return cls(
            **base,
            step=as_int(p.get("step"), "params.step", required=True, nonneg=True),
            step_name=as_str(p.get("step_name"), "params.step_name"),
        )

    return build


def _purchase(base: dict[str, Any], p: dict[str, Any]) -> Any:
    return OrderCompleted(
        **base,
        order_id=as_id(p.get("transaction_id"), "params.transaction_id"),
        revenue=as_float(p.get("value"), "params.value", required=True, nonneg=True),
        currency=as_str(p.get("currency"), "params.currency"),
    )


def _payment_attempted(base: dict[str, Any], p: dict[str, Any]) -> Any:
    return PaymentAttempted(
        **base,
        success=as_bool(p.get("success"), "params.success", required=True),
        decline_reason=as_str(p.get("decline_reason"), "params.decline_reason"),
        method=as_str(p.get("payment_type"), "params.payment_type"),
        provider=as_str(p.get("provider"), "params.provider"),
        amount=as_float(p.get("value"), "params.value", nonneg=True),
        currency=as_str(p.get("currency"), "params.currency"),
    )


def _coupon(success: bool) -> _Builder:
    def build(base: dict[str, Any], p: dict[str, Any]) -> Any:
        return CouponEntered(
            **base,
            code=as_str(p.get("coupon"), "params.coupon"),
            success=success,
            reason=None if success else as_str(p.get("reason"), "params.reason"),
        )

    return build


def _form_field_error(base: dict[str, Any], p: dict[str, Any]) -> Any:
    field = as_id(p.get("field"), "params.field")
    if field is None:
        raise invalid("params.field", p.get("field"), "required")
    return FormFieldError(
        **base,
        field=field,
        form=as_str(p.get("form"), "params.form"),
        message=as_str(p.get("message"), "params.message"),
    )


def _form_submit(base: dict[str, Any], p: dict[str, Any]) -> Any:
    return FormSubmitted(**base, form=as_str(first(p, "form_id", "form_name"), "params.form_id"))


def _js_error(base: dict[str, Any], p: dict[str, Any]) -> Any:
    message = as_id(first(p, "description", "message"), "params.description")
    if message is None:
        raise invalid("params.description", None, "required")
    return JsError(**base, message=message, source=as_str(p.get("source"), "params.source"))


def _web_vitals(base: dict[str, Any], p: dict[str, Any]) -> Any:
    return PagePerformance(
        **base,
        lcp_ms=as_float(p.get("lcp"), "params.lcp", nonneg=True),
        inp_ms=as_float(p.get("inp"), "params.inp", nonneg=True),
        cls=as_float(p.get("cls"), "params.cls", nonneg=True),
        ttfb_ms=as_float(p.get("ttfb"), "params.ttfb", nonneg=True),
    )


def _click(base: dict[str, Any], p: dict[str, Any]) -> Any:
    return Click(
        **base,
        x=as_float(p.get("x"), "params.x", required=True),
        y=as_float(p.get("y"), "params.y", required=True),
        target=as_str(p.get("target"), "params.target"),
        # GA4's enhanced-measurement clicks name the link's text link_text.
        text=element_text(first(p, "text", "link_text"), "params.text"),
    )


def _dead_click(base: dict[str, Any], p: dict[str, Any]) -> Any:
    return DeadClick(
        **base,
        x=as_float(p.get("x"), "params.x"),
        y=as_float(p.get("y"), "params.y"),
        target=as_str(p.get("target"), "params.target"),
    )


def _api_error(base: dict[str, Any], p: dict[str, Any]) -> Any:
    endpoint = as_id(p.get("endpoint"), "params.endpoint")
    if endpoint is None:
        raise invalid("params.endpoint", None, "required")
    status = as_int(p.get("status_code"), "params.status_code", required=True)
    if not 0 <= status <= 599:  # 0 = network error, as browsers report it
        raise invalid("params.status_code", status, "out of range")
    return ApiError(**base, endpoint=endpoint, status_code=status)


_VIEWS = (
    "view_item",
    "view_item_list",
    "select_item",
    "search",
    "view_promotion",
    "select_promotion",
)

#: GA4 event name -> builder.
EVENTS: dict[str, _Builder] = {
    "page_view": _page_view,
    "user_engagement": _user_engagement,
    **{name: _titled_view(name) for name in _VIEWS},
    "add_to_cart": _cart("add"),
    "remove_from_cart": _cart("remove"),
    "view_cart": _cart("view"),
    "begin_checkout": _begin_checkout,
    "add_shipping_info": _fixed_step(SHIPPING_STEP, "shipping"),
    "add_payment_info": _fixed_step(PAYMENT_STEP, "payment"),
    "purchase": _purchase,
    "form_submit": _form_submit,
    "checkout_step_viewed": _step(CheckoutStepViewed),
    "checkout_step_completed": _step(CheckoutStepCompleted),
    "payment_attempted": _payment_attempted,
    "coupon_applied": _coupon(True),
    "coupon_denied": _coupon(False),
    "form_field_error": _form_field_error,
    "js_error": _js_error,
    "exception": _js_error,
    "web_vitals": _web_vitals,
    "click": _click,
    "dead_click": _dead_click,
    "api_error": _api_error,
}


def _convert(
    event: Any,
    index: int,
    client_id: str | None,
    customer_id: str | None,
    payload_micros: Any,
    device: str | None,
) -> Any:
    if type(event) is not dict:
        raise invalid("events[]", event, "not an object")
    name = event.get("name")
    if type(name) is not str:
        raise invalid("events[].name", name, "required")
    build = EVENTS.get(name)
    if build is None:
        raise AdapterError("unknown_event", f"ga4 event {name[:80]!r} is not mapped")
    params = event.get("params")
    if params is None:
        params = {}
    elif type(params) is not dict:
        raise invalid("params", params, "not an object")

    session_id = as_id(first(params, "session_id", "ga_session_id"), "params.session_id")
    if session_id is None:
        session_id = client_id
        if session_id is None:
            raise AdapterError("missing_id", "ga4 event without session_id or client_id")
    micros = params.get("timestamp_micros")
    if micros is None:
        micros = event.get("timestamp_micros")
        if micros is None:
            micros = payload_micros
    micros = as_int(micros, "timestamp_micros", nonneg=True)
    if micros is None:
        raise invalid("timestamp_micros", None, "no timestamp_micros on the event or payload")
    if micros > _MAX_MICROS:  # before the division: an int of hundreds of digits overflows it
        raise invalid("timestamp_micros", micros, "out of range")
    eid = as_id(params.get("event_id"), "params.event_id")
    base: dict[str, Any] = {
        "id": eid if eid is not None else event_id(client_id, micros, index, name),
        "time": micros / 1e6,
        "session_id": session_id,
        "customer_id": customer_id,
        "url": as_str(params.get("page_location"), "params.page_location"),
        "device": device,
    }
    if session_id is client_id:
        base["derived_session"] = True
    return build(base, params)


def adapt(payload: Any) -> Adapted:
    """A Measurement Protocol body as canonical events (one per mapped ``events`` item)."""
    if type(payload) is not dict or type(payload.get("events")) is not list:
        raise AdapterError("unknown_format", "a GA4 payload is an object with an events array")
    events = payload["events"]
    if not events:
        raise AdapterError("empty", "GA4 payload without events")
    try:
        client_id = as_id(first(payload, "client_id", "app_instance_id"), "client_id")
        customer_id = as_id(payload.get("user_id"), "user_id")
        # Shared by every event: checked once, not found wanting once per event.
        for name, value in (("client_id", client_id), ("user_id", customer_id)):
            if value is not None and len(value) > ID_CHARS:
                raise invalid(name, value, f"longer than {ID_CHARS} characters")
    except AdapterError as exc:
        # The shared ids are unusable, so every event is: reject them all, with the payload.
        return Adapted(rejected=[Rejected(exc.reason, exc.detail, payload)])
    device = payload.get("device")
    label = device_label(device.get("category")) if type(device) is dict else None
    micros = payload.get("timestamp_micros")

    # What a rejected event needs to be replayed on its own: the payload's small shared fields
    # (ids, time, device), never a copy of everything else it carried (that could be a 400 KB
    # field copied into each of 1,000 dead letters).
    shared = {k: payload[k] for k in _SHARED if k in payload and _small(payload[k])}
    out = Adapted()
    for index, event in enumerate(events):
        try:
            out.events.append(_convert(event, index, client_id, customer_id, micros, label))
        except AdapterError as exc:
            out.rejected.append(Rejected(exc.reason, exc.detail, {**shared, "events": [event]}))
    return out


#: Payload fields a rejected event's dead letter keeps (when small).
_SHARED = ("client_id", "app_instance_id", "user_id", "timestamp_micros", "device")
#: Latest event time in microseconds (``detectors.bounds.MAX_TIME``).
_MAX_MICROS = int(MAX_TIME * 1_000_000)


def _small(value: Any) -> bool:
    """A scalar, or a flat object of a few short scalars (``device``)."""
    if type(value) is str:
        return len(value) <= ID_CHARS
    if type(value) is dict:
        return len(value) <= 16 and all(
            type(v) is not str or len(v) <= ID_CHARS for v in value.values()
        ) and all(type(v) not in (list, dict) for v in value.values())
    return type(value) is not list
