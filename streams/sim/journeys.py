"""Simulated multi-session customer journeys with known channel effects: the ground truth that
multi-touch attribution (``models.attribution``) is checked against.

The web simulator plays single visits event by event; a journey spans days and several
visits, so this one works a journey at a time, from its own seeded stream
(``random.Random(f"{seed}:journeys")``): nothing the web simulator emits changes.

The model (cumulative influence, the usual motivation for multi-touch attribution):

- a returning customer makes ``1 + Geometric`` visits (``VISIT_CONTINUE``), days apart; the
  first visit's channel is drawn from ``FIRST_TOUCH`` (discovery: search and social), later
  ones from ``RETURN_TOUCH`` (direct, email, search), the channels being
  ``detectors.traffic.SOURCES``;
- every touch on channel ``c`` truly raises the chance that the journey ends in an order:
  ``P(order) = 1 - (1 - BASE) * prod over touches (1 - EFFECTS[c])``; the order happens in
  the last visit, so the last touch is often a "closing" channel (direct, email) that did
  little by itself. That is where last-click attribution goes wrong;
- the truth for a channel is its *incremental conversions*: the expected conversions lost had
  none of its touches happened (every journey's probability with and without them, summed;
  exact, no sampling noise). Their order is the true ranking.

``messages`` plays the journeys as Segment calls (a landing page view per visit, tagged as the
web simulator tags its channel, ``streams.sim.behaviour.TRAFFIC_SOURCES``; an ``Order
Completed`` in the converting visit), so the whole path can be checked: adapter, traffic
classification, sessions, outcomes, journeys (``models.attribution.journeys_from_outcomes``).

>>> sim = simulate_journeys(JourneyConfig(journeys=2000, seed=1))
>>> len(sim.journeys), sum(j.converted for j in sim.journeys) > 0
(2000, True)
>>> sim.true_order()[0], sim.true_order()[-1]
('organic_search', 'referral')
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime

from models.attribution import Journey
from streams.sim.behaviour import SHOP_URL, TRAFFIC_SOURCES
from streams.sim.run import SimMessage

__all__ = ["BASE", "EFFECTS", "FIRST_TOUCH", "RETURN_TOUCH", "JourneyConfig", "JourneySim",
           "messages", "simulate_journeys"]

DAY = 86_400.0
#: 2026-01-01T00:00:00Z, as in ``streams.sim.lifecycle``.
EPOCH = 1_767_225_600.0

#: Chance of an order with no touch's help (the customer would buy anyway).
BASE = 0.01
#: Each channel's true incremental effect: the chance one touch on it, by itself, turns a
#: journey into an order. Assumed, chosen so that intent-rich channels (paid search, email)
#: work best per touch and direct (people who already decided type the address) least.
EFFECTS: dict[str, float] = {
    "paid_search": 0.06, "email": 0.05, "organic_search": 0.04, "paid_social": 0.035,
    "referral": 0.03, "social": 0.02, "direct": 0.01,
}
#: Where journeys start (weights): discovery channels.
FIRST_TOUCH: dict[str, float] = {
    "organic_search": 0.30, "paid_social": 0.20, "social": 0.15, "paid_search": 0.15,
    "direct": 0.10, "referral": 0.05, "email": 0.05,
}
#: Where later visits come from (weights): people coming back.
RETURN_TOUCH: dict[str, float] = {
    "direct": 0.35, "email": 0.20, "organic_search": 0.20, "paid_search": 0.10,
    "social": 0.05, "paid_social": 0.05, "referral": 0.05,
}
#: Chance of one more visit after each (geometric: about 2.2 visits per journey).
VISIT_CONTINUE = 0.55
MAX_VISITS = 12
#: Median days between visits, and the median order value.
GAP_DAYS = 2.0
ORDER_MEDIAN = 80.0


@dataclass(frozen=True)
class JourneyConfig:
    """``journeys`` customer journeys, deterministic for a ``seed``; ``effects`` overrides
    ``EFFECTS`` (each in [0, 1), one for every channel ``first`` and ``returning`` name)."""

    journeys: int = 10_000
    seed: int = 0
    effects: dict[str, float] = field(default_factory=lambda: dict(EFFECTS))
    #: Channel weights of a journey's first visit and of later ones.
    first: dict[str, float] = field(default_factory=lambda: dict(FIRST_TOUCH))
    returning: dict[str, float] = field(default_factory=lambda: dict(RETURN_TOUCH))

    def __post_init__(self) -> None:
        if self.journeys < 0:
            raise ValueError("journeys must be >= 0")
        missing = (set(self.first) | set(self.returning)) - set(self.effects)
        if missing:
            raise ValueError(f"effects missing for {sorted(missing)}")
        if any(not 0.0 <= e < 1.0 for e in self.effects.values()):
            raise ValueError("effects must be in [0, 1)")


@dataclass
class JourneySim:
    """The journeys, and the truth: each channel's expected incremental conversions."""

    journeys: list[Journey]
    incremental: dict[str, float]

    def true_order(self) -> list[str]:
        """Channels by true incremental conversions, most first."""
        return sorted(self.incremental, key=lambda c: (-self.incremental[c], c))


