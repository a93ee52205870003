"""Realistic retail traffic with friction injected on purpose, and its ground truth.

A pure, deterministic generator: all randomness comes from ``random.Random(config.seed)``, time
is a simulated clock that starts at ``config.start`` (Unix seconds), and nothing is read or
written. The same config gives the same messages, byte for byte. ``frictionwatch simulate`` and
``frictionwatch demo`` send its output to Kafka (``streams.traffic.send_live``); tests and
offline evaluation read it directly.

What comes out (``Simulator.messages()``): raw payloads in the formats users emit, one canonical
event each, in event-time order across all concurrent sessions:

- Segment calls (most sessions): ``page``, ``identify`` for logged-in customers, and ``track``
  with the V2 E-commerce names (Product List Viewed, Products Searched, Product Viewed, Product
  Added, Cart Viewed, Checkout Started, Checkout Step Viewed/Completed, Payment Info Entered,
  Order Completed, Coupon Applied/Denied) plus the friction names ``streams.adapters.segment``
  maps (Element Clicked, Dead Click, JS Error, API Error, Web Vitals, Form Submitted, Form
  Field Error, Payment Attempted / Payment Succeeded / Payment Declined);
- GA4 Measurement Protocol payloads for ``config.ga4_share`` of the sessions (page_view,
  view_item, add_to_cart, view_cart, begin_checkout, add_shipping_info, add_payment_info,
  purchase and the adapter's custom friction events);
- Zendesk-style trigger webhooks (``{"ticket": {...}}``) when a logged-in customer writes to
  support after a visit: created, later updated, then solved with a satisfaction rating.

Sessions arrive as a Poisson process. Its rate is ``events_per_second`` divided by the mean
number of messages per session, measured once per config on a calibration sample. Each session
lands, browses (pages, product views, clicks with x/y/target, Web Vitals), some add to cart,
some check out through four steps (1 contact, 2 shipping, 3 payment, 4 review, the step numbers
the adapters share), pay (maybe declined, with the reason) and complete the order. Device mix,
funnel rates and think times follow published retail figures (constants below, with sources):
about 3% of sessions buy, about 60% of started checkouts complete.

The clock runs a warm-up (``config.warmup``, 10 minutes by default) before ``start`` without
emitting, so the first message already comes from a shop in steady state: sessions in every
stage, at the full rate. Sessions and frictions that began before ``start`` are marked
``partial`` in the truth.

Friction (``FRICTION_TYPES``), each with the exact evidence a detector will look for:

==================  ==========================================================================
rage_click          3-6 clicks within 1 s, all within 30 px, on one unresponsive element
dead_click          a click, then (usually) a ``Dead Click`` event, then nothing for 4-10 s
error_click         a click, then a JS error within 1 s
form_error_loop     the same field of a checkout form failing validation 2-4 times
payment_declined    2+ declined payment attempts, each with its reason (1+ in an outage)
step_stall          time in a checkout step of 5-25 min, far above the step's typical time
backtrack           returning to the previous checkout step 2-3 times
slow_page           a page with LCP > 4 s and/or INP > 500 ms (Web Vitals)
error_page          a page view with a 4xx/5xx status
api_error           1-3 failed API calls (5xx, 429 or network error 0) during checkout
coupon_failure      a coupon denied 2-4 times
==================  ==========================================================================

Baseline behaviour never crosses those lines (LCP under 3.8 s, INP under 450 ms, clicks at
least 1.2 s apart, single declines, single form errors and single coupon denials only, step
times under 3x typical), so every occurrence in the output is in the truth. Friction changes
behaviour: a session hit by it may leave at once (``ABANDON_AFTER``) and is less patient after.

Two ways to inject it: per session, with ``config.friction[type]`` the chance that a session
able to hit it does (a page-level type at one of its pages, a checkout type at the step it
needs); and ``Incident``s, scheduled windows that hit every session passing the affected spot
(``INCIDENT_KINDS``: payment_outage, broken_field, slow_step, api_outage, promo_broken).

Ground truth: ``Simulator.truth`` lists a ``FrictionTruth`` per friction that reached the output
(``start`` is the event time of the first event showing it), ``Simulator.outcomes`` a
``SessionOutcome`` per session (converted, revenue, abandoned_step). ``write_truth`` writes both
and the incidents as JSONL; ``read_truth`` reads them back.

>>> from streams.adapters import adapt
>>> from streams.simulator import SimConfig, Simulator
>>> sim = Simulator(SimConfig(seed=7, events_per_second=50, duration=300, start=1767225600))
>>> msgs = list(sim.messages())
>>> round(len(msgs) / 300), msgs[0].source, msgs[0].payload["event"], msgs[0].time
(50, 'segment', 'Element Clicked', 1767225600.029)
>>> all(a.time <= b.time for a, b in zip(msgs, msgs[1:]))
True
>>> sum(len(adapt(m.payload, m.source).rejected) for m in msgs)
0
>>> len({t.friction for t in sim.truth}), sim.truth[0].friction, sim.outcomes[0].finished
(11, 'dead_click', True)
"""

from __future__ import annotations

import functools
import heapq
import json
import math
import random
import time as _time
from collections.abc import Generator, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import msgspec

from detectors.holdout import Experiment, assign, customer_unit

__all__ = [
    "ABANDON_AFTER",
    "DEFAULT_FRICTION",
    "FRICTION_TYPES",
    "INCIDENT_KINDS",
    "NO_FRICTION",
    "STEP_NAMES",
    "FrictionTruth",
    "Incident",
    "SessionOutcome",
    "SimConfig",
    "SimMessage",
    "Simulator",
    "TruthFile",
    "read_truth",
    "write_truth",
]

# --- the fixed vocabularies ----------------------------------------------------------------

FRICTION_TYPES: tuple[str, ...] = (
    "rage_click",
    "dead_click",
    "error_click",
    "form_error_loop",
    "payment_declined",
    "step_stall",
    "backtrack",
    "slow_page",
    "error_page",
    "api_error",
    "coupon_failure",
)

#: Friction that happens on any page, browsing or checkout; the rest needs a checkout step.
PAGE_FRICTION = ("rage_click", "dead_click", "error_click", "slow_page", "error_page")

#: Per-session chance of each friction, given the session gets where it can happen. Chosen so a
#: default run has a few percent of sessions with each kind: rage and dead clicks appear in a few
#: percent of sessions in session-replay vendors' benchmarks; a poor LCP in about 1 in 10 mobile
#: page loads (Chrome UX Report), diluted here to once per session; checkout kinds per checkout.
DEFAULT_FRICTION: dict[str, float] = {
    "rage_click": 0.03,
    "dead_click": 0.04,
    "error_click": 0.02,
    "form_error_loop": 0.10,
    "payment_declined": 0.06,
    "step_stall": 0.05,
    "backtrack": 0.06,
    "slow_page": 0.06,
    "error_page": 0.02,
    "api_error": 0.05,
    "coupon_failure": 0.05,
}
NO_FRICTION: dict[str, float] = dict.fromkeys(FRICTION_TYPES, 0.0)

#: Chance that a session leaves right after a friction (before it, the step-by-step funnel).
#: Checkout errors drive away more people than a slow page; a session that stays is 15% less
#: likely to go on at each later decision (``PATIENCE_AFTER``).
ABANDON_AFTER: dict[str, float] = {
    "rage_click": 0.15,
    "dead_click": 0.12,
    "error_click": 0.25,
    "form_error_loop": 0.30,
    "payment_declined": 0.45,
    "step_stall": 0.35,
    "backtrack": 0.20,
    "slow_page": 0.15,
    "error_page": 0.35,
    "api_error": 0.35,
    "coupon_failure": 0.20,
}
PATIENCE_AFTER = 0.85

#: Frictions that alert, and so trigger a chat offer, at once (``detectors.alerting``'s
#: weight 1.0): the ones a chat offer can answer in time.
CHAT_FRICTION = frozenset({"payment_declined", "form_error_loop", "step_stall", "api_error"})

STEP_NAMES: dict[int, str] = {1: "contact", 2: "shipping", 3: "payment", 4: "review"}
_STEP_NUMBERS = {name: n for n, name in STEP_NAMES.items()}

INCIDENT_KINDS: dict[str, dict[str, Any]] = {
    # A payment provider declines most cards: every attempt through it in the window.
    "payment_outage": {"provider": "stripe", "decline_rate": 0.9, "reason": "processing_error"},
    # A form field fails validation for everyone on one step (e.g. a postal-code regex).
    "broken_field": {"step": "shipping", "field": "postal_code",
                     "message": "Enter a valid postal code"},
    # A checkout step is slow: its page's LCP and INP, and the time people spend in it.
    "slow_step": {"step": "payment", "lcp_ms": 9000.0, "inp_ms": 900.0, "extra_seconds": 25.0},
    # An API a checkout step calls fails.
    "api_outage": {"step": "shipping", "endpoint": "/api/checkout/shipping-rates",
                   "status_code": 503, "fail_rate": 0.95},
    # A promoted coupon code is denied for everyone (and many people try it).
    "promo_broken": {"code": "SPRING20", "reason": "not_applicable", "uptake": 0.5},
}

# --- behaviour constants ---------------------------------------------------------------------

