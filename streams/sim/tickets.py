"""Support tickets on their own, and injected topic bursts.

``TicketBurst`` schedules a burst of tickets about a new topic (a promo code that stopped
working, a broken tracking link): from ``start``, extra tickets at ``per_hour`` (a Poisson
process) for ``duration``. ``SimConfig.ticket_burst`` adds it to a full simulator run as
help-desk webhooks; its draws come from a random stream of its own (``seed:burst``), so a run
without it is the run it always was.

``ticket_stream`` is the ticket-only generator, for judging support trends over days in
seconds: steady tickets at ``per_hour`` with the simulator's wording (``formats.ticket_text``)
and its mix of reasons, and the burst's tickets, as canonical events: tickets in time order,
each after a session summary (dated a minute before it) carrying the friction it is about.

>>> burst = TicketBurst.parse("promo_winter25@6h+2h:per_hour=12")
>>> evs = list(ticket_stream(seed=1, hours=8, per_hour=30, burst=burst))
>>> tickets = [e for e in evs if isinstance(e, Ticket)]
>>> len(tickets), sum(t.ticket_id.startswith("burst-") for t in tickets)
(248, 18)
>>> next(t for t in tickets if t.ticket_id.startswith("burst-")).subject
"WINTER25 discount doesn't work"
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from detectors.events import SessionSummary, Ticket
from streams.sim.formats import iso_seconds, ticket_text
from streams.sim.session import Session

__all__ = ["BURST_TOPICS", "STEADY_MIX", "TicketBurst", "burst_webhook", "ticket_stream"]

#: Topics a burst can be about: the friction its customers met, and wordings (subject, text).
BURST_TOPICS: dict[str, dict[str, Any]] = {
    "promo_winter25": {"friction": "coupon_failure", "texts": (
        ("Promo code WINTER25 not accepted",
         "I tried the WINTER25 code from your email and it says the code is not valid."),
        ("WINTER25 discount doesn't work",
         "The promo code WINTER25 is rejected at checkout, is the offer over already?"),
        ("Winter sale code not accepted",
         "Your winter sale promo code WINTER25 is not accepted for my basket."),
    )},
    "tracking_404": {"friction": "error_page", "texts": (
        ("Tracking link 404",
         "The tracking link in my shipping confirmation goes to a 404 page."),
        ("Can't track my parcel",
         "When I click track my parcel I get a page not found (404) error."),
        ("Tracking page not found",
         "The tracking link from the dispatch email says 404 not found."),
    )},
}

#: Reasons steady tickets are about, with weights: the simulator's friction rates (a ticket is
#: about the first friction a customer met, ``behaviour.support``) beside orders and product
#: questions from sessions without friction, which are most tickets there.
STEADY_MIX: dict[str, float] = {
    "product": 0.30, "order": 0.15, "form_error_loop": 0.09, "payment_declined": 0.07,
    "backtrack": 0.05, "step_stall": 0.05, "api_error": 0.05, "coupon_failure": 0.05,
    "slow_page": 0.06, "dead_click": 0.04, "rage_click": 0.03, "error_click": 0.02,
    "error_page": 0.02,
}


def _seconds(text: str) -> float:
    text = text.strip().lower()
    scale = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}.get(text[-1:])
    return float(text[:-1]) * scale if scale else float(text)


@dataclass(frozen=True)
class TicketBurst:
    """Extra tickets about ``topic`` (one of ``BURST_TOPICS``) from ``start`` seconds after
    the run's start, ``per_hour`` on average, for ``duration`` seconds (None: to the end).

    >>> b = TicketBurst.parse("tracking_404@2h+90m:per_hour=20")
    >>> b.topic, b.start, b.duration, b.per_hour, b.label
    ('tracking_404', 7200.0, 5400.0, 20.0, 'tracking_404@7200')
    """

    topic: str = "promo_winter25"
    start: float = 0.0
    duration: float | None = None
    per_hour: float = 12.0
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.topic not in BURST_TOPICS:
            raise ValueError(f"unknown burst topic {self.topic!r}; one of {list(BURST_TOPICS)}")
        if self.start < 0 or (self.duration is not None and self.duration <= 0):
            raise ValueError("burst start must be >= 0 and duration > 0")
        if not (self.per_hour > 0 and math.isfinite(self.per_hour)):
            raise ValueError("per_hour must be a positive number")

    @property
    def label(self) -> str:
        return f"{self.topic}@{self.start:g}"

    @classmethod
    def parse(cls, spec: str) -> TicketBurst:
        """``topic@start[+duration][:per_hour=N]``; times take s, m, h or d."""
        head, _, rest = spec.partition(":")
        topic, at, window = head.partition("@")
        if not at:
            raise ValueError(f"burst {spec!r}: expected topic@start[+duration][:per_hour=N]")
        start, plus, duration = window.partition("+")
        per_hour = 12.0
        for item in filter(None, rest.split(",")):
            key, eq, value = item.partition("=")
            if key.strip() != "per_hour" or not eq:
                raise ValueError(f"burst {spec!r}: {item!r} is not per_hour=N")
            per_hour = float(value)
        try:
            return cls(topic.strip(), _seconds(start),
                       _seconds(duration) if plus else None, per_hour)
        except ValueError as exc:
            raise ValueError(f"burst {spec!r}: {exc}") from None

    def truth(self, run_start: float) -> dict[str, Any]:
        """The burst's truth record (times in Unix seconds)."""
        return {"record": "ticket_burst", "name": self.label, "topic": self.topic,
                "start": run_start + self.start,
                "end": None if self.duration is None else run_start + self.start
                + self.duration, "per_hour": self.per_hour,
                "friction": BURST_TOPICS[self.topic]["friction"]}

    def draws(self, seed: int, run_start: float, run_end: float | None
              ) -> Iterator[tuple[float, int, str, str]]:
        """(time, draw number, subject, text) of each burst ticket, in time order, from the
        burst's own random stream; ends at the burst's end or ``run_end`` (None: never)."""
        rng = random.Random(f"{seed}:burst")
        t = run_start + self.start
        end = run_end if self.duration is None else run_start + self.start + self.duration
        if run_end is not None:
            end = min(end, run_end) if end is not None else run_end
        texts = BURST_TOPICS[self.topic]["texts"]
        n = 0
        while True:
            t += rng.expovariate(self.per_hour / 3600.0)
            if end is not None and t >= end:
                return
            n += 1
            subject, text = rng.choice(texts)
            yield round(t, 3), n, subject, text


