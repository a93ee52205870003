"""Simulated subscription customers over months, whose churn depends on web friction and
support history: the stream the churn model (``models.churn``) is measured on.

The web simulator (``streams.sim``) plays minutes of sessions event by event; churn
plays out over months, so this one works a day at a time and emits, per customer, the
canonical support-side events the worker's customer agent sees: ``Identify`` (plan, seats,
company), ``Subscription`` (started, renewed every 30 days, cancelled), ``Ticket`` (created,
solved, sometimes reopened or escalated, with satisfaction and wording), and a
``SessionSummary`` per web session (what the session agent sends when a known customer's
session ends).

What drives churn, and what a model can see of it:

- each customer has a hidden *dissatisfaction* that rises with friction in their sessions,
  abandoned checkouts, tickets, bad ratings, reopens, escalations and angry tickets, and
  decays with a 60-day half-life; the daily chance of deciding to leave is logistic in it,
  lower for long-tenured and enterprise customers, plus a hidden per-customer loyalty term
  no feature shows;
- a customer who has decided visits less, sometimes asks support how to cancel, and cancels
  at the first renewal (every 30 days) at least ``NOTICE_DAYS`` away;
- hidden too: how prone each customer is to friction (device, region) and to complain, so
  a perfect score is impossible.

>>> events = list(simulate_customers(LifecycleConfig(customers=20, days=60, seed=3)))
>>> sorted({e.__struct_config__.tag for e in events})
['identify', 'session_summary', 'subscription', 'ticket']
>>> all(a.time <= b.time for a, b in zip(events, events[1:]))
True
"""

from __future__ import annotations

import functools
import heapq
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from detectors import events as ev

__all__ = ["LifecycleConfig", "simulate_customers"]

DAY = 86400.0
#: 2026-01-01T00:00:00Z: the simulated months start here.
EPOCH = 1_767_225_600.0

#: plan -> (share of customers, monthly revenue).
PLANS = {"basic": (0.6, 29.0), "pro": (0.3, 99.0), "enterprise": (0.1, 499.0)}

#: How much each kind of experience adds to a customer's dissatisfaction.
WEIGHTS = {"friction": 0.22, "abandoned": 0.35, "ticket": 0.25, "high": 0.25, "bad": 0.7,
           "reopened": 0.5, "escalated": 0.5, "negative": 0.4}
#: Dissatisfaction halves in this many days without new trouble.
HALF_LIFE_DAYS = 60.0
#: Daily log-odds of deciding to leave with no dissatisfaction, and what a unit of it adds.
BASE_LOGIT = -7.5
UNHAPPY_LOGIT = 2.0
#: Days of notice: a customer who decides to leave cancels at the first renewal at least this
#: far away (until then they are still a customer, visiting less).
NOTICE_DAYS = 14
#: How fast visits fall as dissatisfaction grows, and what is left of them once a customer
#: has decided to leave (they cancel at the end of the billing period).
DISENGAGE = 0.3
LEAVING_VISITS = 0.3
#: Share of customers who, having decided to leave, ask support how to cancel.
CANCEL_QUESTION = 0.2

_NEGATIVE = ("This is unacceptable, I am fed up", "Third time this week, ridiculous",
             "Terrible experience, thinking of cancelling", "Still not fixed, very frustrating")
_NEUTRAL = ("Question about my invoice", "How do I add a teammate?",
            "Checkout did not work on my phone", "Payment failed, can you help?")


@dataclass(frozen=True)
class LifecycleConfig:
    """What to simulate: ``customers`` subscribers at the start, new ones joining at about the
    rate others leave, for ``days`` days, deterministic for a ``seed``."""

    customers: int = 2000
    days: int = 365
    seed: int = 1
    #: New subscribers per day as a share of the starting base.
    signup_rate: float = 0.0015

    def __post_init__(self) -> None:
        if self.customers < 1 or self.days < 1:
            raise ValueError("customers and days must be >= 1")