#: Share of sessions by device: retail traffic is about 55-60% mobile (Salesforce Shopping
#: Index, 2023-24), desktop most of the rest.
DEVICE_MIX = (("mobile", 0.55), ("desktop", 0.38), ("tablet", 0.07))
#: Viewport sizes (CSS px) for click coordinates.
_VIEWPORT = {"mobile": (390, 844), "desktop": (1440, 900), "tablet": (820, 1180)}
#: Sessions that add to cart: add-to-cart rates run about 8-12%, desktop highest
#: (e.g. Littledata and Dynamic Yield benchmarks).
BUYER_SHARE = {"desktop": 0.17, "mobile": 0.12, "tablet": 0.14}
#: Of sessions with a cart, the share that starts checkout (cart abandonment is about 70% in
#: Baymard's average of 49 studies; with step drop-off below, cart->order is about 30%).
CHECKOUT_SHARE = 0.6
#: Chance to go on from each checkout step, before friction. Product about 0.63, so about 60%
#: of started checkouts finish once payment and friction take their share.
STEP_CONTINUE = {1: 0.92, 2: 0.90, 3: 0.93, 4: 0.95}
#: Purchase intent at checkout, hidden: the log-odds that a shopper is set on buying are
#: ``base + channel + logged_in * logged in - cart * log(cart value / 80) + N(0, noise)``,
#: ``channel`` being the shopper's ``TRAFFIC_SOURCES`` term. Returning,
#: logged-in customers convert about twice as often as new visitors (e.g. Adobe Digital
#: Index and Monetate benchmarks), and big carts are abandoned more (price sensitivity).
#: Intent sets ``hesitancy`` = 2.5 x (1 - intent), about 1 on average: each step's chance to
#: leave, ``1 - STEP_CONTINUE``, is multiplied by it. So exits are not a coin flip the same
#: for everyone: who the shopper is and where they came from tells, as in real checkouts.
CHECKOUT_INTENT = {"base": 0.3, "logged_in": 0.8, "cart": 0.4, "noise": 1.0}
#: Where sessions come from: channel -> (share of sessions, what it adds to the log-odds of
#: intent, landing URL query, referrer). Email and direct visitors buy most readily, paid
#: social least (channel conversion benchmarks, e.g. Littledata, Wolfgang Digital).
TRAFFIC_SOURCES: dict[str, tuple[float, float, str, str | None]] = {
    "direct": (0.25, 0.4, "", None),
    "organic_search": (0.30, 0.0, "", "https://www.google.com/"),
    "paid_search": (0.15, 0.2, "?gclid=Cj0KCQ", None),
    "paid_social": (0.12, -0.9, "?utm_source=facebook&utm_medium=paid_social", None),
    "social": (0.08, -0.5, "", "https://www.instagram.com/"),
    "email": (0.07, 0.8, "?utm_source=newsletter&utm_medium=email", None),
    "referral": (0.03, 0.0, "", "https://blog.example.org/best-gifts"),
}
#: Mobile checkouts convert worse: each step's chance is multiplied by this.
MOBILE_STEP_FACTOR = 0.97
#: Median seconds in each step; baseline times are capped at 3x this, stalls are far above.
STEP_MEDIAN_S = {1: 25.0, 2: 40.0, 3: 55.0, 4: 20.0}
#: Sessions that leave after the landing page: retail bounce rates are about 40%.
BOUNCE = 0.42
#: Chance to view one more page while browsing (geometric: about 3.5 pages for non-buyers).
BROWSE_CONTINUE = 0.72
#: Median seconds on a page while browsing; mobile visits are shorter.
PAGE_MEDIAN_S = {"desktop": 20.0, "mobile": 14.0, "tablet": 17.0}
#: Share of sessions logged in from the start; guests who log in at the contact step.
LOGGED_IN_SHARE = 0.3
LOGIN_AT_CHECKOUT = 0.25
#: Natural noise that is not friction: one JS error at page load, one field error, one decline.
PAGE_LOAD_JS_ERROR = 0.015
FORM_ERROR_ONCE = 0.06
DECLINE_ONCE = 0.03
COUPON_TRY = 0.12
COUPON_OK = 0.7
#: Payment methods and the provider each goes through.
PAYMENT_METHODS = (("card", "stripe", 0.8), ("paypal", "paypal", 0.15), ("klarna", "klarna", 0.05))
#: A hazard per page for page-level friction: a flagged session shows it at about its 2nd page.
PAGE_HAZARD = 0.45

_DECLINE_REASONS = ("insufficient_funds", "do_not_honor", "card_declined", "expired_card",
                    "incorrect_cvc")
_COUPON_REASONS = ("expired", "invalid_code", "minimum_not_met", "not_applicable")
_CATEGORIES = ("shoes", "dresses", "jackets", "bags", "home", "beauty", "outdoor", "kids")
_FIELDS = {1: ("email", "phone"), 2: ("postal_code", "address_line1", "city"),
           3: ("card_number", "expiry", "cvc")}
_FIELD_MESSAGES = {
    "email": "Enter a valid email address",
    "phone": "Enter a valid phone number",
    "postal_code": "Enter a valid postal code",
    "address_line1": "Enter an address",
    "city": "Enter a city",
    "card_number": "Your card number is incomplete",
    "expiry": "Your card's expiration date is in the past",
    "cvc": "Your card's security code is incomplete",
}
_API_ENDPOINTS = {2: "/api/checkout/shipping-rates", 3: "/api/payments/session",
                  4: "/api/checkout/totals"}
_JS_ERRORS = (
    "TypeError: Cannot read properties of undefined (reading 'submit')",
    "TypeError: null is not an object (evaluating 'btn.dataset')",
    "ReferenceError: PaymentRequest is not defined",
    "Uncaught (in promise) Error: Network request failed",
)
#: Elements and their place on the page (fractions of the viewport).
_TARGETS_BROWSE = (
    ("button.add-to-cart", 0.75, 0.55), ("a.size-guide", 0.7, 0.45),
    ("div.carousel-next", 0.9, 0.35), ("img.product-zoom", 0.35, 0.4),
    ("button.filter-apply", 0.15, 0.3), ("a.nav-sale", 0.3, 0.05),
)
_TARGETS_CHECKOUT = (
    ("button#continue", 0.5, 0.85), ("button#place-order", 0.5, 0.9),
    ("button.apply-coupon", 0.8, 0.6), ("input#postal_code", 0.4, 0.5),
    ("label.delivery-option", 0.3, 0.55),
)
_NORMAL_CLICKS = ("img.product-thumb", "button.size-option", "a.product-card", "button.color",
                  "summary.details", "a.breadcrumb")
SHOP_URL = "https://shop.example.com"


# --- configuration ---------------------------------------------------------------------------


def _duration_seconds(text: str) -> float:
    """``90``, ``90s``, ``2m`` or ``1h`` as seconds."""
    text = text.strip().lower()
    scale = {"s": 1.0, "m": 60.0, "h": 3600.0}.get(text[-1:])
    return float(text[:-1]) * scale if scale else float(text)


@dataclass(frozen=True)
class Incident:
    """A scheduled window in which something breaks for every session that passes by.

    ``start`` is seconds after ``SimConfig.start``; ``params`` override the kind's defaults
    (``INCIDENT_KINDS``). ``parse`` reads the CLI form ``kind@start+duration[:key=value,...]``:

    >>> i = Incident.parse("broken_field@30+2m:field=city")
    >>> i.kind, i.start, i.duration, i.settings["field"], i.settings["step"], i.label
    ('broken_field', 30.0, 120.0, 'city', 'shipping', 'broken_field@30')
    """

    kind: str
    start: float
    duration: float
    params: Mapping[str, Any] = field(default_factory=dict)
    #: Name in the truth; default ``kind@start``.
    name: str | None = None

    def __post_init__(self) -> None:
        defaults = INCIDENT_KINDS.get(self.kind)
        if defaults is None:
            raise ValueError(f"unknown incident kind {self.kind!r}; one of {list(INCIDENT_KINDS)}")
        unknown = set(self.params) - set(defaults)
        if unknown:
            raise ValueError(f"{self.kind}: unknown params {sorted(unknown)}; "
                             f"known: {sorted(defaults)}")
        if self.start < 0 or self.duration <= 0:
            raise ValueError("incident start must be >= 0 and duration > 0")
        step = self.settings.get("step")
        if step is not None and _step_number(step) is None:
            raise ValueError(f"{self.kind}: unknown step {step!r}; one of {STEP_NAMES}")

    @property
    def settings(self) -> dict[str, Any]:
        """The kind's defaults with ``params`` on top."""
        return {**INCIDENT_KINDS[self.kind], **self.params}

    @property
    def label(self) -> str:
        return self.name or f"{self.kind}@{self.start:g}"

    @classmethod
    def parse(cls, spec: str) -> Incident:
        """``kind@start+duration[:key=value,...]``; start and duration take s, m or h."""
        head, _, rest = spec.partition(":")
        kind, at, window = head.partition("@")
        start, plus, duration = window.partition("+")
        if not at or not plus:
            raise ValueError(f"incident {spec!r}: expected kind@start+duration[:key=value,...]")
        params: dict[str, Any] = {}
        for item in filter(None, rest.split(",")):
            key, eq, value = item.partition("=")
            if not eq:
                raise ValueError(f"incident {spec!r}: {item!r} is not key=value")
            params[key.strip()] = _param_value(value.strip())
        try:
            return cls(kind.strip(), _duration_seconds(start), _duration_seconds(duration), params)
        except ValueError as exc:
            raise ValueError(f"incident {spec!r}: {exc}") from None


def _param_value(text: str) -> Any:
    try:
        return float(text) if any(c in text for c in ".e") else int(text)
    except ValueError:
        return text


def _step_number(step: Any) -> int | None:
    if isinstance(step, int) and step in STEP_NAMES:
        return step
    if isinstance(step, str):
        return _STEP_NUMBERS.get(step) or (int(step) if step.isdigit() and
                                           int(step) in STEP_NAMES else None)
    return None


#: 2026-01-01T00:00:00Z: a fixed default start, so a config alone is reproducible.
DEFAULT_START = 1767225600.0
#: Default warm-up: most checkout journeys take under 10 minutes, so after it every stage of the
#: funnel is populated as in steady state. Warm-up messages are generated (not emitted) at about
#: 100,000/s, so at high rates it is shortened to cost at most this many of them.
WARMUP_SECONDS = 600.0
WARMUP_MESSAGES = 150_000


