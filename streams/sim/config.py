"""What a simulator run depends on: the friction and incident vocabularies, ``Incident`` (a
scheduled window in which something breaks) and ``SimConfig`` (seed, rate, duration, shares,
friction rates, incidents, the chat experiment)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from detectors.holdout import Experiment

if TYPE_CHECKING:  # tickets imports formats, which imports (via truth) this module
    from streams.sim.tickets import TicketBurst

__all__ = [
    "DEFAULT_FRICTION",
    "DEFAULT_START",
    "FRICTION_TYPES",
    "BREAKABLE_BUTTONS",
    "INCIDENT_KINDS",
    "NO_FRICTION",
    "PAGE_FRICTION",
    "STEP_NAMES",
    "WARMUP_MESSAGES",
    "WARMUP_SECONDS",
    "Incident",
    "SimConfig",
    "step_number",
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
    # A button stops working (a release broke its handler): every click on it is dead, and
    # shoppers try it two or three times before giving up. One of ``BREAKABLE_BUTTONS``.
    "broken_button": {"target": "button#place-order"},
}
#: Buttons a ``broken_button`` incident can break: the checkout's own.
BREAKABLE_BUTTONS = ("button#place-order", "button#continue")

# --- incidents and the run -------------------------------------------------------------------


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
        if step is not None and step_number(step) is None:
            raise ValueError(f"{self.kind}: unknown step {step!r}; one of {STEP_NAMES}")
        target = self.settings.get("target")
        if self.kind == "broken_button" and target not in BREAKABLE_BUTTONS:
            raise ValueError(f"{self.kind}: unknown target {target!r}; one of "
                             f"{list(BREAKABLE_BUTTONS)}")

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


def step_number(step: Any) -> int | None:
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
    #: Shares of sessions sent as Snowplow enriched events (JSON form) and as PostHog events;
    #: with ``ga4_share`` at most 1 in all. The format is picked from the draw that picks GA4,
    #: so a run with these at 0 is the run it always was, and the same seed gives the same
    #: sessions whichever format they go out in.
    snowplow_share: float = 0.0
    posthog_share: float = 0.0
    #: Share of Segment sessions whose tracking plan sends a "Page Left" beacon as each page
    #: goes away (GA4's gtag always sends ``user_engagement``); such sessions' sources "send
    #: presence signals". Beacons still get lost (``BEACON_LOST``).
    segment_beacons: float = 0.5
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
    #: Extra support tickets about a new topic from a given time (``streams.sim.tickets``);
    #: drawn from a random stream of their own, so None leaves the run unchanged.
    ticket_burst: TicketBurst | None = None
    #: Follow-ups of abandoned carts and checkouts (``detectors.followup``), the ground truth:
    #: a reachable shopper (a customer id) who left a cart or a checkout comes back after the
    #: follow-up's time and orders that cart with chance ``followup_base`` on their own (both
    #: arms), plus ``followup_effect`` because of the follow-up (only in the treatment arm of
    #: ``followup_experiment``, the worker's hash). Both 0: nobody comes back, and no draw is
    #: made (the ``followup`` stream is apart), so seeded output is what it always was.
    followup_base: float = 0.0
    followup_effect: float = 0.0
    #: When the worker sends the follow-up, in seconds after the session's last event: its
    #: ``max(followup_delay, session_gap)``. Returns come within the hour after it.
    followup_delay: float = 3600.0
    followup_experiment: Experiment = field(
        default_factory=lambda: Experiment("followup", "followup"))

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
                        "snowplow_share": self.snowplow_share,
                        "posthog_share": self.posthog_share,
                        "segment_beacons": self.segment_beacons,
                        "support_share": self.support_share,
                        "chat_effect": self.chat_effect,
                        "followup_base": self.followup_base,
                        "followup_effect": self.followup_effect,
                        "followup_base + followup_effect":
                            self.followup_base + self.followup_effect}.items():
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], not {p}")
        if self.ga4_share + self.snowplow_share + self.posthog_share > 1.0 + 1e-9:
            raise ValueError("ga4_share, snowplow_share and posthog_share add up to more than 1")
        if self.customers < 1:
            raise ValueError("customers must be >= 1")
        if self.followup_delay < 0:
            raise ValueError("followup_delay must be >= 0")
        object.__setattr__(self, "incidents", tuple(self.incidents))

    @property
    def warmup_seconds(self) -> float:
        if self.warmup is not None:
            return self.warmup
        return min(WARMUP_SECONDS, WARMUP_MESSAGES / self.events_per_second)

    @property
    def friction_rates(self) -> dict[str, float]:
        return {**DEFAULT_FRICTION, **self.friction}
