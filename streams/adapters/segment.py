"""Segment calls -> canonical events.

The mapping follows the Segment Spec (https://segment.com/docs/connections/spec/: common
fields, track, page, screen, identify), the V2 E-commerce Events spec
(https://segment.com/docs/connections/spec/ecommerce/v2/) and the HTTP Tracking API's batch
call (https://segment.com/docs/connections/sources/catalog/libraries/server/http-api/#batch).

Accepted payloads: one call (a dict with ``type`` track/page/screen/identify), a ``/v1/batch``
body ``{"batch": [...], "context": {...}}`` (the batch-level context is merged under each
call's own context) or a JSON list of calls. Each call that cannot be used becomes a
``Rejected`` with its reason; the others still flow.

Rules beyond the spec's own names:

- ids: ``id`` = ``messageId``, or for a call without one a hash of its content
  (``content_id``: a re-send still has the same id); session = ``context.sessionId`` /
  ``context.session_id`` / ``properties.session_id`` / ``anonymousId`` / ``userId``, first
  present (``derived_session`` when it is ``anonymousId`` or ``userId``: the call named no
  session); customer = ``userId``. Time = ``timestamp``, else ``originalTimestamp``,
  ``sentAt``, ``receivedAt`` (ISO 8601, with a space or a trailing "UTC" too, no zone meaning
  UTC; or epoch seconds or milliseconds: ``as_time``).
- checkout steps use the convention shared with the GA4 adapter: step 1 is the first step
  after "Checkout Started", 2 shipping, 3 payment. "Payment Info Entered" without
  ``properties.step`` is therefore step 3, named "payment".
- money and counts may arrive as numeric strings (``"27.50"``, as many server libraries send
  them); anything else that is not a finite number, or a negative amount, is ``invalid_field``.
- a ``group`` call (``groupId`` and the company's traits: ``name``, ``industry``,
  ``employees``, ``plan``, ...) ties its user to a B2B account: an ``Identify`` of the user with
  the group's traits and ``account_id = groupId`` (``detectors.account``). Without a
  ``groupId`` it is ``missing_id``.
- unmapped track names, and calls other than track/page/screen/identify/group (alias), are
  ``unknown_event``.

This module also holds the small field converters the other adapters share.

>>> from streams.adapters import segment
>>> out = segment.adapt({"type": "track", "event": "Order Completed", "messageId": "m1",
...     "anonymousId": "a1", "timestamp": "2024-05-01T12:00:00Z",
...     "properties": {"order_id": "o1", "revenue": "25.00", "currency": "USD"}})
>>> order = out.events[0]
>>> order.id, order.time, order.session_id, order.revenue, order.currency
('m1', 1714564800.0, 'a1', 25.0, 'USD')
>>> segment.adapt({"type": "alias", "messageId": "m2"}).rejected[0].reason
'unknown_event'
>>> joined = segment.adapt({"type": "group", "messageId": "m3", "userId": "u1",
...     "groupId": "acme", "timestamp": 1714564800, "traits": {"employees": 40}}).events[0]
>>> type(joined).__name__, joined.customer_id, joined.traits
('Identify', 'u1', {'employees': 40, 'account_id': 'acme'})
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from detectors.bounds import ID_CHARS, LABEL_CHARS, MAX_TIME, URL_CHARS, trait_number_problem
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
    Presence,
    Subscription,
)
from streams.adapters.base import Adapted, AdapterError, calls_of, convert_each

__all__ = [
    "adapt",
    "convert",
    "DEVICE_TYPES",
    "TRACK_EVENTS",
    "as_bool",
    "as_float",
    "as_id",
    "as_int",
    "as_str",
    "as_time",
    "content_id",
    "first",
    "invalid",
]

# --- field converters (shared by the adapters) -----------------------------------------------
# msgspec structs do not check types on __init__, so every value taken from a payload goes
# through one of these. A failure is an AdapterError that the batch loop turns into a Rejected.


def invalid(name: str, value: Any, why: str = "") -> AdapterError:
    # Keep dead-letter details short (the item itself is kept anyway): only the start of a
    # long value is shown, and repr is not run over a large or nested one at all.
    if type(value) is str:
        shown = repr(value[:60])
        if len(value) > 60:
            shown = f"{shown[:57]}... ({len(value):,} chars)"
    elif type(value) in (list, dict):
        shown = f"<{type(value).__name__} of {len(value)}>"
    else:
        shown = repr(value)
        if len(shown) > 60:
            shown = shown[:57] + "..."
    return AdapterError("invalid_field", f"{name}={shown}{': ' + why if why else ''}")


def first(d: dict[str, Any], *keys: str) -> Any:
    """The value of the first key present and not None (``or`` would skip a 0 or False)."""
    for key in keys:
        value = d.get(key)
        if value is not None:
            return value
    return None


def as_float(value: Any, name: str, *, required: bool = False, nonneg: bool = False) -> Any:
    """A finite float from a number or numeric string; None stays None unless required."""
    if value is None:
        if required:
            raise invalid(name, value, "required")
        return None
    kind = type(value)
    if kind is float:
        out = value
    elif kind is int or kind is str:
        try:
            out = float(value)
        except ValueError:
            raise invalid(name, value, "not a number") from None
        except OverflowError:  # an int of hundreds of digits
            raise invalid(name, value, "out of range") from None
    else:  # bool is deliberately not a number here
        raise invalid(name, value, "not a number")
    if not math.isfinite(out) or (nonneg and out < 0):
        raise invalid(name, value, "out of range")
    return out


def as_int(value: Any, name: str, *, required: bool = False, nonneg: bool = False) -> Any:
    """An int from an int, an integral float or a numeric string."""
    if value is None:
        if required:
            raise invalid(name, value, "required")
        return None
    if type(value) is int:
        out = value
    else:
        f = as_float(value, name)
        if not f.is_integer():
            raise invalid(name, value, "not an integer")
        out = int(f)
    if nonneg and out < 0:
        raise invalid(name, value, "out of range")
    return out


def as_str(value: Any, name: str) -> str | None:
    """A string; numbers are accepted and formatted (order ids are often numbers)."""
    if value is None or type(value) is str:
        return value
    if type(value) is int or type(value) is float:
        return str(value)
    raise invalid(name, value, "not a string")


def as_id(value: Any, name: str) -> str | None:
    """Like ``as_str``, but an empty id (an unrendered template placeholder) is no id."""
    out = as_str(value, name)
    return out or None


def as_bool(value: Any, name: str, *, required: bool = False) -> Any:
    """A bool; also the strings and 0/1 that query-string and template based senders emit."""
    if type(value) is bool:
        return value
    if value is None:
        if required:
            raise invalid(name, value, "required")
        return None
    kind = type(value)
    # Only hashable kinds are looked up: a list or an object is simply not a boolean.
    out = _BOOLS.get(value.lower() if kind is str else value) if kind in (str, int) else None
    if out is None:
        raise invalid(name, value, "not a boolean")
    return out


_BOOLS: dict[Any, bool] = {"true": True, "false": False, "1": True, "0": False, 1: True, 0: False}


#: Epoch numbers at or above this are milliseconds (as seconds it would be the year 5138).
EPOCH_MS_FROM = 1e11
#: Epoch seconds or milliseconds as text: 9 to 13 digits (1973 on), so a compact date
#: ("20240501") is not read as one.
_EPOCH = re.compile(r"\d{9,13}(\.\d{1,9})?")
_NAMED_UTC = (" UTC", " GMT", "UTC", "GMT")


def as_time(value: Any, name: str) -> float:
    """Epoch seconds from the forms exports and trackers write a time in: ISO 8601 / RFC 3339
    (3.11's fromisoformat takes "Z" and a space for "T"; naive is UTC), the same with a
    trailing "UTC" or "GMT" (``2019-10-01 00:00:00 UTC``, as BigQuery and many CSV exports
    write it), or epoch seconds or milliseconds, as a number or a string of digits.

    >>> as_time("2019-10-01 00:00:00 UTC", "t"), as_time(1569888000000, "t")
    (1569888000.0, 1569888000.0)
    """
    if type(value) is str:
        # value[4] is "-" in the usual ISO form: the pattern is not even tried on it.
        t = (_epoch(value) if value[4:5].isdigit() and _EPOCH.fullmatch(value)
             else _iso(value, name))
    elif (type(value) is float and math.isfinite(value)
          or type(value) is int and abs(value) < 10**18):  # a larger int overflows a float
        t = _epoch(value)
    else:  # bool is an int, and never a time
        raise invalid(name, value, "not a time (ISO 8601, or epoch seconds or milliseconds)")
    # The canonical bounds (detectors.bounds.Time), here too so no adapter builds an event
    # it could not read back.
    if not 0.0 <= t <= MAX_TIME:
        raise invalid(name, value, "outside 1970-01-01 .. 9999-01-01")
    return t


def _epoch(value: str | float) -> float:
    t = float(value)
    return t / 1000 if t >= EPOCH_MS_FROM else t


def _iso(value: str, name: str) -> float:
    try:
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:  # only then look for the rarer named zone
            dt = _named_utc(value)
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return dt.timestamp()
    except (ValueError, OverflowError):  # OverflowError: year 1 with a negative offset
        raise invalid(name, value, "not a time (ISO 8601, or epoch seconds or "
                      "milliseconds)") from None


def _named_utc(value: str) -> datetime:
    """A naive ISO time followed by "UTC" or "GMT" (``2019-10-01 00:00:00 UTC``); ValueError
    for anything else, "...+02:00 UTC" too (two zones)."""
    for suffix in _NAMED_UTC:
        if value.endswith(suffix):
            dt = datetime.fromisoformat(value[: -len(suffix)].rstrip())
            if dt.tzinfo is None:
                return dt
            break
    raise ValueError(value)


#: Device kinds to the three bounded labels; anything else is None (not a metrics label).
#: Native SDKs report the OS ("ios", "android"), which we count as mobile.
DEVICE_TYPES: dict[str, str] = {
    "mobile": "mobile",
    "phone": "mobile",
    "smartphone": "mobile",
    "ios": "mobile",
    "android": "mobile",
    "tablet": "tablet",
    "ipad": "tablet",
    "desktop": "desktop",
    "computer": "desktop",
    "pc": "desktop",
    "mac": "desktop",
    "macos": "desktop",
    "windows": "desktop",
    "linux": "desktop",
}


def device_label(value: Any) -> str | None:
    return DEVICE_TYPES.get(value.lower()) if type(value) is str else None


# --- track event builders --------------------------------------------------------------------

_Builder = Callable[[dict[str, Any], dict[str, Any], dict[str, Any]], Any]


def _checkout_started(base: dict[str, Any], p: dict[str, Any], msg: dict[str, Any]) -> Any:
    value = first(p, "value", "revenue", "total")
    return CheckoutStarted(
        **base,
        cart_value=as_float(value, "properties.value", nonneg=True),
        currency=as_str(p.get("currency"), "properties.currency"),
    )


def _step(cls: type[CheckoutStepViewed] | type[CheckoutStepCompleted]) -> _Builder:
    def build(base: dict[str, Any], p: dict[str, Any], msg: dict[str, Any]) -> Any:
        return cls(
            **base,
            step=as_int(p.get("step"), "properties.step", required=True, nonneg=True),
            step_name=as_str(p.get("step_name"), "properties.step_name"),
        )

    return build


#: Checkout step numbers shared with the GA4 adapter (module docstring).
PAYMENT_STEP = 3
SHIPPING_STEP = 2


def _payment_info_entered(base: dict[str, Any], p: dict[str, Any], msg: dict[str, Any]) -> Any:
    step = as_int(p.get("step"), "properties.step", nonneg=True)
    return CheckoutStepCompleted(
        **base, step=PAYMENT_STEP if step is None else step, step_name="payment"
    )


def _order_completed(base: dict[str, Any], p: dict[str, Any], msg: dict[str, Any]) -> Any:
    revenue = first(p, "revenue", "total", "value")
    return OrderCompleted(
        **base,
        order_id=as_id(p.get("order_id"), "properties.order_id"),
        revenue=as_float(revenue, "properties.revenue", required=True, nonneg=True),
        currency=as_str(p.get("currency"), "properties.currency"),
    )


def _subscription(action: Literal["started", "renewed", "cancelled", "expired"]) -> _Builder:
    def build(base: dict[str, Any], p: dict[str, Any], msg: dict[str, Any]) -> Any:
        return Subscription(
            **base,
            action=action,
            plan=as_str(first(p, "plan", "plan_name", "plan_id"), "properties.plan"),
            mrr=as_float(first(p, "mrr", "amount"), "properties.mrr", nonneg=True),
        )

    return build


def _cart(action: str) -> _Builder:
    def build(base: dict[str, Any], p: dict[str, Any], msg: dict[str, Any]) -> Any:
        quantity = as_int(p.get("quantity"), "properties.quantity", nonneg=True)
        return CartUpdated(
            **base,
            action=action,  # type: ignore[arg-type]
            product_id=as_id(first(p, "product_id", "sku"), "properties.product_id"),
            quantity=1 if quantity is None else quantity,
            price=as_float(p.get("price"), "properties.price", nonneg=True),
            cart_value=as_float(p.get("cart_value"), "properties.cart_value", nonneg=True),
            currency=as_str(p.get("currency"), "properties.currency"),
        )

    return build


def _coupon(success: bool) -> _Builder:
    def build(base: dict[str, Any], p: dict[str, Any], msg: dict[str, Any]) -> Any:
        return CouponEntered(
            **base,
            code=as_str(first(p, "coupon_id", "coupon_name", "coupon"), "properties.coupon_id"),
            success=success,
            reason=None if success else as_str(p.get("reason"), "properties.reason"),
        )

    return build


def _payment(success: bool | None) -> _Builder:
    def build(base: dict[str, Any], p: dict[str, Any], msg: dict[str, Any]) -> Any:
        ok = success
        if ok is None:
            ok = as_bool(p.get("success"), "properties.success", required=True)
        return PaymentAttempted(
            **base,
            success=ok,
            decline_reason=as_str(first(p, "decline_reason", "reason"), "properties.reason"),
            method=as_str(first(p, "payment_method", "method"), "properties.payment_method"),
            provider=as_str(p.get("provider"), "properties.provider"),
            amount=as_float(first(p, "amount", "value"), "properties.amount", nonneg=True),
            currency=as_str(p.get("currency"), "properties.currency"),
        )

    return build


def element_text(value: Any, name: str) -> str | None:
    """An element's text or aria-label, cut to a label's length: only a hint (a "+" tells a
    quantity stepper), so a long one is shortened rather than the click refused."""
    text = as_str(value, name)
    return text[:LABEL_CHARS] if text is not None else None


def _click(base: dict[str, Any], p: dict[str, Any], msg: dict[str, Any]) -> Any:
    return Click(
        **base,
        x=as_float(p.get("x"), "properties.x", required=True),
        y=as_float(p.get("y"), "properties.y", required=True),
        target=as_str(first(p, "target", "selector"), "properties.target"),
        # posthog-js sends the element's text as $el_text; an icon button has only its label.
        text=element_text(first(p, "text", "el_text", "$el_text", "aria_label"),
                          "properties.text"),
    )


def _dead_click(base: dict[str, Any], p: dict[str, Any], msg: dict[str, Any]) -> Any:
    return DeadClick(
        **base,
        x=as_float(p.get("x"), "properties.x"),
        y=as_float(p.get("y"), "properties.y"),
        target=as_str(first(p, "target", "selector"), "properties.target"),
    )


def _form_field_error(base: dict[str, Any], p: dict[str, Any], msg: dict[str, Any]) -> Any:
    field = as_id(p.get("field"), "properties.field")
    if field is None:
        raise invalid("properties.field", p.get("field"), "required")
    return FormFieldError(
        **base,
        field=field,
        form=as_str(p.get("form"), "properties.form"),
        message=as_str(p.get("message"), "properties.message"),
    )


def _form_submitted(base: dict[str, Any], p: dict[str, Any], msg: dict[str, Any]) -> Any:
    success = as_bool(p.get("success"), "properties.success")
    return FormSubmitted(
        **base,
        form=as_str(p.get("form"), "properties.form"),
        success=True if success is None else success,
    )


def _js_error(base: dict[str, Any], p: dict[str, Any], msg: dict[str, Any]) -> Any:
    message = as_str(p.get("message"), "properties.message")
    if message is None:
        raise invalid("properties.message", None, "required")
    return JsError(**base, message=message, source=as_str(p.get("source"), "properties.source"))


def _api_error(base: dict[str, Any], p: dict[str, Any], msg: dict[str, Any]) -> Any:
    endpoint = as_id(first(p, "endpoint", "url"), "properties.endpoint")
    if endpoint is None:
        raise invalid("properties.endpoint", None, "required")
    status = as_int(p.get("status_code"), "properties.status_code", required=True)
    if not 0 <= status <= 599:  # 0 = network error, as browsers report it
        raise invalid("properties.status_code", status, "out of range")
    # properties.url is the failed endpoint here, not the page: keep only the page's url.
    page = (msg.get("context") or {}).get("page")
    base["url"] = as_str(page.get("url"), "context.page.url") if type(page) is dict else None
    return ApiError(**base, endpoint=endpoint, status_code=status)


def _web_vitals(base: dict[str, Any], p: dict[str, Any], msg: dict[str, Any]) -> Any:
    return PagePerformance(
        **base,
        lcp_ms=as_float(p.get("lcp"), "properties.lcp", nonneg=True),
        inp_ms=as_float(p.get("inp"), "properties.inp", nonneg=True),
        cls=as_float(p.get("cls"), "properties.cls", nonneg=True),
        ttfb_ms=as_float(p.get("ttfb"), "properties.ttfb", nonneg=True),
    )


def _browse(base: dict[str, Any], p: dict[str, Any], msg: dict[str, Any]) -> Any:
    return PageView(**base, title=msg["event"], **_product(p))


def _product(p: dict[str, Any]) -> dict[str, Any]:
    """The product a page or a browse event shows, when its properties name one."""
    product = first(p, "product_id", "sku")
    if product is None:
        return {}
    return {"product_id": as_id(product, "properties.product_id"),
            "price": as_float(p.get("price"), "properties.price", nonneg=True)}


PresenceState = Literal["here", "visible", "hidden", "left"]


def _presence(state: PresenceState) -> _Builder:
    def build(base: dict[str, Any], p: dict[str, Any], msg: dict[str, Any]) -> Any:
        return Presence(**base, state=state, engaged_ms=as_float(
            first(p, "engagement_time_msec", "engaged_ms"), "properties.engaged_ms",
            nonneg=True))

    return build


def _visibility(base: dict[str, Any], p: dict[str, Any], msg: dict[str, Any]) -> Any:
    # document.visibilityState, as trackers forward it: "hidden" or "visible".
    value = first(p, "visibility", "visibilityState", "state")
    if value not in ("hidden", "visible"):
        raise invalid("properties.visibility", value, 'not "hidden" or "visible"')
    return _presence("hidden" if value == "hidden" else "visible")(base, p, msg)


#: Track names that are presence signals (there is no Segment spec for them; these are the
#: names tracking plans use). ``add_presence_events`` adds a deployment's own.
PRESENCE_EVENTS: dict[str, PresenceState] = {
    "Page Left": "left",
    "Page Exited": "left",
    "Page Unloaded": "left",
    "Page Hidden": "hidden",
    "Page Backgrounded": "hidden",
    "Page Heartbeat": "here",
    "Page Ping": "here",
}


def add_presence_events(names: Mapping[str, str]) -> None:
    """Map more track names to presence (settings ``presence_events``): ``{"Tab Closed":
    "left"}``. A name the spec gives another meaning cannot be taken over."""
    for name, state in names.items():
        if state not in ("here", "visible", "hidden", "left"):
            raise ValueError(f"presence event {name!r}: {state!r} is not here (a heartbeat), "
                             "visible, hidden or left")
        if name in TRACK_EVENTS and name not in PRESENCE_EVENTS:
            raise ValueError(f"presence event {name!r} is already a {name} event")
        PRESENCE_EVENTS[name] = state  # type: ignore[assignment]
        TRACK_EVENTS[name] = _presence(state)  # type: ignore[arg-type]


def _coupon_entered(base: dict[str, Any], p: dict[str, Any], msg: dict[str, Any]) -> Any:
    # The spec sends "Coupon Entered" when the code is typed, then "Coupon Applied" or
    # "Coupon Denied" with the result: the entry is the customer acting in the step (it ends
    # an idle clock), not yet a coupon result, which would be counted twice.
    return FormSubmitted(**base, form="coupon")


#: Browsing and promotion events of the E-commerce spec: page-like, so they count as views.
BROWSE_EVENTS = (
    "Products Searched",
    "Product List Viewed",
    "Product List Filtered",
    "Product Clicked",
    "Product Viewed",
    "Promotion Viewed",
    "Promotion Clicked",
)

#: Track event name (exact, as the spec writes it) -> builder.
TRACK_EVENTS: dict[str, _Builder] = {
    "Checkout Started": _checkout_started,
    "Checkout Step Viewed": _step(CheckoutStepViewed),
    "Checkout Step Completed": _step(CheckoutStepCompleted),
    "Payment Info Entered": _payment_info_entered,
    "Order Completed": _order_completed,
    "Product Added": _cart("add"),
    "Product Removed": _cart("remove"),
    "Cart Viewed": _cart("view"),
    "Coupon Entered": _coupon_entered,
    "Coupon Applied": _coupon(True),
    "Coupon Denied": _coupon(False),
    "Payment Attempted": _payment(None),
    "Payment Succeeded": _payment(True),
    "Payment Declined": _payment(False),
    "Payment Failed": _payment(False),
    "Element Clicked": _click,
    "Dead Click": _dead_click,
    "Form Field Error": _form_field_error,
    "Form Submitted": _form_submitted,
    "JS Error": _js_error,
    "Error": _js_error,
    "API Error": _api_error,
    "Web Vitals": _web_vitals,
    # Subscriptions and contracts (not in Segment's e-commerce spec; the names its B2B and
    # subscription tracking plans commonly use): the churn labels.
    "Subscription Started": _subscription("started"),
    "Subscription Renewed": _subscription("renewed"),
    "Contract Renewed": _subscription("renewed"),
    "Subscription Cancelled": _subscription("cancelled"),
    "Subscription Canceled": _subscription("cancelled"),
    "Subscription Expired": _subscription("expired"),
    "Contract Not Renewed": _subscription("expired"),
    **dict.fromkeys(BROWSE_EVENTS, _browse),
    "Page Visibility Changed": _visibility,
    **{name: _presence(state) for name, state in PRESENCE_EVENTS.items()},
}


# --- page, screen, identify ------------------------------------------------------------------


def _page(base: dict[str, Any], p: dict[str, Any], msg: dict[str, Any]) -> Any:
    page = (msg.get("context") or {}).get("page")
    page = page if type(page) is dict else {}
    return PageView(
        **base,
        path=as_str(first(p, "path") or page.get("path"), "properties.path"),
        title=as_str(first(p, "title", "name") or page.get("title") or msg.get("name"), "name"),
        referrer=as_str(first(p, "referrer") or page.get("referrer"), "properties.referrer"),
        status_code=as_int(p.get("status_code"), "properties.status_code", nonneg=True),
        **_product(p),
    )


def _identify(base: dict[str, Any], p: dict[str, Any], msg: dict[str, Any]) -> Any:
    traits = msg.get("traits")
    if traits is None:
        traits = {}
    elif type(traits) is not dict:
        raise invalid("traits", traits, "not an object")
    else:
        problem = trait_number_problem(traits)
        if problem:
            raise AdapterError("invalid_field", problem)
    return Identify(**base, traits=traits)


def _group(base: dict[str, Any], p: dict[str, Any], msg: dict[str, Any]) -> Any:
    """The user joins the account ``groupId``: its traits, as the account's, on an Identify
    (``detectors.account.route`` maps users to accounts by the trait ``account_id``)."""
    account = as_id(msg.get("groupId"), "groupId")
    if account is None:
        raise AdapterError("missing_id", "segment group call without groupId")
    joined = _identify(base, p, msg)
    # Last: the group id is the account, whatever trait of the same name the call carries.
    return Identify(**base, traits={**joined.traits, "account_id": account})


_CALLS: dict[str, _Builder] = {"page": _page, "screen": _page, "identify": _identify,
                               "group": _group}

#: The Segment call types this adapter reads (others, e.g. alias, are unknown_event).
CALL_TYPES = frozenset(("track", "page", "screen", "identify", "group"))


# --- one call --------------------------------------------------------------------------------


def convert(msg: Any, batch_context: dict[str, Any] | None = None) -> Any:
    """One Segment call as a canonical event; raises ``AdapterError`` (a per-item reason)."""
    if type(msg) is not dict:
        raise invalid("batch[]", msg, "not an object")
    kind = msg.get("type")
    if kind == "track":
        name = msg.get("event")
        if type(name) is not str:
            raise invalid("event", name, "a track call needs an event name")
        build = TRACK_EVENTS.get(name)
        if build is None:
            raise AdapterError("unknown_event", f"segment track {name[:80]!r} is not mapped")
    else:
        if type(kind) is not str:  # before the lookup: a list or an object is unhashable
            raise invalid("type", kind, "not a Segment call type")
        build = _CALLS.get(kind)
        if build is None:
            raise AdapterError("unknown_event", f"segment call type {kind[:40]!r} is not mapped")

    props = msg.get("properties")
    if props is None:
        props = {}
    elif type(props) is not dict:
        raise invalid("properties", props, "not an object")
    ctx = msg.get("context")
    if ctx is None:
        ctx = {}
    elif type(ctx) is not dict:
        raise invalid("context", ctx, "not an object")
    if batch_context:
        ctx = {**batch_context, **ctx}
        msg = {**msg, "context": ctx}

    message_id = as_id(msg.get("messageId"), "messageId") or content_id(msg)
    user_id = as_id(msg.get("userId"), "userId")
    named = first(ctx, "sessionId", "session_id") or props.get("session_id")
    session_id = as_id(named or msg.get("anonymousId") or user_id, "sessionId")
    if session_id is None:
        raise AdapterError("missing_id", "segment call without session id, anonymousId or userId")
    stamp = first(msg, "timestamp", "originalTimestamp", "sentAt", "receivedAt")
    if stamp is None:
        raise invalid("timestamp", None, "no timestamp, originalTimestamp, sentAt or receivedAt")

    page = ctx.get("page")
    url = page.get("url") if type(page) is dict else None
    device = ctx.get("device")
    base: dict[str, Any] = {
        "id": message_id,
        "time": as_time(stamp, "timestamp"),
        "session_id": session_id,
        "customer_id": user_id,
        "url": as_str(url if url is not None else props.get("url"), "context.page.url"),
        "device": device_label(device.get("type")) if type(device) is dict else None,
    }
    if not named:
        base["derived_session"] = True
    return build(base, props, msg)


#: When a call says when it happened, the times it was sent and received are transport, not
#: content: a client's retry may restamp them.
_TRANSPORT = ("sentAt", "receivedAt")


def content_id(call: dict[str, Any]) -> str:
    """A ``messageId`` for a call that has none (event logs and server exports often do not):
    a hash of its content, so a re-send of the same call gets the same id and is still
    recognised as one. ``sentAt`` and ``receivedAt`` are left out when the call has a
    ``timestamp`` or ``originalTimestamp`` of its own.

    >>> a = {"type": "page", "anonymousId": "a1", "timestamp": "2024-05-01T12:00:00Z"}
    >>> content_id(a) == content_id({**a, "sentAt": "2024-05-01T12:00:09Z"}), content_id(a)[:1]
    (True, 'h')
    """
    if call.get("timestamp") is not None or call.get("originalTimestamp") is not None:
        call = {k: v for k, v in call.items() if k not in _TRANSPORT}
    text = json.dumps(call, sort_keys=True, separators=(",", ":"), default=repr)
    return "h" + hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def _batch_context(ctx: Any) -> dict[str, Any] | None:
    """A batch-level context, its fields that reach events checked once for the whole batch:
    it is merged into every call, so one oversized value would be copied into each of them
    (a 380 KB URL times 500 calls). Out of bounds, the whole batch is ``invalid_field``."""
    if type(ctx) is not dict:
        return None
    page = ctx.get("page")
    url = page.get("url") if type(page) is dict else None
    if type(url) is str and len(url) > URL_CHARS:
        raise invalid("context.page.url", url, f"longer than {URL_CHARS} characters")
    session = first(ctx, "sessionId", "session_id")
    if type(session) is str and len(session) > ID_CHARS:
        raise invalid("context.sessionId", session, f"longer than {ID_CHARS} characters")
    return ctx


def _convert_all(items: list[Any], batch_context: dict[str, Any] | None) -> Adapted:
    if batch_context is None:
        return convert_each(items, convert)
    return convert_each(items, lambda item: convert(item, batch_context))


def adapt(payload: Any) -> Adapted:
    """A Segment call, ``/v1/batch`` body or list of calls as canonical events."""
    calls, batch = calls_of(payload, "Segment")
    if batch:
        return _convert_all(calls, _batch_context(payload.get("context")))
    if type(payload) is dict and "type" not in payload:
        raise AdapterError("unknown_format", "not a Segment call: no type and no batch")
    return _convert_all(calls, None)