@dataclass(frozen=True)
class SimConfig:
    """Everything a run depends on. ``friction`` overrides ``DEFAULT_FRICTION`` per type."""

    seed: int = 0
    #: Mean messages per second of event time, once the shop is in steady state.
    events_per_second: float = 200.0
    #: Seconds of event time to emit after ``start``; None: no limit.
    duration: float | None = None
    #: Sessions to start (counting warm-up ones); then the run ends when they have. None: no limit.
    max_sessions: int | None = None
    #: Unix seconds of the first emitted event time (the live command passes now).
    start: float = DEFAULT_START
    #: Seconds simulated before ``start`` without emitting, so output starts in steady state.
    #: None: ``WARMUP_SECONDS``, shortened at high rates so it costs at most
    #: ``WARMUP_MESSAGES`` generated messages (about 1.5 s).
    warmup: float | None = None
    friction: Mapping[str, float] = field(default_factory=dict)
    incidents: tuple[Incident, ...] = ()
    #: Share of sessions sent as GA4 Measurement Protocol payloads (the rest are Segment).
    ga4_share: float = 0.2
    #: Chance that a logged-in customer who hit friction and left writes to support (a tenth of
    #: it after an order, a twenty-fifth after a visit without friction).
    support_share: float = 0.25
    #: Size of the customer base logged-in sessions draw from (returning customers recur).
    customers: int = 20_000
    currency: str = "USD"
    #: The true effect of a proactive chat offer: the chance that a shopper who would leave
    #: right after a checkout blocker (``CHAT_FRICTION``) stays because they were offered
    #: help. Only shoppers in the treatment arm of ``chat_experiment`` (the same hash the
    #: worker's holdout uses) are offered it, once per session. 0: chat changes nothing.
    chat_effect: float = 0.0
    chat_experiment: Experiment = field(default_factory=Experiment)

    def __post_init__(self) -> None:
        if not (self.events_per_second > 0 and math.isfinite(self.events_per_second)):
            raise ValueError("events_per_second must be a positive number")
        if self.duration is not None and self.duration < 0:
            raise ValueError("duration must be >= 0")
        if self.max_sessions is not None and self.max_sessions < 0:
            raise ValueError("max_sessions must be >= 0")
        if self.warmup is not None and self.warmup < 0:
            raise ValueError("warmup must be >= 0")
        unknown = set(self.friction) - set(FRICTION_TYPES)
        if unknown:
            raise ValueError(f"unknown friction types {sorted(unknown)}; one of {FRICTION_TYPES}")
        for name, p in {**self.friction, "ga4_share": self.ga4_share,
                        "support_share": self.support_share,
                        "chat_effect": self.chat_effect}.items():
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], not {p}")
        if self.customers < 1:
            raise ValueError("customers must be >= 1")
        object.__setattr__(self, "incidents", tuple(self.incidents))

    @property
    def warmup_seconds(self) -> float:
        if self.warmup is not None:
            return self.warmup
        return min(WARMUP_SECONDS, WARMUP_MESSAGES / self.events_per_second)

    @property
    def friction_rates(self) -> dict[str, float]:
        return {**DEFAULT_FRICTION, **self.friction}


# --- output and truth ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SimMessage:
    """One payload as a client would send it. ``payload`` shares sub-objects with other
    messages of its session (e.g. the Segment ``context``): treat it as read-only."""

    #: Event time, Unix seconds (whole milliseconds).
    time: float
    #: The ``fw-source`` header value: "segment", "ga4" or "support".
    source: str
    #: Kafka key: the session id (web) or None (support webhooks).
    key: bytes | None
    payload: dict[str, Any]

    def encode(self) -> bytes:
        """The payload as compact JSON bytes (the Kafka value)."""
        return _encoder.encode(self.payload)

    def envelope(self) -> dict[str, Any]:
        """The line ``simulate --out`` writes and ``replay`` reads."""
        return {"time": self.time, "source": self.source,
                "key": self.key.decode() if self.key is not None else None,
                "payload": self.payload}


@dataclass(slots=True)
class FrictionTruth:
    """One injected friction, as it shows in the output."""

    session_id: str
    customer_id: str | None
    #: One of ``FRICTION_TYPES``.
    friction: str
    #: Event time of the first event that shows it, and of the last (a stall: when it ended).
    start: float
    end: float
    #: Checkout step (1-4) where it happened; None while browsing.
    step: int | None
    #: ``Incident.label`` of the incident that caused it; None for per-session friction.
    incident: str | None
    #: Type-specific evidence: target, path, field, reasons, counts...
    detail: dict[str, Any]
    #: Event time at which it exists by its own definition, which detection is timed from:
    #: the 3rd click of a rage burst, the 2nd failure of a form-field loop, a coupon or a
    #: payment (the 1st during an outage), the 2nd return of a backtrack, and for a stall the
    #: moment its time in the step passes 3x the step's typical time (the most a friction-free
    #: visit takes here). Else ``start``.
    onset: float = 0.0
    #: The friction began before the emitted window (warm-up): its first events are missing.
    partial: bool = False
    #: The run stopped before all its events were out: ``end`` and the counts in ``detail``
    #: are as planned, not as emitted.
    truncated: bool = False


@dataclass(slots=True)
class SessionOutcome:
    """How one session ended (``finished`` False: still going when the run stopped)."""

    session_id: str
    customer_id: str | None
    source: str
    device: str
    start: float
    end: float
    converted: bool = False
    revenue: float = 0.0
    #: None: converted, or never had a cart. 0: left with a cart before checkout. 1-4: left
    #: during that checkout step.
    abandoned_step: int | None = None
    cart: bool = False
    checkout: bool = False
    #: Hidden purchase intent at checkout (``CHECKOUT_INTENT``, 0-1), which no event shows;
    #: None without a checkout. For judging models against what could be known at best.
    intent: float | None = None
    #: Friction records of this session in the truth.
    frictions: int = 0
    ticket: bool = False
    finished: bool = False
    partial: bool = False
    #: Holdout arm of the session's unit once it hit a checkout blocker (eligible for a chat
    #: offer), else None; ``rescued``: it would have left then and stayed thanks to the offer
    #: (``SimConfig.chat_effect``). Converted and rescued: the offer made this order.
    chat_arm: str | None = None
    rescued: bool = False


@dataclass
class TruthFile:
    frictions: list[FrictionTruth]
    outcomes: list[SessionOutcome]
    incidents: list[dict[str, Any]]


_encoder = msgspec.json.Encoder()


def _incident_record(inc: Incident, start: float) -> dict[str, Any]:
    return {"record": "incident", "name": inc.label, "kind": inc.kind,
            "start": start + inc.start, "end": start + inc.start + inc.duration,
            "params": inc.settings}


#: Friction type -> (event names that make it, how many it takes); see ``FrictionTruth.onset``.
_ONSET: dict[str, tuple[frozenset[str], int]] = {
    "rage_click": (frozenset({"Element Clicked"}), 3),
    "form_error_loop": (frozenset({"Form Field Error"}), 2),
    "coupon_failure": (frozenset({"Coupon Denied"}), 2),
    "payment_declined": (frozenset({"Payment Declined", "Payment Attempted"}), 2),
    "backtrack": (frozenset({"Checkout Step Viewed"}), 2),
}


def _defines(tr: FrictionTruth, kind: str, props: dict[str, Any],
             counts: dict[int, tuple[FrictionTruth, int]]) -> bool:
    """Whether this event of ``tr`` is the one from which the friction exists.

    ``counts`` maps ``id(tr)`` to (``tr``, its defining events so far): holding ``tr`` keeps
    the id from being reused by a later record while the count is live."""
    if tr.friction == "step_stall":
        # Set once: the stall becomes abnormal 3x typical after the step opened.
        tr.onset = tr.start + 3 * float(tr.detail.get("typical_seconds", 0.0))
        return False
    rule = _ONSET.get(tr.friction)
    if rule is None:
        return True
    kinds, needed = rule
    if kind not in kinds:
        return False
    if tr.friction == "backtrack" and props.get("step") != tr.detail.get("to_step"):
        return False
    if tr.friction == "payment_declined" and tr.incident is not None:
        needed = 1
    n = counts.get(id(tr), (tr, 0))[1] + 1
    if n == needed:
        counts.pop(id(tr), None)
        return True
    counts[id(tr)] = (tr, n)
    return False


def write_truth(sim: Simulator, out: str | Path | IO[str]) -> int:
    """Write the truth as JSONL: ``{"record": "incident" | "friction" | "outcome", ...}`` lines
    (incidents first, then frictions in order of first emitted event, then outcomes); returns
    lines written. Works mid-run too (e.g. after Ctrl-C): ``truncated`` is brought up to date."""
    sim.mark_truncated()
    lines = [_incident_record(i, sim.config.start) for i in sim.config.incidents]
    lines += [{"record": "friction", **asdict(t)} for t in sim.truth]
    lines += [{"record": "outcome", **asdict(o)} for o in sim.outcomes]
    text = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines)
    if isinstance(out, str | Path):
        Path(out).write_text(text)
    else:
        out.write(text)
    return len(lines)


def read_truth(path: str | Path) -> TruthFile:
    """Read a file ``write_truth`` wrote."""
    out = TruthFile([], [], [])
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            rec = json.loads(line)
            kind = rec.pop("record")
            if kind == "friction":
                out.frictions.append(FrictionTruth(**rec))
            elif kind == "outcome":
                out.outcomes.append(SessionOutcome(**rec))
            else:
                out.incidents.append(rec)
    return out


# --- the engine ------------------------------------------------------------------------------

_END = "_end"  # action kind: the web part of a session is over (not a message)
_TICKET = "ticket"
#: Action: (time ms, kind, properties, truth record or None). Kind is the Segment event name,
#: "page", "identify", "ticket" or _END.
_Act = tuple[int, str, Any, "FrictionTruth | None"]
#: A part of a session that tells its caller whether the shopper left (True) during it.
_Part = Generator[_Act, None, bool]


class _Iso:
    """ISO 8601 UTC with milliseconds, caching the formatted second (times mostly ascend)."""

    __slots__ = ("sec", "prefix")

    def __init__(self) -> None:
        self.sec = -1
        self.prefix = ""

    def __call__(self, ms: int) -> str:
        sec, rem = divmod(ms, 1000)
        if sec != self.sec:
            self.sec = sec
            self.prefix = _time.strftime("%Y-%m-%dT%H:%M:%S", _time.gmtime(sec))
        return f"{self.prefix}.{rem:03d}Z"