class _Customer:
    __slots__ = ("cid", "plan", "mrr", "since", "friction_rate", "visits", "irritable",
                 "loyalty", "unhappy", "leaving", "leaves_on", "n")

    def __init__(self, cid: str, rng: random.Random, since: float) -> None:
        self.cid = cid
        r, acc = rng.random(), 0.0
        for plan, (share, mrr) in PLANS.items():  # noqa: B007 - the loop picks the plan
            acc += share
            if r <= acc:
                break
        self.plan, self.mrr, self.since = plan, mrr, since
        self.friction_rate = rng.lognormvariate(math.log(0.25), 0.9)  # signals per session
        self.visits = rng.lognormvariate(math.log(3.0), 0.6) / 7  # sessions per day
        self.irritable = rng.random()
        self.loyalty = rng.gauss(0.0, 0.5)
        self.leaves_on = -1
        self.unhappy = 0.0
        self.leaving = False
        self.n = 0

    def eid(self, kind: str) -> str:
        self.n += 1
        return f"{self.cid}:{kind}:{self.n}"


def _poisson(rng: random.Random, lam: float) -> int:
    # Knuth's method: the rates here are small.
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def simulate_customers(config: LifecycleConfig) -> Iterator[Any]:
    """The customers' canonical events, in time order."""
    rng = random.Random(config.seed)
    heap: list[tuple[float, int, Any]] = []
    seq = 0

    def emit(event: Any) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(heap, (event.time, seq, event))

    customers: list[_Customer] = []

    def join(day: float, tenure_days: float) -> None:
        c = _Customer(f"cust_{len(customers):06d}", rng, EPOCH + (day - tenure_days) * DAY)
        customers.append(c)
        traits: dict[str, Any] = {"plan": c.plan}
        if c.plan == "enterprise":
            traits |= {"company": f"Company {c.cid[5:]}", "seats": rng.randrange(10, 200)}
        emit(ev.Subscription(id=c.eid("sub"), time=c.since, session_id=c.cid,
                             customer_id=c.cid, action="started", plan=c.plan, mrr=c.mrr))
        emit(ev.Identify(id=c.eid("identify"), time=EPOCH + day * DAY, session_id=c.cid,
                         customer_id=c.cid, traits=traits))

    for _ in range(config.customers):
        join(0.0, rng.uniform(0, 720))
    active = list(customers)
    decay = 0.5 ** (1 / HALF_LIFE_DAYS)
    for day in range(config.days):
        for _ in range(_poisson(rng, config.signup_rate * config.customers)):
            join(day + rng.random(), 0.0)
            active.append(customers[-1])
        staying = []
        for c in active:
            c.unhappy *= decay
            t0 = EPOCH + day * DAY
            renewal_day = int((t0 - c.since) / DAY) % 30 == 29
            if c.leaving and day >= c.leaves_on:
                # Subscriptions end with the billing period: the cancellation lands before it.
                emit(ev.Subscription(id=c.eid("sub"), time=t0 + rng.uniform(0, DAY - 1),
                                     session_id=c.cid, customer_id=c.cid, action="cancelled"))
                continue
            visits = c.visits * math.exp(-DISENGAGE * c.unhappy)
            if c.leaving:
                visits *= LEAVING_VISITS  # decided: they mostly stop coming
            for _ in range(_poisson(rng, visits)):
                _session(c, rng, t0 + rng.uniform(0, DAY), emit)
            if rng.random() < 0.004:  # a question unrelated to friction
                _ticket(c, rng, t0 + rng.uniform(0, DAY), emit, friction=0)
            tenure_months = (t0 - c.since) / (30 * DAY)
            logit = (BASE_LOGIT + UNHAPPY_LOGIT * c.unhappy
                     - 0.3 * math.log1p(max(tenure_months, 0.0))
                     - 0.5 * (c.plan == "enterprise") + c.loyalty)
            if not c.leaving and rng.random() < 1 / (1 + math.exp(-logit)):
                # Notice: the subscription ends at the first renewal at least NOTICE_DAYS away.
                c.leaving = True
                age = int((t0 - c.since) / DAY)
                c.leaves_on = day + NOTICE_DAYS + (29 - age - NOTICE_DAYS) % 30
                if rng.random() < CANCEL_QUESTION:
                    _ticket(c, rng, t0 + rng.uniform(0, DAY), emit, friction=0,
                            text="How do I cancel my subscription?")
            if renewal_day:
                emit(ev.Subscription(id=c.eid("sub"), time=t0 + DAY - 1, session_id=c.cid,
                                     customer_id=c.cid, action="renewed", plan=c.plan,
                                     mrr=c.mrr))
            staying.append(c)
        active = staying
        # Release what can no longer be overtaken: later days only emit later events.
        horizon = EPOCH + (day + 1) * DAY
        while heap and heap[0][0] < horizon:
            yield heapq.heappop(heap)[2]
    while heap:
        yield heapq.heappop(heap)[2]