def _draw(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def simulate_journeys(config: JourneyConfig) -> JourneySim:
    """Play ``config.journeys`` journeys (see the module docstring)."""
    rng = random.Random(f"{config.seed}:journeys")
    eff = config.effects
    incremental = dict.fromkeys(eff, 0.0)
    journeys = []
    for _ in range(config.journeys):
        channels = [_draw(rng, config.first)]
        while len(channels) < MAX_VISITS and rng.random() < VISIT_CONTINUE:
            channels.append(_draw(rng, config.returning))
        t = EPOCH + rng.uniform(0.0, 30 * DAY)
        touches = []
        for ch in channels:
            touches.append((ch, round(t, 3)))
            t += DAY * GAP_DAYS * math.exp(rng.gauss(0.0, 0.8))
        miss = {c: 1.0 for c in eff}  # per channel: prod of (1 - effect) over its touches
        for ch in channels:
            miss[ch] *= 1.0 - eff[ch]
        none = (1.0 - BASE) * math.prod(miss.values())
        for c, m in miss.items():
            if m < 1.0:  # without c's touches the journey converts with 1 - none / m
                incremental[c] += (1.0 - none) - (1.0 - none / m)
        converted = rng.random() < 1.0 - none
        revenue = round(ORDER_MEDIAN * math.exp(rng.gauss(0.0, 0.6)), 2) if converted else 0.0
        journeys.append(Journey(tuple(touches), converted, revenue))
    return JourneySim(journeys, incremental)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def messages(sim: JourneySim) -> list[SimMessage]:
    """The journeys as Segment calls in time order: customer ``jcust_<n>`` of journey ``n``
    lands once per visit (session ``jsess_<n>_<visit>``) with the channel's landing URL and
    referrer; the converting visit ends in an ``Order Completed`` a minute later.

    >>> sim = simulate_journeys(JourneyConfig(journeys=3, seed=4))
    >>> msgs = messages(sim)
    >>> sum(m.payload["type"] == "page" for m in msgs) == sum(len(j.touches) for j in sim.journeys)
    True
    """
    out = []
    for n, j in enumerate(sim.journeys):
        for v, (channel, t) in enumerate(j.touches):
            _, _, query, referrer = TRAFFIC_SOURCES[channel]
            sid = f"jsess_{n}_{v}"
            ctx = {"sessionId": sid, "device": {"type": "desktop"},
                   "page": {"path": "/", "url": SHOP_URL + "/" + query}}
            props: dict[str, object] = {"path": "/", "url": SHOP_URL + "/" + query,
                                        "title": "Home"}
            if referrer:
                props["referrer"] = referrer
            common = {"anonymousId": f"janon_{n}", "userId": f"jcust_{n:06d}",
                      "context": ctx}
            out.append(SimMessage(t, "segment", sid.encode(), {
                "type": "page", "name": "Home", "messageId": f"{sid}.0",
                "timestamp": _iso(t), "properties": props, **common}))
            if j.converted and v == len(j.touches) - 1:
                out.append(SimMessage(t + 60.0, "segment", sid.encode(), {
                    "type": "track", "event": "Order Completed", "messageId": f"{sid}.1",
                    "timestamp": _iso(t + 60.0), **common,
                    "properties": {"order_id": f"ord_{n}", "revenue": j.revenue,
                                   "currency": "USD"}}))
    out.sort(key=lambda m: m.time)
    return out