def _iso_seconds(ms: int) -> str:
    return _time.strftime("%Y-%m-%dT%H:%M:%SZ", _time.gmtime(ms // 1000))


class _Session:
    """One shopper's visit: ids, where they are, and what the generator remembers."""

    __slots__ = (
        "sid", "key", "fmt", "device", "anon", "client_id", "customer_id", "t", "n", "ctx",
        "url", "path", "patience", "flags", "pay_style", "cart", "cart_value", "outcome",
        "registered", "last_step", "last_t", "frictions", "ga4_device",
        "dead_sdk", "gen", "prev_path", "prev_title", "hesitancy", "source", "landing",
        "chat_offered",
    )
    sid: str
    key: bytes
    #: "segment" or "ga4"
    fmt: str
    device: str
    anon: str
    client_id: str
    customer_id: str | None
    #: The session's clock (ms): time of the action being generated.
    t: int
    #: Messages emitted (for message ids).
    n: int
    #: The Segment context of the current page (built on first use, then shared).
    ctx: dict[str, Any] | None
    url: str
    path: str
    #: Multiplies every "go on" chance; friction lowers it.
    patience: float
    #: How unsure the shopper is at checkout (0: set on buying; see ``CHECKOUT_INTENT``).
    hesitancy: float
    #: Channel the shopper came from (``TRAFFIC_SOURCES``), and the landing page's URL query
    #: and referrer until the landing page is sent.
    source: str
    landing: tuple[str, str | None] | None
    #: Per-session friction still to show.
    flags: set[str]
    #: True: payments as "Payment Attempted"; False: "Payment Succeeded" / "Payment Declined".
    pay_style: bool
    cart: list[dict[str, Any]]
    cart_value: float
    outcome: SessionOutcome | None
    registered: bool
    last_step: int
    last_t: int
    frictions: list[str]
    ga4_device: dict[str, str]
    #: The client SDK reports dead clicks itself (else a dead click is a click and silence).
    dead_sdk: bool
    gen: Iterator[_Act]
    prev_path: str
    prev_title: str

    def __init__(self) -> None:
        self.n = 0
        self.patience = 1.0
        self.hesitancy = 1.0
        self.source = "direct"
        self.landing = None
        self.cart = []
        self.cart_value = 0.0
        self.registered = False
        self.last_step = 0
        self.frictions = []
        self.outcome = None
        self.prev_path = "/"
        self.prev_title = "Home"
        self.chat_offered = False


class _Behaviour:
    """What shoppers do: session generators yielding actions. Holds the RNG and the catalog."""

    def __init__(self, config: SimConfig, rng: random.Random, incidents: Iterable[Incident]):
        self.config = config
        self.rng = rng
        self.rates = config.friction_rates
        start_ms = int(round(config.start * 1000))
        self.incidents: dict[str, list[tuple[int, int, Incident, dict[str, Any]]]] = {}
        for inc in incidents:
            s = start_ms + int(round(inc.start * 1000))
            self.incidents.setdefault(inc.kind, []).append(
                (s, s + int(round(inc.duration * 1000)), inc, inc.settings))
        catalog_rng = random.Random(f"{config.seed}:catalog")
        self.catalog: list[dict[str, Any]] = [
            {
                "product_id": f"sku-{i:05d}",
                "name": f"{cat.title()} item {i}",
                "category": cat,
                # Prices lognormal around $45, as apparel and home goods are.
                "price": round(min(600.0, math.exp(catalog_rng.gauss(math.log(45), 0.7))), 2),
            }
            for i, cat in enumerate(catalog_rng.choice(_CATEGORIES) for _ in range(400))
        ]
        self.seq = 0
        # A stream of its own, so that with no chat effect the output is what it always was.
        self.chat_rng = random.Random(f"{config.seed}:chat")
        self.ticket_base = rng.randrange(1_000_000, 9_000_000)
        self.tickets = 0

    # -- helpers ------------------------------------------------------------------------------

    def incident(self, kind: str, t: int, step: int | None = None
                 ) -> tuple[Incident, dict[str, Any]] | None:
        for s, e, inc, settings in self.incidents.get(kind, ()):
            if s <= t < e and (step is None or _step_number(settings.get("step")) == step):
                return inc, settings
        return None

    def new_session(self, t: int) -> _Session:
        rng, cfg = self.rng, self.config
        self.seq += 1
        s = _Session()
        u = rng.random()
        for device, share in DEVICE_MIX:
            s.device = device
            u -= share
            if u < 0:
                break
        hexid = f"{rng.getrandbits(64):016x}"
        s.sid = f"sess_{hexid}"
        s.key = s.sid.encode()
        s.fmt = "ga4" if rng.random() < cfg.ga4_share else "segment"
        s.anon = f"anon_{rng.getrandbits(48):012x}"
        s.client_id = f"{rng.randrange(10**9, 10**10)}.{t // 1000}"
        s.ga4_device = {"category": s.device}
        s.customer_id = self.customer() if rng.random() < LOGGED_IN_SHARE else None
        u = rng.random()
        for source, (share, _, query, referrer) in TRAFFIC_SOURCES.items():
            s.source, s.landing = source, (query, referrer)
            u -= share
            if u < 0:
                break
        s.t = t
        s.last_t = t
        s.path = "/"
        s.url = SHOP_URL + "/"
        s.ctx = None
        s.pay_style = rng.random() < 0.5  # True: Payment Attempted; False: Succeeded/Declined
        s.dead_sdk = rng.random() < 0.75  # the client SDK reports dead clicks itself
        rates = self.rates
        s.flags = {f for f in FRICTION_TYPES if rates[f] > 0 and rng.random() < rates[f]}
        return s

    def customer(self) -> str:
        # Skewed: low ids come back more often (loyal customers).
        u = self.rng.random()
        return f"cust_{int(self.config.customers * u * u):06d}"

    def ms(self, seconds: float) -> int:
        return max(1, int(seconds * 1000))

    def lognormal(self, median: float, sigma: float, lo: float, hi: float) -> float:
        return min(hi, max(lo, median * math.exp(self.rng.gauss(0.0, sigma))))

    def xy(self, s: _Session, fx: float, fy: float) -> tuple[float, float]:
        w, h = _VIEWPORT[s.device]
        rng = self.rng
        return (round(fx * w + rng.uniform(-20, 20)), round(fy * h + rng.uniform(-15, 15)))

    def truth(self, s: _Session, friction: str, step: int | None,
              incident: Incident | None = None, **detail: Any) -> FrictionTruth:
        s.frictions.append(friction)
        return FrictionTruth(s.sid, s.customer_id, friction, 0.0, 0.0, step,
                             incident.label if incident else None, detail)

    def leaves(self, s: _Session, friction: str) -> bool:
        """After a friction: maybe leave now; if not, less patient from here on."""
        leave = self.rng.random() < ABANDON_AFTER[friction]
        if friction in CHAT_FRICTION and self.chat_offer(s) and leave:
            assert s.outcome is not None
            s.outcome.rescued = True
            leave = False
        if leave:
            return True
        s.patience *= PATIENCE_AFTER
        return False

    def chat_offer(self, s: _Session) -> bool:
        """A checkout blocker: the worker offers chat (treatment arm, first time in the
        session); True if the offer would keep a shopper who is about to leave."""
        o = s.outcome
        if s.chat_offered or o is None:
            return False
        s.chat_offered = True
        exp = self.config.chat_experiment
        unit = customer_unit(s.customer_id) if s.customer_id else "s:" + s.sid
        o.chat_arm = assign(unit, exp.name, exp.salt, exp.control_share)
        return o.chat_arm == "treatment" and self.chat_rng.random() < self.config.chat_effect

    def goes_on(self, s: _Session, p: float) -> bool:
        return self.rng.random() < p * s.patience

    def take(self, s: _Session, friction: str, hazard: float = 1.0) -> bool:
        """Whether the session's per-session friction of this type shows here (once)."""
        if friction in s.flags and self.rng.random() < hazard:
            s.flags.discard(friction)
            return True
        return False

    # -- pages --------------------------------------------------------------------------------

    def page(
        self,
        s: _Session,
        path: str,
        title: str,
        *,
        step: int | None = None,
        extra: tuple[str, dict[str, Any]] | None = None,
        extra_truth: FrictionTruth | None = None,
    ) -> Generator[_Act, None, int]:
        """A page view with what comes with it: the page's own event (Product Viewed, Checkout
        Step Viewed...), Web Vitals, maybe page-level friction. Returns 1 if the session left,
        2 if the page was not shown (a 404 sent the shopper back), else 0."""
        rng = self.rng
        status = None
        diverted = False
        tr: FrictionTruth | None = None
        if self.take(s, "error_page", PAGE_HAZARD):
            status = rng.choice((500, 502, 503)) if step else 404
        if status is not None:
            tr = self.truth(s, "error_page", step, path=path, status_code=status)
            s.path, s.url = path, SHOP_URL + path
            s.ctx = None
            yield (s.t, "page", {"path": path, "url": s.url, "title": "Error",
                                 "status_code": status}, tr)
            if self.leaves(s, "error_page"):
                return 1
            s.t += self.ms(rng.uniform(2.0, 6.0))
            if status == 404:  # a dead link: back to where they came from
                path, title, extra, diverted = s.prev_path, s.prev_title, None, True
            # a 5xx: they reload the page
        prev_url = s.url
        s.path, s.url = path, SHOP_URL + path
        s.ctx = None
        t0 = s.t
        props: dict[str, Any] = {"path": path, "url": s.url, "title": title}
        if s.landing is not None:  # the landing page: where the shopper came from
            query, referrer = s.landing
            s.landing = None
            s.url = props["url"] = s.url + query
            if referrer:
                props["referrer"] = referrer
        elif prev_url != s.url:
            props["referrer"] = prev_url
        yield (t0, "page", props, None)
        if extra is not None:
            s.t += self.ms(rng.uniform(0.02, 0.3))
            yield (s.t, extra[0], extra[1], extra_truth)
        if rng.random() < PAGE_LOAD_JS_ERROR:  # noise: a third-party script at load
            s.t = max(s.t, t0 + self.ms(rng.uniform(1.2, 2.5)))
            yield (s.t, "JS Error", {"message": "Script error.", "source": "third-party.js"}, None)
        # Web Vitals, reported once LCP is known. Baseline stays under the "poor" lines.
        slow = self.incident("slow_step", s.t, step) if step else None
        lcp = self.lognormal(1600.0 if s.device == "desktop" else 2300.0, 0.35, 400.0, 3800.0)
        inp = self.lognormal(120.0 if s.device == "desktop" else 180.0, 0.5, 16.0, 450.0)
        tr = None
        if slow is not None:
            inc, cfg = slow
            lcp = self.lognormal(float(cfg["lcp_ms"]), 0.25, 4500.0, 30000.0)
            inp = self.lognormal(float(cfg["inp_ms"]), 0.3, 550.0, 5000.0)
            tr = self.truth(s, "slow_page", step, inc, path=path, lcp_ms=round(lcp),
                            inp_ms=round(inp))
        elif self.take(s, "slow_page", PAGE_HAZARD):
            u = rng.random()
            if u < 0.75:
                lcp = rng.uniform(4500.0, 12000.0)
            if u >= 0.6:
                inp = rng.uniform(600.0, 2000.0)
            tr = self.truth(s, "slow_page", step, path=path, lcp_ms=round(lcp), inp_ms=round(inp))
        s.t = max(s.t, t0 + int(lcp)) + self.ms(rng.uniform(0.3, 1.0))
        yield (s.t, "Web Vitals", {"lcp": round(lcp), "inp": round(inp),
                                   "cls": round(rng.uniform(0.0, 0.2), 3),
                                   "ttfb": round(rng.uniform(150.0, 900.0))}, tr)
        if tr is not None and self.leaves(s, "slow_page"):
            return 1
        s.prev_path, s.prev_title = path, title
        # Click friction, at least 4 s after load and 1.5 s from any other click.
        for kind in ("rage_click", "dead_click", "error_click"):
            if self.take(s, kind, PAGE_HAZARD):
                s.t = max(s.t, t0 + 4000) + self.ms(rng.uniform(1.5, 6.0))
                yield from self.click_friction(s, kind, step)
                if self.leaves(s, kind):
                    return 1
        return 2 if diverted else 0

    def click_friction(self, s: _Session, kind: str, step: int | None) -> Iterator[_Act]:
        rng = self.rng
        target, fx, fy = rng.choice(_TARGETS_CHECKOUT if step else _TARGETS_BROWSE)
        x, y = self.xy(s, fx, fy)
        if kind == "rage_click":
            n = rng.randint(3, 6)
            tr = self.truth(s, kind, step, target=target, clicks=n, x=x, y=y, path=s.path)
            for i in range(n):
                if i:
                    s.t += self.ms(rng.uniform(0.1, 0.3))
                yield (s.t, "Element Clicked", {"x": x + rng.randint(-8, 8),
                                                "y": y + rng.randint(-8, 8),
                                                "target": target}, tr)
        elif kind == "dead_click":
            tr = self.truth(s, kind, step, target=target, x=x, y=y, path=s.path,
                            reported=s.dead_sdk)
            yield (s.t, "Element Clicked", {"x": x, "y": y, "target": target}, tr)
            if s.dead_sdk:
                s.t += self.ms(rng.uniform(1.0, 1.5))
                yield (s.t, "Dead Click", {"x": x, "y": y, "target": target}, tr)
            s.t += self.ms(rng.uniform(4.0, 10.0))  # nothing happens; they give up on it
            return
        else:
            message = rng.choice(_JS_ERRORS)
            tr = self.truth(s, kind, step, target=target, message=message, path=s.path)
            yield (s.t, "Element Clicked", {"x": x, "y": y, "target": target}, tr)
            s.t += self.ms(rng.uniform(0.1, 0.9))
            yield (s.t, "JS Error", {"message": message, "source": "/static/js/app.js"}, tr)
        s.t += self.ms(rng.uniform(1.5, 4.0))

    def clicks(self, s: _Session, n: int) -> Iterator[_Act]:
        """Ordinary clicks, 2-8 s apart (never rage-like)."""
        rng = self.rng
        for _ in range(n):
            s.t += self.ms(rng.uniform(2.0, 8.0))
            x, y = self.xy(s, rng.uniform(0.1, 0.9), rng.uniform(0.15, 0.85))
            yield (s.t, "Element Clicked", {"x": x, "y": y, "target": rng.choice(_NORMAL_CLICKS)},
                   None)

    def navigate(self, s: _Session, dwell: float, target: str) -> Iterator[_Act]:
        """Stay ``dwell`` seconds in all, then click a link; the next page follows."""
        rng = self.rng
        s.t += self.ms(max(1.5, dwell - 6.0))
        x, y = self.xy(s, rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9))
        yield (s.t, "Element Clicked", {"x": x, "y": y, "target": target}, None)
        s.t += self.ms(rng.uniform(0.3, 0.8))

    # -- a session ----------------------------------------------------------------------------

    def session(self, s: _Session) -> Iterator[_Act]:
        yield from self.web(s)
        yield (s.t, _END, None, None)
        yield from self.support(s)

    def identify(self, s: _Session) -> _Act:
        num = int(s.customer_id[5:]) if s.customer_id else 0
        traits = {"email": f"{s.customer_id}@example.com",
                  "loyalty_tier": ("bronze", "silver", "gold")[num % 3],
                  "orders_count": num % 17}
        return (s.t, "identify", traits, None)

    def web(self, s: _Session) -> Iterator[_Act]:
        rng = self.rng
        if s.customer_id and s.fmt == "segment":
            yield self.identify(s)
            s.t += self.ms(rng.uniform(0.05, 0.4))
        buyer = rng.random() < BUYER_SHARE[s.device]
        # Landing: home, a category (ads, email), a product (search, social) or a search.
        u = rng.random()
        where = "home" if u < 0.35 else "category" if u < 0.65 else "product" if u < 0.9 else \
            "search"
        median = PAGE_MEDIAN_S[s.device]
        pages = 0
        while True:
            product = None
            if where == "home":
                r = yield from self.page(s, "/", "Home")
            elif where == "category":
                cat = rng.choice(_CATEGORIES)
                r = yield from self.page(s, f"/c/{cat}", cat.title(), extra=(
                    "Product List Viewed", {"list_id": cat, "category": cat}))
            elif where == "search":
                q = rng.choice(_CATEGORIES)
                r = yield from self.page(s, f"/search?q={q}", "Search", extra=(
                    "Products Searched", {"query": q}))
            else:
                product = rng.choice(self.catalog)
                r = yield from self.page(s, f"/p/{product['product_id']}", product["name"],
                                         extra=("Product Viewed", self.product_props(product)))
            if r == 1:
                return
            if r == 2:
                product = None
            pages += 1
            dwell = self.lognormal(median, 0.8, 3.0, 150.0)
            t_in = s.t
            yield from self.clicks(s, rng.randint(0, 2))
            if product is not None and buyer and rng.random() < 0.5:
                s.t += self.ms(rng.uniform(2.0, 10.0))
                yield from self.add_to_cart(s, product)
                if rng.random() < 0.7 or len(s.cart) > 2:  # straight to the cart
                    yield from self.navigate(s, 3.0, "a.mini-cart")
                    yield from self.cart_and_checkout(s)
                    return
            if pages == 1 and not buyer and rng.random() < BOUNCE:
                return
            go_on = 0.9 if buyer else BROWSE_CONTINUE
            if pages >= 30 or not self.goes_on(s, go_on):
                if s.cart and rng.random() < 0.5:  # a last look at the cart before leaving
                    yield from self.navigate(s, dwell - (s.t - t_in) / 1000, "a.mini-cart")
                    yield from self.page(s, "/cart", "Cart", extra=("Cart Viewed",
                                                                    self.cart_props(s)))
                return
            nxt = rng.random()
            if where == "home":
                where = "category" if nxt < 0.5 else "search" if nxt < 0.7 else "product"
            elif where in ("category", "search"):
                where = "product" if nxt < 0.8 else "category"
            else:
                where = "product" if nxt < 0.45 else "category" if nxt < 0.85 else "search"
            if buyer and where != "product" and rng.random() < 0.5:
                where = "product"  # people who mean to buy head for products
            yield from self.navigate(s, dwell - (s.t - t_in) / 1000,
                                     "a.product-card" if where == "product" else "a.nav-link")

    def product_props(self, product: dict[str, Any]) -> dict[str, Any]:
        return {**product, "sku": product["product_id"], "currency": self.config.currency}

    def cart_props(self, s: _Session) -> dict[str, Any]:
        return {"cart_id": "cart_" + s.sid[5:], "cart_value": round(s.cart_value, 2),
                "currency": self.config.currency, "products": s.cart}

    def add_to_cart(self, s: _Session, product: dict[str, Any]) -> Iterator[_Act]:
        qty = 1 if self.rng.random() < 0.85 else 2
        s.cart.append({**product, "quantity": qty})
        s.cart_value += product["price"] * qty
        x, y = self.xy(s, 0.75, 0.55)
        yield (s.t, "Element Clicked", {"x": x, "y": y, "target": "button.add-to-cart"}, None)
        s.t += self.ms(self.rng.uniform(0.2, 0.8))
        yield (s.t, "Product Added", {**self.product_props(product), "quantity": qty,
                                      "cart_value": round(s.cart_value, 2)}, None)

    def cart_and_checkout(self, s: _Session) -> Iterator[_Act]:
        rng = self.rng
        r = yield from self.page(s, "/cart", "Cart", extra=("Cart Viewed", self.cart_props(s)))
        if r:
            return
        if not self.goes_on(s, CHECKOUT_SHARE):
            yield from self.clicks(s, rng.randint(0, 2))
            s.t += self.ms(self.lognormal(20.0, 0.6, 3.0, 120.0))
            return
        yield from self.navigate(s, self.lognormal(15.0, 0.5, 3.0, 60.0), "button#checkout")
        yield from self.checkout(s)

    # -- checkout -----------------------------------------------------------------------------

    def checkout(self, s: _Session) -> Iterator[_Act]:
        rng = self.rng
        rates_step = {
            "form_error_loop": rng.randint(1, 3),
            "step_stall": rng.choice((1, 2, 3, 3, 4)),
            "backtrack": rng.randint(2, 4),
            "api_error": rng.randint(2, 4),
            "coupon_failure": 4,
        }
        value = round(s.cart_value, 2)
        ci = CHECKOUT_INTENT
        logit = (ci["base"] + TRAFFIC_SOURCES[s.source][1]
                 + ci["logged_in"] * (s.customer_id is not None)
                 - ci["cart"] * math.log(max(s.cart_value, 1.0) / 80.0)
                 + rng.gauss(0.0, ci["noise"]))
        s.hesitancy = 2.5 * (1.0 - 1.0 / (1.0 + math.exp(-logit)))
        s.t += self.ms(rng.uniform(0.05, 0.3))
        yield (s.t, "Checkout Started", {"checkout_id": "chk_" + s.sid[5:], "value": value,
                                         "revenue": value, "currency": self.config.currency,
                                         "products": s.cart}, None)
        step = 1
        while step <= 4:
            r = yield from self.step(s, step, rates_step)
            if r:
                return
            step += 1
        yield from self.confirmation(s)

    def step_view(self, s: _Session, step: int, tr: FrictionTruth | None = None
                  ) -> Generator[_Act, None, int]:
        name = STEP_NAMES[step]
        s.last_step = step
        return (yield from self.page(
            s, f"/checkout/{name}", f"Checkout: {name}", step=step,
            extra=("Checkout Step Viewed", {"checkout_id": "chk_" + s.sid[5:], "step": step,
                                            "step_name": name}), extra_truth=tr))

    def step_done(self, s: _Session, step: int, tr: FrictionTruth | None = None) -> _Act:
        name = STEP_NAMES[step]
        props: dict[str, Any] = {"checkout_id": "chk_" + s.sid[5:], "step": step,
                                 "step_name": name}
        if step == 3:
            return (s.t, "Payment Info Entered", {**props, "payment_method": "credit_card"}, tr)
        if step == 2:
            props["shipping_method"] = self.rng.choice(("standard", "express", "pickup"))
        return (s.t, "Checkout Step Completed", props, tr)

    def step(self, s: _Session, step: int, where: dict[str, int]) -> _Part:
        """One checkout step. Returns True if the session left during it."""
        rng = self.rng
        median = STEP_MEDIAN_S[step] * (1.2 if s.device == "mobile" else 1.0)
        dwell = self.lognormal(median, 0.5, median / 4, median * 3)
        stall_tr = None
        if where["step_stall"] == step and self.take(s, "step_stall"):
            dwell = min(1500.0, max(300.0, median * rng.uniform(6.0, 15.0)))
            stall_tr = self.truth(s, "step_stall", step, step_name=STEP_NAMES[step],
                                  seconds=round(dwell, 1), typical_seconds=median)
        slow = self.incident("slow_step", s.t, step)
        if slow is not None:
            dwell += float(slow[1]["extra_seconds"])
        r = yield from self.step_view(s, step, stall_tr)
        if r:
            return True
        if stall_tr is not None:
            # Once the page has loaded, nothing for ``dwell``. The stall ends with their next
            # event, or, if they never come back, when they would have.
            s.t += int(dwell * 1000)
            stall_tr.end = s.t / 1000
            if self.leaves(s, "step_stall"):
                return True
            s.t += 1
            yield (s.t, "Element Clicked", {**dict(zip(("x", "y"), self.xy(s, 0.5, 0.4),
                                                       strict=True)),
                                            "target": "input:focus"}, stall_tr)
            dwell = median
        if step >= 2 and where["backtrack"] == step and self.take(s, "backtrack"):
            r = yield from self.backtrack(s, step)
            if r:
                return True
        if step == 1 and s.customer_id is None and rng.random() < LOGIN_AT_CHECKOUT:
            s.t += self.ms(rng.uniform(5.0, 15.0))
            s.customer_id = self.customer()
            if s.fmt == "segment":
                yield self.identify(s)
        if step in _API_ENDPOINTS:
            r = yield from self.api_calls(s, step, where["api_error"] == step)
            if r:
                return True
        t_in = s.t
        yield from self.clicks(s, rng.randint(1, 3))
        if step in _FIELDS:
            r = yield from self.form(s, step, where["form_error_loop"] == step)
            if r:
                return True
        if step == 4:
            r = yield from self.coupon(s, step)
            if r:
                return True
        p = 1.0 - (1.0 - STEP_CONTINUE[step]) * s.hesitancy
        p *= MOBILE_STEP_FACTOR if s.device == "mobile" else 1.0
        s.t = max(s.t, t_in + int(dwell * 1000 * 0.6))
        if not self.goes_on(s, p):
            s.t += self.ms(rng.uniform(2.0, 20.0))
            return True
        if step == 4:
            return (yield from self.pay(s))
        s.t += self.ms(rng.uniform(0.5, 3.0))
        x, y = self.xy(s, 0.5, 0.85)
        yield (s.t, "Element Clicked", {"x": x, "y": y, "target": "button#continue"}, None)
        s.t += self.ms(rng.uniform(0.2, 0.8))
        yield self.step_done(s, step)
        s.t += self.ms(rng.uniform(0.3, 1.5))
        return False

    def backtrack(self, s: _Session, step: int) -> _Part:
        rng = self.rng
        returns = rng.randint(2, 3)
        tr = self.truth(s, "backtrack", step, from_step=step, to_step=step - 1, returns=returns)
        for _ in range(returns):
            s.t += self.ms(rng.uniform(4.0, 15.0))
            prev = step - 1
            s.last_step = prev
            name = STEP_NAMES[prev]
            yield (s.t, "Checkout Step Viewed", {"checkout_id": "chk_" + s.sid[5:], "step": prev,
                                                 "step_name": name}, tr)
            s.t += self.ms(rng.uniform(5.0, 20.0))
            yield self.step_done(s, prev, tr)
            s.t += self.ms(rng.uniform(0.5, 2.0))
            s.last_step = step
            yield (s.t, "Checkout Step Viewed", {"checkout_id": "chk_" + s.sid[5:], "step": step,
                                                 "step_name": STEP_NAMES[step]}, tr)
        return self.leaves(s, "backtrack")

    def api_calls(self, s: _Session, step: int, injected: bool) -> _Part:
        rng = self.rng
        outage = self.incident("api_outage", s.t, step)
        if outage is not None:
            inc, cfg = outage
            endpoint, status, p_fail = cfg["endpoint"], int(cfg["status_code"]), \
                float(cfg["fail_rate"])
        elif injected and self.take(s, "api_error"):
            inc, endpoint = None, _API_ENDPOINTS[step]
            status, p_fail = rng.choice((500, 502, 503, 504, 429, 0)), 1.0
        else:
            return False
        s.t += self.ms(rng.uniform(0.5, 2.5))
        if rng.random() >= p_fail:
            return False
        tr = self.truth(s, "api_error", step, inc, endpoint=endpoint, status_code=status,
                        failures=0)
        for attempt in range(rng.randint(1, 3)):
            if attempt:
                s.t += self.ms(rng.uniform(3.0, 10.0))
                if outage is not None and rng.random() >= p_fail:
                    break
            tr.detail["failures"] += 1
            yield (s.t, "API Error", {"endpoint": endpoint, "status_code": status,
                                      "method": "POST"}, tr)
        return self.leaves(s, "api_error")

    def form(self, s: _Session, step: int, injected: bool) -> _Part:
        """Fill and submit the step's form. Returns True if the session left."""
        rng = self.rng
        form = STEP_NAMES[step]
        broken = self.incident("broken_field", s.t, step)
        if broken is not None:
            inc, cfg = broken
            field_name, message = str(cfg["field"]), str(cfg["message"])
            failures = 2
            while failures < 6 and rng.random() < 0.6:  # no workaround found yet; they retry
                failures += 1
            tr = self.truth(s, "form_error_loop", step, inc, form=form, field=field_name,
                            errors=failures, message=message)
        elif injected and self.take(s, "form_error_loop"):
            inc, field_name = None, rng.choice(_FIELDS[step])
            message = _FIELD_MESSAGES[field_name]
            failures = rng.randint(2, 4)
            tr = self.truth(s, "form_error_loop", step, form=form, field=field_name,
                            errors=failures, message=message)
        else:
            tr = None
            failures = 1 if rng.random() < FORM_ERROR_ONCE else 0
            field_name = rng.choice(_FIELDS[step])
            message = _FIELD_MESSAGES[field_name]
        for i in range(failures):
            s.t += self.ms(rng.uniform(6.0, 25.0) if i else rng.uniform(2.0, 10.0))
            yield (s.t, "Form Field Error", {"form": form, "field": field_name,
                                             "message": message}, tr)
            if s.fmt == "segment":  # GA4's form_submit has no success flag
                s.t += self.ms(rng.uniform(0.01, 0.05))
                yield (s.t, "Form Submitted", {"form": form, "success": False}, tr)
        if tr is not None:
            if broken is not None:
                if rng.random() < 0.7:  # most give up on a form that rejects what is right
                    return True
                s.patience *= PATIENCE_AFTER
            elif self.leaves(s, "form_error_loop"):
                return True
        s.t += self.ms(rng.uniform(3.0, 15.0))
        yield (s.t, "Form Submitted", {"form": form, "success": True}, None)
        return False

    def coupon(self, s: _Session, step: int) -> _Part:
        rng = self.rng
        promo = self.incident("promo_broken", s.t)
        cart_id = "cart_" + s.sid[5:]
        if promo is not None and rng.random() < float(promo[1]["uptake"]):
            inc, cfg = promo
            tries = rng.randint(2, 4)
            codes = [str(cfg["code"])] * tries
            reasons = [str(cfg["reason"])] * tries
        elif self.take(s, "coupon_failure"):
            inc, tries = None, rng.randint(2, 4)
            codes = [rng.choice(("WELCOME10", "FREESHIP", "SAVE15", "VIP25")) for _ in
                     range(tries)]
            reasons = [rng.choice(_COUPON_REASONS) for _ in range(tries)]
        else:
            if rng.random() < COUPON_TRY:
                s.t += self.ms(rng.uniform(3.0, 12.0))
                ok = rng.random() < COUPON_OK
                props = {"cart_id": cart_id, "coupon_id": "WELCOME10"}
                if ok:
                    yield (s.t, "Coupon Applied", props, None)
                else:
                    yield (s.t, "Coupon Denied", {**props, "reason": "expired"}, None)
            return False
        tr = self.truth(s, "coupon_failure", step, inc, codes=codes, reasons=reasons,
                        failures=tries)
        for i, (code, reason) in enumerate(zip(codes, reasons, strict=True)):
            s.t += self.ms(rng.uniform(4.0, 15.0))
            x, y = self.xy(s, 0.8, 0.6)
            yield (s.t, "Element Clicked", {"x": x, "y": y, "target": "button.apply-coupon"},
                   tr if i else None)
            s.t += self.ms(rng.uniform(0.3, 0.9))
            yield (s.t, "Coupon Denied", {"cart_id": cart_id, "coupon_id": code,
                                          "reason": reason}, tr)
        return self.leaves(s, "coupon_failure")

    def pay(self, s: _Session) -> _Part:
        """Place the order: payment attempts until success or the shopper gives up.

        A decline is friction when injected (2-3 in a row) or caused by an outage; a natural
        decline (``DECLINE_ONCE``) happens at most once and is noise."""
        rng = self.rng
        u = rng.random()
        method, provider = "card", "stripe"
        acc = 0.0
        for m, prov, share in PAYMENT_METHODS:
            acc += share
            if u < acc:
                method, provider = m, prov
                break
        forced = rng.randint(2, 3) if self.take(s, "payment_declined") else 0
        tr: FrictionTruth | None = None
        declines = 0
        amount = round(s.cart_value, 2)
        for attempt in range(5):
            s.t += self.ms(rng.uniform(15.0, 60.0) if attempt else rng.uniform(1.0, 4.0))
            x, y = self.xy(s, 0.5, 0.9)
            yield (s.t, "Element Clicked", {"x": x, "y": y, "target": "button#place-order"},
                   tr)  # within a run of declines: part of it
            s.t += self.ms(rng.uniform(0.8, 3.0))
            outage = self.incident("payment_outage", s.t)
            if outage is not None and outage[1]["provider"] != provider:
                outage = None
            reason = None
            noise = False
            if outage is not None and rng.random() < float(outage[1]["decline_rate"]):
                reason = str(outage[1]["reason"])
            elif outage is None and declines < forced:
                reason = rng.choice(_DECLINE_REASONS)
            elif declines == 0 and rng.random() < DECLINE_ONCE:
                reason, noise = rng.choice(_DECLINE_REASONS), True
            else:
                outage = None  # not declined
            props: dict[str, Any] = {"payment_method": method, "provider": provider,
                                     "amount": amount, "currency": self.config.currency}
            if reason is None:
                if s.pay_style:
                    yield (s.t, "Payment Attempted", {**props, "success": True}, None)
                else:
                    yield (s.t, "Payment Succeeded", props, None)
                s.t += self.ms(rng.uniform(0.3, 1.2))
                yield self.step_done(s, 4)
                yield from self.order(s)
                return False
            declines += 1
            act_tr = None
            if not noise:
                if tr is None:
                    tr = self.truth(s, "payment_declined", 4,
                                    outage[0] if outage is not None else None,
                                    declines=0, reasons=[], provider=provider, method=method)
                tr.detail["declines"] += 1
                tr.detail["reasons"].append(reason)
                act_tr = tr
            if s.pay_style:
                yield (s.t, "Payment Attempted", {**props, "success": False,
                                                  "decline_reason": reason}, act_tr)
            else:
                yield (s.t, "Payment Declined", {**props, "reason": reason}, act_tr)
            if noise:
                if rng.random() >= 0.8:  # most try again, and then it works
                    return True
                continue
            if declines < forced and outage is None:
                continue  # one more try before doubting the card
            if (declines >= 2 or outage is not None) and self.leaves(s, "payment_declined"):
                return True
            if rng.random() >= (0.85, 0.6, 0.4, 0.25, 0.0)[declines - 1] * s.patience:
                return True
            if rng.random() < 0.3:  # another way to pay
                method, provider = ("paypal", "paypal") if provider != "paypal" else \
                    ("card", "stripe")
        return True

    def order(self, s: _Session) -> Iterator[_Act]:
        rng = self.rng
        revenue = round(s.cart_value, 2)
        shipping = 0.0 if revenue >= 75 else 5.99
        tax = round(revenue * 0.08, 2)
        s.t += self.ms(rng.uniform(0.2, 1.0))
        yield (s.t, "Order Completed", {
            "order_id": "ord_" + s.sid[5:], "checkout_id": "chk_" + s.sid[5:],
            "total": round(revenue + shipping + tax, 2), "revenue": revenue,
            "shipping": shipping, "tax": tax, "currency": self.config.currency,
            "products": s.cart}, None)

    def confirmation(self, s: _Session) -> Iterator[_Act]:
        s.t += self.ms(self.rng.uniform(0.5, 2.0))
        yield from self.page(s, "/checkout/confirmation", "Thank you")
        s.t += self.ms(self.lognormal(20.0, 0.5, 5.0, 90.0))

    # -- support ------------------------------------------------------------------------------

    def support(self, s: _Session) -> Iterator[_Act]:
        if s.customer_id is None:
            return
        rng = self.rng
        o = s.outcome
        converted = o is not None and o.converted
        share = self.config.support_share
        p = share / 10 if converted else share if s.frictions else share / 25
        if rng.random() >= p:
            return
        self.tickets += 1
        tid = self.ticket_base + self.tickets
        about = s.frictions[0] if s.frictions else ("order" if converted else "product")
        subject, text, priority = _ticket_text(about, s, rng)
        channel = rng.choices(("email", "chat", "web", "voice"), (45, 30, 20, 5))[0]
        created = (s.t // 1000 + int(rng.uniform(120, 1800))) * 1000
        ticket: dict[str, Any] = {
            "id": tid,
            "url": f"https://shop.zendesk.com/api/v2/tickets/{tid}.json",
            "via": {"channel": channel},
            "subject": subject,
            "description": text,
            "priority": priority,
            "requester": {"id": 900_000_000 + int(s.customer_id[5:]),
                          "external_id": s.customer_id},
            "requester_id": 900_000_000 + int(s.customer_id[5:]),
            "tags": ["simulated", about],
            "custom_fields": [{"name": "session_id", "value": s.sid}],
            "created_at": _iso_seconds(created),
        }
        yield (created, _TICKET, {"ticket": {**ticket, "status": "new",
                                             "updated_at": ticket["created_at"]}}, None)
        # An agent answers within the hour and solves it within a few (Zendesk's benchmark
        # first reply time is a few hours; shortened so runs of an hour show every action).
        updated = created + int(rng.uniform(300, 2700)) * 1000
        yield (updated, _TICKET, {"ticket": {
            **ticket, "status": "pending", "updated_at": _iso_seconds(updated),
            "latest_comment": {"body": "Thanks for reaching out, we are looking into it."}}},
            None)
        solved = updated + int(rng.uniform(900, 7200)) * 1000
        good = rng.random() < (0.8 if converted else 0.55)
        yield (solved, _TICKET, {"ticket": {
            **ticket, "status": "solved", "updated_at": _iso_seconds(solved),
            "satisfaction_rating": {"score": "good" if good else "bad"}}}, None)


def _ticket_text(about: str, s: _Session, rng: random.Random) -> tuple[str, str, str]:
    value = f"${s.cart_value:.2f}"
    texts = {
        "payment_declined": ("Card declined at checkout",
                             f"My card was declined several times when paying {value}, but my "
                             "bank says nothing is wrong. Please help.", "high"),
        "form_error_loop": ("Can't get past the checkout form",
                            "The checkout keeps saying my address/postal code is invalid. It "
                            "is correct!", "high"),
        "coupon_failure": ("Promo code not working",
                           "Your discount code is rejected every time I try it.", "normal"),
        "api_error": ("Checkout error", "I get an error loading shipping options at checkout.",
                      "high"),
        "error_page": ("Page not working", "Your site shows an error page when I try to buy.",
                       "normal"),
        "step_stall": ("Question before ordering",
                       "I was in the middle of ordering and wasn't sure about delivery times.",
                       "low"),
        "order": ("Where is my order?", "When will my order arrive? I haven't had an email.",
                  "normal"),
        "product": ("Product question", "Does this come in other sizes?", "low"),
    }
    default = ("Problem with the website",
               f"The website was slow and buttons didn't respond while I shopped ({about}).",
               "normal")
    subject, text, priority = texts.get(about, default)
    if rng.random() < 0.2:
        priority = "urgent" if priority == "high" else priority
    return subject, text, priority


# --- rendering -------------------------------------------------------------------------------


def _items(products: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"item_id": p["product_id"], "item_name": p["name"], "item_category": p["category"],
             "price": p["price"], "quantity": p.get("quantity", 1)} for p in products]


def _ga4_event(kind: str, p: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A Segment-shaped action as a GA4 event name and params."""
    if kind == "page":
        params = {"page_title": p["title"]}
        if "referrer" in p:
            params["page_referrer"] = p["referrer"]
        if "status_code" in p:
            params["status_code"] = p["status_code"]
        return "page_view", params
    if kind == "Product Viewed":
        return "view_item", {"currency": p["currency"], "value": p["price"],
                             "items": _items([p])}
    if kind == "Product List Viewed":
        return "view_item_list", {"item_list_id": p["list_id"], "item_list_name": p["category"]}
    if kind == "Products Searched":
        return "search", {"search_term": p["query"]}
    if kind == "Product Added":
        return "add_to_cart", {"currency": p["currency"],
                               "value": round(p["price"] * p["quantity"], 2),
                               "cart_value": p["cart_value"], "items": _items([p])}
    if kind == "Cart Viewed":
        return "view_cart", {"currency": p["currency"], "value": p["cart_value"],
                             "items": _items(p["products"])}
    if kind == "Checkout Started":
        return "begin_checkout", {"currency": p["currency"], "value": p["value"],
                                  "items": _items(p["products"])}
    if kind == "Checkout Step Viewed":
        return "checkout_step_viewed", {"step": p["step"], "step_name": p["step_name"]}
    if kind == "Checkout Step Completed":
        if p["step"] == 2:
            return "add_shipping_info", {"shipping_tier": p["shipping_method"]}
        return "checkout_step_completed", {"step": p["step"], "step_name": p["step_name"]}
    if kind == "Payment Info Entered":
        return "add_payment_info", {"payment_type": p["payment_method"]}
    if kind in ("Payment Attempted", "Payment Succeeded", "Payment Declined"):
        return "payment_attempted", {
            "success": p.get("success", kind == "Payment Succeeded"),
            "decline_reason": p.get("decline_reason") or p.get("reason"),
            "payment_type": p["payment_method"], "provider": p["provider"],
            "value": p["amount"], "currency": p["currency"]}
    if kind == "Order Completed":
        return "purchase", {"transaction_id": p["order_id"], "value": p["revenue"],
                            "tax": p["tax"], "shipping": p["shipping"],
                            "currency": p["currency"], "items": _items(p["products"])}
    if kind == "Coupon Applied":
        return "coupon_applied", {"coupon": p["coupon_id"]}
    if kind == "Coupon Denied":
        return "coupon_denied", {"coupon": p["coupon_id"], "reason": p["reason"]}
    if kind == "Element Clicked":
        return "click", p
    if kind == "Dead Click":
        return "dead_click", p
    if kind == "JS Error":
        return "exception", {"description": p["message"], "source": p["source"],
                             "fatal": False}
    if kind == "API Error":
        return "api_error", {"endpoint": p["endpoint"], "status_code": p["status_code"]}
    if kind == "Web Vitals":
        return "web_vitals", p
    if kind == "Form Field Error":
        return "form_field_error", p
    if kind == "Form Submitted":
        return "form_submit", {"form_id": p["form"]}
    raise AssertionError(f"no GA4 rendering for {kind!r}")  # pragma: no cover


# --- the simulator ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=32)
def _calibrate(friction: tuple[tuple[str, float], ...], ga4_share: float, support_share: float,
               sessions: int) -> float:
    """Mean messages per session for these settings, without incidents. The sample's seed is
    fixed, so the session rate does not depend on the run's seed."""
    cfg = SimConfig(friction=dict(friction), ga4_share=ga4_share, support_share=support_share)
    world = _Behaviour(cfg, random.Random("calibrate"), ())
    total = 0
    for _ in range(sessions):
        s = world.new_session(0)
        total += sum(1 for act in world.session(s) if act[1] is not _END)
    return max(1.0, total / sessions)


class Simulator:
    """Generate messages for ``config``; collect the truth as they come out.

    ``messages()`` can be iterated once. ``truth`` and ``outcomes`` grow as messages are taken
    and are complete for what was taken when iteration stops (at the end, or early).
    """

    #: Sessions in the calibration sample that measures messages per session (about 2%
    #: standard error; 0.3 s, once per process and friction/share settings).
    CALIBRATION_SESSIONS = 5000

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.truth: list[FrictionTruth] = []
        self._outcomes: list[SessionOutcome] = []
        #: Messages emitted, by source.
        self.counts: dict[str, int] = {"segment": 0, "ga4": 0, "support": 0}
        self.sessions = 0
        self.orders = 0
        self.revenue = 0.0
        #: Last emitted event time (Unix seconds).
        self.clock = config.start
        self.messages_per_session = _calibrate(
            tuple(sorted(config.friction_rates.items())), config.ga4_share,
            config.support_share, self.CALIBRATION_SESSIONS)
        #: Session arrivals per second of event time.
        self.session_rate = config.events_per_second / self.messages_per_session
        self._started = False
        self._gen: Generator[SimMessage, None, None] | None = None
        #: Pending actions: (time ms, sequence, session or None for an arrival, action).
        self._heap: list[tuple[int, int, _Session | None, Any]] = []

    @property
    def outcomes(self) -> list[SessionOutcome]:
        """One per session that emitted a web event, in order of first emitted event."""
        return self._outcomes

    def active_incidents(self, at: float | None = None) -> list[Incident]:
        """Incidents whose window contains ``at`` (default: the last emitted event time)."""
        t = (self.clock if at is None else at) - self.config.start
        return [i for i in self.config.incidents if i.start <= t < i.start + i.duration]

    def messages(self) -> Iterator[SimMessage]:
        """All messages in event-time order (ties: in the order they were generated)."""
        if self._started:
            raise RuntimeError("Simulator.messages() can be iterated only once")
        self._started = True
        self._gen = self._run()
        return self._gen

    def _run(self) -> Generator[SimMessage, None, None]:
        cfg = self.config
        rng = random.Random(cfg.seed)
        world = _Behaviour(cfg, rng, cfg.incidents)
        start_ms = int(round(cfg.start * 1000))
        end_ms = start_ms + int(round(cfg.duration * 1000)) if cfg.duration is not None else None
        max_sessions = cfg.max_sessions
        mean_gap_ms = 1000.0 / self.session_rate
        iso = _Iso()
        heap = self._heap
        push, pop = heapq.heappush, heapq.heappop
        seq = 0
        arrival = float(start_ms - int(cfg.warmup_seconds * 1000))
        if max_sessions != 0:
            push(heap, (int(arrival), 0, None, None))
        started = 0
        truth, counts, outcomes = self.truth, self.counts, self._outcomes
        registered: set[int] = set()
        defining: dict[int, tuple[FrictionTruth, int]] = {}  # see _defines
        expo = rng.expovariate
        segment_render = self._segment
        ga4_render = self._ga4
        try:
            while heap:
                t, _, s, act = pop(heap)
                if end_ms is not None and t >= end_ms:
                    push(heap, (t, seq + 1, s, act))  # still pending: for _truncate
                    break
                if s is None:  # a session arrives
                    s = world.new_session(t)
                    s.gen = world.session(s)
                    started += 1
                    first = next(s.gen)
                    seq += 1
                    push(heap, (first[0], seq, s, first))
                    if max_sessions is None or started < max_sessions:
                        arrival += expo(1.0) * mean_gap_ms
                        seq += 1
                        push(heap, (max(t, int(arrival)), seq, None, None))
                    continue
                kind = act[1]
                visible = t >= start_ms
                if kind is _END:
                    o = s.outcome
                    if o is not None:
                        o.finished = True
                        o.end = s.last_t / 1000
                        o.customer_id = s.customer_id
                        if not o.converted:
                            o.abandoned_step = s.last_step if o.checkout else 0 if o.cart else None
                        if o.checkout:
                            o.intent = round(1.0 - s.hesitancy / 2.5, 4)
                elif kind is _TICKET:
                    if visible:
                        counts["support"] += 1
                        self.clock = t / 1000
                        if s.outcome is not None and act[2]["ticket"]["status"] == "new":
                            s.outcome.ticket = True
                        yield SimMessage(t / 1000, "support", None, act[2])
                else:
                    s.last_t = t
                    o = s.outcome
                    if o is None:
                        o = s.outcome = SessionOutcome(
                            s.sid, s.customer_id, s.fmt, s.device, t / 1000, t / 1000,
                            partial=not visible)
                    if kind == "Order Completed":
                        o.converted = True
                        o.revenue = act[2]["revenue"]
                        if visible:
                            self.orders += 1
                            self.revenue += o.revenue
                    elif kind == "Checkout Started":
                        o.checkout = True
                    elif kind == "Product Added":
                        o.cart = True
                    tr = act[3]
                    if tr is not None:
                        if tr.start == 0.0:
                            tr.start = t / 1000
                            tr.partial = not visible
                        tr.end = max(tr.end, t / 1000)
                        if tr.onset == 0.0 and _defines(tr, kind, act[2], defining):
                            tr.onset = t / 1000
                    if visible:
                        if not s.registered:
                            s.registered = True
                            outcomes.append(o)
                            self.sessions += 1
                        if tr is not None and id(tr) not in registered:
                            registered.add(id(tr))  # registered records stay alive: ids unique
                            truth.append(tr)
                            o.frictions += 1
                        if kind == "identify":
                            o.customer_id = s.customer_id
                        self.clock = t / 1000
                        counts[s.fmt] += 1
                        s.n += 1
                        if s.fmt == "segment":
                            yield SimMessage(t / 1000, "segment", s.key,
                                             segment_render(s, t, kind, act[2], iso))
                        else:
                            yield SimMessage(t / 1000, "ga4", s.key, ga4_render(s, t, kind, act[2]))
                try:
                    nxt = next(s.gen)
                except StopIteration:
                    continue
                seq += 1
                push(heap, (nxt[0], seq, s, nxt))
        finally:
            self.mark_truncated()

    def mark_truncated(self) -> None:
        """Set each friction record's ``truncated``: are some of its events still to come?

        Done when a run ends; ``write_truth`` calls it too, for a run stopped part-way."""
        pending = {id(act[3]) for _, _, _, act in self._heap
                   if act is not None and act[3] is not None}
        for tr in self.truth:
            # A stall's end is known only once the shopper's silence is over; one that would
            # outlast the run was cut short even if no act of it is pending.
            planned = tr.start + tr.detail["seconds"] if tr.friction == "step_stall" else 0.0
            tr.truncated = max(tr.end, planned) > self.clock or id(tr) in pending

    def finish(self) -> None:
        """Stop a run taken part-way (e.g. on Ctrl-C), so the truth says what was cut short.
        A run iterated to its end needs no call."""
        if self._gen is not None:
            self._gen.close()


    # -- rendering ----------------------------------------------------------------------------

    @staticmethod
    def _segment(s: _Session, t: int, kind: str, props: dict[str, Any], iso: _Iso
                 ) -> dict[str, Any]:
        ctx = s.ctx
        if ctx is None:
            ctx = s.ctx = {"sessionId": s.sid, "device": {"type": s.device},
                           "page": {"path": s.path, "url": s.url}}
        if kind == "page":
            msg: dict[str, Any] = {"type": "page", "name": props["title"]}
        elif kind == "identify":
            msg = {"type": "identify"}
        else:
            msg = {"type": "track", "event": kind}
        msg["messageId"] = f"{s.sid}.{s.n}"
        msg["anonymousId"] = s.anon
        if s.customer_id:
            msg["userId"] = s.customer_id
        msg["timestamp"] = iso(t)
        msg["context"] = ctx
        msg["traits" if kind == "identify" else "properties"] = props
        return msg

    @staticmethod
    def _ga4(s: _Session, t: int, kind: str, props: dict[str, Any]) -> dict[str, Any]:
        name, params = _ga4_event(kind, props)
        params = {**params, "session_id": s.sid, "page_location": s.url}
        msg: dict[str, Any] = {"client_id": s.client_id, "timestamp_micros": t * 1000,
                               "device": s.ga4_device, "events": [{"name": name,
                                                                   "params": params}]}
        if s.customer_id:
            msg["user_id"] = s.customer_id
        return msg