def _session(c: _Customer, rng: random.Random, t: float, emit: Any) -> None:
    friction = _poisson(rng, c.friction_rate)
    cart = rng.random() < 0.4
    abandoned = cart and rng.random() < min(0.2 + 0.2 * friction, 0.9)
    converted = cart and not abandoned
    kinds = ("dead_click", "rage_click", "error_page", "slow_page", "payment_declined")
    counts: dict[str, int] = {}
    for _ in range(friction):
        kind = rng.choice(kinds)
        counts[kind] = counts.get(kind, 0) + 1
    emit(ev.SessionSummary(
        id=c.eid("session"), time=t, session_id=c.eid("web"), customer_id=c.cid,
        converted=converted, revenue=round(rng.uniform(20, 200), 2) if converted else 0.0,
        cart_value=round(rng.uniform(20, 200), 2) if cart else 0.0,
        abandoned_step=rng.randrange(1, 4) if abandoned else None, friction=counts,
        seconds=rng.uniform(30, 1200)))
    c.unhappy += WEIGHTS["friction"] * friction + WEIGHTS["abandoned"] * abandoned
    if friction and rng.random() < min(0.04 + 0.08 * friction, 0.5):
        _ticket(c, rng, t + rng.uniform(60, 3600), emit, friction)


def _ticket(c: _Customer, rng: random.Random, t: float, emit: Any, friction: int,
            text: str | None = None) -> None:
    tid = c.eid("ticket")
    ticket = functools.partial(ev.Ticket, session_id=c.cid, customer_id=c.cid, ticket_id=tid)
    high = rng.random() < 0.1 + 0.1 * (friction > 1)
    negative = rng.random() < 0.05 + 0.3 * c.irritable * min(c.unhappy, 2.0)
    text = text or rng.choice(_NEGATIVE if negative else _NEUTRAL)
    emit(ticket(id=c.eid("t"), time=t, action="created",
                priority="high" if high else "normal", subject=text, text=text))
    solved = t + rng.uniform(0.2, 3) * DAY
    bad = rng.random() < 0.05 + 0.35 * c.irritable
    escalated = rng.random() < 0.05 + 0.1 * (c.plan == "enterprise") + 0.1 * high
    if escalated:
        emit(ticket(id=c.eid("t"), time=t + 0.1 * DAY, action="updated", status="open",
                    tags=("escalated",)))
    emit(ticket(id=c.eid("t"), time=solved, action="solved", status="solved",
                satisfaction="bad" if bad else None))
    reopened = rng.random() < 0.1 + 0.1 * bad
    if reopened:
        emit(ticket(id=c.eid("t"), time=solved + 0.5 * DAY, action="updated", status="open"))
        emit(ticket(id=c.eid("t"), time=solved + 1.5 * DAY, action="solved", status="solved"))
    c.unhappy += (WEIGHTS["ticket"] + WEIGHTS["high"] * high + WEIGHTS["bad"] * bad
                  + WEIGHTS["escalated"] * escalated + WEIGHTS["reopened"] * reopened
                  + WEIGHTS["negative"] * negative)
