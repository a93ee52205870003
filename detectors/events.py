"""The canonical event model: one typed record per thing a customer does or says.

Everything downstream of the adapters (detectors, models, the worker, replay and backtest) sees
only these types. They are ``msgspec`` structs so that a batch decodes and validates in a few
microseconds per event, which the hot path needs (DEVELOPERS.md, "Measured facts").

Every event carries ``id``, ``time`` (event time, Unix seconds, float), ``session_id`` and,
where known, ``customer_id``. The ``type`` tag selects the class on decode. Every field is
bounded (length, range, count: ``detectors.bounds``); decoding enforces the bounds, and
``check_batch`` applies them to events built in code (the adapters' output).

>>> from detectors.events import Click, decode_batch, encode_batch
>>> batch = [Click(id="e1", time=1.0, session_id="s1", x=10, y=20, target="#pay")]
>>> data = encode_batch(batch)
>>> data[:40]
b'[{"type":"click","id":"e1","time":1.0,"s'
>>> decode_batch(data) == batch
True
"""

from __future__ import annotations

import re
from typing import Any, Literal

import msgspec

from detectors.bounds import (
    Cls,
    Coord,
    Count,
    Currency,
    Device,
    Field,
    Friction,
    Id,
    Label,
    Millis,
    Money,
    MoneySum,
    Quantity,
    Seconds,
    Status,
    Step,
    Tags,
    Text,
    TicketText,
    Time,
    Traits,
    Url,
)

__all__ = [
    "ApiError",
    "CartUpdated",
    "CheckoutStarted",
    "CheckoutStepCompleted",
    "CheckoutStepViewed",
    "Click",
    "CouponEntered",
    "DeadClick",
    "Event",
    "FormFieldError",
    "FormInteraction",
    "FormSubmitted",
    "Identify",
    "JsError",
    "OrderCompleted",
    "PagePerformance",
    "PageView",
    "PaymentAttempted",
    "Presence",
    "SessionSummary",
    "Subscription",
    "SupportEvent",
    "Ticket",
    "WebEvent",
    "check_batch",
    "decode_batch",
    "decode_event",
    "decode_lines",
    "encode_batch",
    "encode_event",
    "EVENT_TYPES",
    "SUPPORT_EVENT_TYPES",
]


# gc=False: events hold no reference cycles, and keeping millions of them out of the cyclic
# garbage collector's sight saves it a walk over every one (measured in the backtest).
class BaseEvent(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", omit_defaults=True,
                gc=False):
    """Fields every event has."""

    id: Id
    time: Time
    session_id: Id
    customer_id: Id | None = None
    #: Page the event happened on, when the source says.
    url: Url | None = None
    #: "desktop", "mobile", "tablet" or None: a bounded label for metrics.
    device: Device | None = None
    #: True when the source named no session and the adapter took a device or user id
    #: (Segment ``anonymousId``, GA4 ``client_id``): such an id spans visits, so an idle gap
    #: splits it into sessions. A session id the source named is its own: a gap does not
    #: split it (``detectors.engine.Engine``, ``explicit_gap``).
    derived_session: bool = False


# --- web -----------------------------------------------------------------------------------


class PageView(BaseEvent, frozen=True, kw_only=True, tag="page_view"):
    path: Url | None = None
    title: Text | None = None
    referrer: Url | None = None
    #: HTTP status of the page itself, when the client reports it (error pages are friction).
    status_code: Status | None = None
    #: The product the page shows, when the source says (a product page, "Product Viewed").
    product_id: Id | None = None
    price: Money | None = None


class Click(BaseEvent, frozen=True, kw_only=True, tag="click"):
    #: Where (CSS px); None when the source does not say: Snowplow ``link_click`` and
    #: PostHog ``$autocapture`` carry the element, not the pointer.
    x: Coord | None = None
    y: Coord | None = None
    #: CSS selector or element description of what was clicked.
    target: Text | None = None
    #: The element's visible text or aria-label, when the source sends it (posthog-js
    #: ``$el_text``): a "+" or "-" tells a quantity stepper (``detectors.noise``).
    text: Label | None = None


class DeadClick(BaseEvent, frozen=True, kw_only=True, tag="dead_click"):
    """A click the client SDK saw produce no navigation, DOM change or request."""

    x: Coord | None = None
    y: Coord | None = None
    target: Text | None = None


class FormFieldError(BaseEvent, frozen=True, kw_only=True, tag="form_field_error"):
    form: Field | None = None
    field: Field
    message: Text | None = None


class FormInteraction(BaseEvent, frozen=True, kw_only=True, tag="form_interaction"):
    """The customer focused or changed a form field, with no result to report (Snowplow form
    tracking's ``focus_form`` and ``change_form``): activity in the step. The field's value,
    which those events carry, is never kept."""

    form: Field | None = None
    field: Field | None = None
    action: Literal["focus", "change"]


