"""Customer segments in the worker: the KPIs counted by segment, and each segment's words on
``/metrics``.

The segment reaches the session KPIs without a repartition: a known customer's session
already goes to the customers agent as a summary, keyed by customer (``detectors.customer``),
and that agent holds the segmenter (``models.segments``); so the customers agent counts a
known customer's session under its segment, and the sessions agent counts an anonymous
session under ``unknown``. Each session is counted once, by one of the two.

>>> from prometheus_client import CollectorRegistry
>>> from streams.metrics import Metrics
>>> m = Metrics(CollectorRegistry())
>>> kpis = SegmentKpis(m, k=2)
>>> kpis.count("s1", converted=True, abandoned=False, orders=1, revenue=40.0, friction=2)
>>> kpis.count("s9", converted=False, abandoned=True, orders=0, revenue=0.0, friction=0)
>>> r = m.registry.get_sample_value
>>> (r("frictionwatch_segment_sessions_total", {"segment": "s1", "outcome": "converted"}),
...  r("frictionwatch_segment_revenue_total", {"segment": "s1"}),
...  r("frictionwatch_segment_sessions_total", {"segment": "unknown", "outcome": "abandoned"}))
(1.0, 40.0, 1.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import faust

from detectors.customer import CustomerState
from detectors.events import SessionSummary
from models.segments import UNKNOWN, Segmenter, learn_customer, session_segments
from streams.guard import Guard, inc_finite
from streams.metrics import Metrics

__all__ = ["CustomerSegments", "SegmentInfo", "SegmentKpis", "register_segment_info"]

_OUTCOMES = ("converted", "abandoned", "browsed")


class SegmentKpis:
    """The segment KPI counters, their children bound once for every segment id (``s0`` ..
    ``s{k-1}`` and ``unknown``): a bounded label, and a cached child's ``inc`` is cheap."""

    def __init__(self, metrics: Metrics, k: int) -> None:
        self.ids = (*(f"s{i}" for i in range(k)), UNKNOWN)
        self._sessions = {(s, o): metrics.segment_sessions.labels(s, o)
                          for s in self.ids for o in _OUTCOMES}
        self._friction = {s: metrics.segment_friction_sessions.labels(s) for s in self.ids}
        self._orders = {s: metrics.segment_orders.labels(s) for s in self.ids}
        self._revenue = {s: metrics.segment_revenue.labels(s) for s in self.ids}

    def count(self, segment: str, *, converted: bool, abandoned: bool, orders: int,
              revenue: float, friction: int) -> None:
        """One ended session of ``segment`` (an id outside the bounded set counts as
        ``unknown``: the label never grows); ``friction``: its friction signals."""
        if segment not in self._orders:
            segment = UNKNOWN
        outcome = "converted" if converted else "abandoned" if abandoned else "browsed"
        self._sessions[segment, outcome].inc()
        if friction > 0:
            self._friction[segment].inc()
        if converted:
            inc_finite(self._orders[segment], max(orders, 1))
            inc_finite(self._revenue[segment], revenue)


class CustomerSegments:
    """What the customers agent does with segments around folding a message's events into a
    customer's state: ``before`` it, find the sessions that ended and their customer's
    segment; ``after`` it, learn the customer and count those sessions' KPIs."""

    def __init__(self, seg: Segmenter, kpis: SegmentKpis) -> None:
        self.seg, self.kpis = seg, kpis

    def before(self, state: CustomerState | None, events: Sequence[Any]
               ) -> list[tuple[SessionSummary, str]]:
        return session_segments(self.seg, state, events)

    def after(self, state: CustomerState, ended: Sequence[tuple[SessionSummary, str]]
              ) -> None:
        if not ended:
            return
        learn_customer(self.seg, state)
        for summary, segment in ended:
            self.kpis.count(segment, converted=summary.converted,
                            abandoned=summary.abandoned_step is not None,
                            orders=summary.orders, revenue=summary.revenue,
                            friction=sum(summary.friction.values()))


class SegmentInfo:
    """Each segment's description on ``frictionwatch_segment_info``, one series per segment:
    a changed description replaces its old series, so the label stays bounded."""

    def __init__(self, metrics: Metrics, seg: Segmenter) -> None:
        self.metrics, self.seg = metrics, seg
        self.shown: dict[str, str] = {}

    def update(self) -> None:
        for segment, words in self.seg.segments().items():
            old = self.shown.get(segment)
            if old == words:
                continue
            if old is not None:
                self.metrics.segment_info.remove(segment, old)
            self.metrics.segment_info.labels(segment, words).set(1)
            self.shown[segment] = words


def register_segment_info(app: faust.App, guard: Guard, metrics: Metrics, seg: Segmenter,
                          interval: float = 30.0) -> SegmentInfo:
    """``SegmentInfo`` for ``seg``, updated on a timer."""
    info = SegmentInfo(metrics, seg)
    info.update()  # on /metrics from the start (a fresh model's are "typical customers")

    @guard.timer(app, interval)
    async def describe_segments() -> None:
        info.update()

    return info