def burst_webhook(n: int, t: float, customer_id: str, subject: str, text: str
                  ) -> dict[str, Any]:
    """A created burst ticket as a help-desk webhook (as ``behaviour.support`` writes them)."""
    tid = f"burst-{n}"
    created = iso_seconds(int(t * 1000))
    return {"ticket": {
        "id": tid, "via": {"channel": "email"}, "subject": subject, "description": text,
        "priority": "normal", "requester": {"external_id": customer_id},
        "tags": ["simulated", "burst"], "created_at": created, "updated_at": created,
        "status": "new"}}


class _Cart:
    """What ``ticket_text`` reads of a session."""

    def __init__(self, value: float) -> None:
        self.cart_value = value


def ticket_stream(seed: int = 0, hours: float = 24.0, per_hour: float = 30.0,
                  start: float = 1767225600.0, burst: TicketBurst | None = None,
                  customers: int = 20_000) -> Iterator[Ticket | SessionSummary]:
    """Steady tickets (and a burst's) as canonical events; see the module."""
    rng = random.Random(f"{seed}:tickets")
    reasons, weights = list(STEADY_MIX), list(STEADY_MIX.values())
    end = start + hours * 3600.0
    pending = burst.draws(seed, start, end) if burst is not None else iter(())
    brng = random.Random(f"{seed}:burst-customers")
    nxt = next(pending, None)
    t, n = start, 0
    while True:
        t += rng.expovariate(per_hour / 3600.0)
        while nxt is not None and nxt[0] <= min(t, end):
            bt, bn, subject, text = nxt
            customer = f"cust_{brng.randrange(customers):06d}"
            yield SessionSummary(id=f"burst-summary:{bn}", time=bt - 60.0,
                                 session_id=f"burst-s{bn}", customer_id=customer,
                                 friction={BURST_TOPICS[burst.topic]["friction"]: 1}
                                 if burst is not None else {})
            yield Ticket(id=f"burst-{bn}", time=bt, session_id=f"ticket:burst-{bn}",
                         customer_id=customer, action="created", ticket_id=f"burst-{bn}",
                         subject=subject, text=text)
            nxt = next(pending, None)
        if t >= end:
            return
        n += 1
        about = rng.choices(reasons, weights)[0]
        u = rng.random()
        customer = f"cust_{int(customers * u * u):06d}"
        cart = _Cart(round(rng.uniform(15, 250), 2))
        subject, text, priority = ticket_text(about, cast(Session, cart), rng)
        if about not in ("product", "order"):
            yield SessionSummary(id=f"summary:{n}", time=t - 60.0, session_id=f"s{n}",
                                 customer_id=customer, friction={about: 1})
        yield Ticket(id=f"t{n}", time=t, session_id=f"ticket:{n}", customer_id=customer,
                     action="created", ticket_id=str(n), subject=subject, text=text,
                     priority=priority, tags=("simulated", about))