class FormSubmitted(BaseEvent, frozen=True, kw_only=True, tag="form_submitted"):
    form: Field | None = None
    success: bool = True


class JsError(BaseEvent, frozen=True, kw_only=True, tag="js_error"):
    message: Text
    source: Url | None = None


class ApiError(BaseEvent, frozen=True, kw_only=True, tag="api_error"):
    """A failed XHR/fetch call the page made (status >= 400 or a network error, status 0)."""

    endpoint: Text
    status_code: Status


class PagePerformance(BaseEvent, frozen=True, kw_only=True, tag="page_performance"):
    """Core Web Vitals and friends, in milliseconds (CLS is unitless)."""

    lcp_ms: Millis | None = None
    inp_ms: Millis | None = None
    cls: Cls | None = None
    ttfb_ms: Millis | None = None


class Presence(BaseEvent, frozen=True, kw_only=True, tag="presence"):
    """What the browser says about the customer being on the page, without them acting:
    ``left`` (navigated away or closed it: PostHog ``$pageleave``), ``hidden`` (the page went
    to the background, maybe for good: GA4 ``user_engagement``), ``visible`` (it came back to
    the foreground) or ``here`` (a heartbeat, sent again and again while the page is in use:
    Snowplow ``page_ping``; their stopping says the customer went away). Leave beacons are
    sent as the page goes away and some are lost (mobile browsers drop a share), so no beacon
    is no proof of presence."""

    state: Literal["here", "visible", "hidden", "left"]
    #: Milliseconds the customer engaged with the page, when the source reports it.
    engaged_ms: Millis | None = None


class CartUpdated(BaseEvent, frozen=True, kw_only=True, tag="cart_updated"):
    action: Literal["add", "remove", "view"]
    product_id: Id | None = None
    quantity: Quantity = 1
    price: Money | None = None
    #: Cart total after the change, when the source knows it.
    cart_value: Money | None = None
    currency: Currency | None = None


class CheckoutStarted(BaseEvent, frozen=True, kw_only=True, tag="checkout_started"):
    cart_value: Money | None = None
    currency: Currency | None = None


class CheckoutStepViewed(BaseEvent, frozen=True, kw_only=True, tag="checkout_step_viewed"):
    step: Step
    step_name: Label | None = None


class CheckoutStepCompleted(BaseEvent, frozen=True, kw_only=True, tag="checkout_step_completed"):
    step: Step
    step_name: Label | None = None


class CouponEntered(BaseEvent, frozen=True, kw_only=True, tag="coupon_entered"):
    code: Label | None = None
    success: bool
    reason: Label | None = None


class PaymentAttempted(BaseEvent, frozen=True, kw_only=True, tag="payment_attempted"):
    success: bool
    #: Card network or processor decline reason, e.g. "insufficient_funds", "do_not_honor".
    decline_reason: Label | None = None
    method: Label | None = None
    provider: Label | None = None
    amount: Money | None = None
    currency: Currency | None = None


class OrderCompleted(BaseEvent, frozen=True, kw_only=True, tag="order_completed"):
    order_id: Id | None = None
    revenue: Money
    currency: Currency | None = None


# --- support and identity -------------------------------------------------------------------


class Ticket(BaseEvent, frozen=True, kw_only=True, tag="ticket"):
    """A support-desk ticket was created, updated or solved."""

    action: Literal["created", "updated", "solved"]
    ticket_id: Id
    channel: Label | None = None
    subject: Text | None = None
    text: TicketText | None = None
    priority: Label | None = None
    status: Label | None = None
    #: "good", "bad" or None (Zendesk's satisfaction_rating.score, normalised).
    satisfaction: Label | None = None
    tags: Tags = ()
    #: The category an agent set (from the help desk), what ticket triage learns from.
    category: Label | None = None


class Identify(BaseEvent, frozen=True, kw_only=True, tag="identify"):
    traits: Traits = {}


class Subscription(BaseEvent, frozen=True, kw_only=True, tag="subscription"):
    """A customer's subscription or contract started, renewed, or ended: ``cancelled`` (by the
    customer) and ``expired`` (not renewed) are the churn events churn models learn from."""

    action: Literal["started", "renewed", "cancelled", "expired"]
    plan: Label | None = None
    #: Monthly recurring revenue of the subscription, when known.
    mrr: Money | None = None


class SessionSummary(BaseEvent, frozen=True, kw_only=True, tag="session_summary"):
    """What one ended web session of a known customer amounted to. The session agent sends it,
    keyed by customer, so the customer's state (and churn model) sees web friction without
    a repartition of the session topic (``detectors.customer.session_summary``)."""

    converted: bool = False
    revenue: MoneySum = 0.0
    #: Orders the session placed (0 from senders older than the field: then 1 if converted).
    orders: Count = 0
    cart_value: Money = 0.0
    #: Checkout step the session was abandoned at (0: with a cart, before checkout), or None.
    abandoned_step: Step | None = None
    #: Friction signals of the session by type.
    friction: Friction = {}
    seconds: Seconds = 0.0


WebEvent = (
    PageView
    | Click
    | DeadClick
    | FormFieldError
    | FormInteraction
    | FormSubmitted
    | JsError
    | ApiError
    | PagePerformance
    | Presence
    | CartUpdated
    | CheckoutStarted
    | CheckoutStepViewed
    | CheckoutStepCompleted
    | CouponEntered
    | PaymentAttempted
    | OrderCompleted
)
SupportEvent = Ticket | Identify | Subscription | SessionSummary
Event = WebEvent | SupportEvent

EVENT_TYPES: dict[str, type[BaseEvent]] = {
    cls.__struct_config__.tag: cls  # type: ignore[misc]
    for cls in (
        PageView, Click, DeadClick, FormFieldError, FormInteraction, FormSubmitted, JsError,
        ApiError,
        PagePerformance, Presence, CartUpdated, CheckoutStarted, CheckoutStepViewed,
        CheckoutStepCompleted, CouponEntered, PaymentAttempted, OrderCompleted, Ticket, Identify,
        Subscription, SessionSummary,
    )
}

#: The support event classes (keyed by customer, not session), for isinstance checks.
SUPPORT_EVENT_TYPES: tuple[type[BaseEvent], ...] = (Ticket, Identify, Subscription,
                                                    SessionSummary)

# Encoders and decoders are built once: msgspec caches type info on them.
_encoder = msgspec.json.Encoder()
_batch_decoder = msgspec.json.Decoder(list[Event])  # type: ignore[valid-type]
_event_decoder = msgspec.json.Decoder(Event)  # type: ignore[valid-type]


def encode_batch(events: list[Any]) -> bytes:
    """Encode a list of events as one JSON array (the value of a canonical topic message)."""
    return _encoder.encode(events)


def decode_batch(data: bytes) -> list[Any]:
    """Decode and validate a JSON array of events; raises ``msgspec.ValidationError``."""
    return _batch_decoder.decode(data)


def decode_event(data: bytes) -> Any:
    """Decode and validate one event."""
    return _event_decoder.decode(data)


def encode_event(event: Any) -> bytes:
    """Encode one event as a JSON object."""
    return _encoder.encode(event)


def decode_lines(data: bytes) -> list[Any]:
    """Decode and validate newline-delimited events, one per line (blank lines skipped)."""
    return _event_decoder.decode_lines(data)


def to_builtins(event: Any) -> dict[str, Any]:
    """The event as a plain dict, ``type`` tag included (for JSONL files and tests)."""
    return msgspec.to_builtins(event)  # type: ignore[no-any-return]


def from_builtins(obj: Any) -> Any:
    """Build and validate an event from a plain dict with a ``type`` tag."""
    return msgspec.convert(obj, Event)


_PATH = re.compile(r"at `\$(?:\[\d+\])?\.([A-Za-z_]\w*)")


def _excerpt(value: Any) -> str:
    """A short ``repr`` of a value, with its size when it is long (details stay small)."""
    shown = repr(value)
    if len(shown) <= 60:
        return shown
    size = f" ({len(value):,} chars)" if isinstance(value, str) else ""
    return shown[:40] + "..." + size


def check_batch(events: list[Any]) -> dict[int, str]:
    """The events (built in code, unvalidated) that break a bound, by index in ``events``,
    each with a detail naming the field, an excerpt of its value and the limit; empty when
    all are within bounds. One encode and one validating decode for the whole list; only a
    list that fails is looked at event by event.

    >>> check_batch([Click(id="e1", time=1.0, session_id="s1", x=1, y=2, target="#pay")])
    {}
    >>> check_batch([Click(id="e1", time=1.0, session_id="s1", x=1, y=2, target="x" * 5000)])
    {0: "target='xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx... (5,000 chars): Expected `str` of \
length <= 2048"}
    """
    try:
        _batch_decoder.decode(_encoder.encode(events))
        return {}
    except msgspec.ValidationError:
        pass
    bad: dict[int, str] = {}
    for i, e in enumerate(events):
        try:
            _event_decoder.decode(_encoder.encode(e))
        except msgspec.ValidationError as exc:
            why = str(exc)
            m = _PATH.search(why)
            name = m.group(1) if m else None
            why = why.split(" - at `", 1)[0]
            bad[i] = (f"{name}={_excerpt(getattr(e, name, None))}: {why}" if name else why)
    return bad
