"""Business KPIs from session outcomes (``detectors.engine.outcome``): per segment and per
customer.

Segments (a journey, a device) get sessions, conversion rate, orders, average order value and
revenue. Customers (outcomes with a ``customer_id``) get a churn rate and the textbook simple
customer lifetime value::

    CLV = average order value * purchases per customer per period / churn rate per period

(``1 / churn rate`` is the expected lifetime in periods, so this is value per period times
lifetime). It assumes a steady churn rate and ignores margin and discounting: a yardstick
for comparing segments and weeks, not a valuation.

Churn is what the caller knows (``(customer_id, churned)`` pairs, e.g. from cancelled
subscriptions); without it, a customer counts as churned when their last session ended more
than one ``period`` before the end of the data. That is crude on purpose: it needs nothing
but the outcomes, and on data shorter than a period nobody has churned yet (then CLV is
unknown, not infinite).

>>> day = 86_400.0
>>> outs = [
...     {"session_id": "a", "customer_id": "c1", "device": "mobile", "journey": "retail",
...      "start": 0.0, "end": 60.0, "converted": True, "orders": 1, "revenue": 40.0},
...     {"session_id": "b", "customer_id": "c2", "device": "desktop", "journey": "retail",
...      "start": 20 * day, "end": 20 * day, "converted": False, "orders": 0, "revenue": 0.0},
...     {"session_id": "c", "customer_id": "c1", "device": "mobile", "journey": None,
...      "start": 59 * day, "end": 60 * day, "converted": True, "orders": 1, "revenue": 60.0},
... ]
>>> [(s.key, s.sessions, round(s.conversion_rate, 2), s.average_order_value)
...  for s in by_segment(outs, "journey")]
[('retail', 2, 0.5, 40.0), ('(none)', 1, 1.0, 60.0)]
>>> k = customer_kpis(outs, period=30 * day)
>>> k.customers, k.churned, k.churn_rate, k.purchase_frequency, k.clv
(2, 1, 0.5, 0.5, 50.0)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["CustomerKpis", "SegmentKpis", "by_segment", "customer_kpis", "merged", "total"]

#: What a missing segment value (no journey, no device) is called in the tables.
NONE = "(none)"


@dataclass(frozen=True)
class SegmentKpis:
    """Sessions of one segment and what they bought."""

    key: str
    sessions: int = 0
    #: Sessions with at least one order.
    conversions: int = 0
    orders: int = 0
    revenue: float = 0.0

    @property
    def conversion_rate(self) -> float:
        return self.conversions / self.sessions if self.sessions else math.nan

    @property
    def average_order_value(self) -> float:
        return self.revenue / self.orders if self.orders else math.nan


def _orders(o: Mapping[str, Any]) -> int:
    # Outcomes without an order count (older labels) still say whether the session converted.
    n = o.get("orders")
    return int(n) if n is not None else int(bool(o.get("converted")))


def merged(outcomes: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The outcomes with each ``continued`` one (a session whose named id came back after it
    had expired: ``detectors.engine``) folded into its session's earlier outcome: one per
    session, converted if any part was, abandoned where its last part was.

    >>> parts = [{"session_id": "s", "converted": False, "orders": 0, "revenue": 0.0,
    ...           "abandoned_step": 0, "cart_value": 25.0, "friction": {"step_stall": 1}},
    ...          {"session_id": "s", "converted": True, "orders": 1, "revenue": 25.0,
    ...           "abandoned_step": None, "cart_value": 25.0, "continued": True}]
    >>> [(o["converted"], o["orders"], o["abandoned_step"], o["friction"]) for o in merged(parts)]
    [(True, 1, None, {'step_stall': 1})]
    """
    out: list[Mapping[str, Any]] = []
    at: dict[Any, int] = {}  # session id -> index of its latest outcome in ``out``
    for o in outcomes:
        sid = o.get("session_id")
        i = at.get(sid)
        if i is None or not o.get("continued"):
            at[sid] = len(out)
            out.append(o)
            continue
        a = out[i]
        converted = bool(a.get("converted") or o.get("converted"))
        friction = dict(a.get("friction") or {})
        for k, v in (o.get("friction") or {}).items():
            friction[k] = friction.get(k, 0) + v
        out[i] = {**a, **o, "continued": False, "converted": converted, "start": a.get("start"),
                  "orders": _orders(a) + _orders(o),
                  "revenue": round(float(a.get("revenue") or 0) + float(o.get("revenue") or 0),
                                   2),
                  "abandoned_step": None if converted else o.get("abandoned_step"),
                  "max_checkout_step": max(a.get("max_checkout_step") or 0,
                                           o.get("max_checkout_step") or 0),
                  "friction": friction}
    return out


def total(outcomes: Iterable[Mapping[str, Any]], key: str = "all") -> SegmentKpis:
    """All of ``outcomes`` as one segment."""
    sessions = conversions = orders = 0
    revenue = 0.0
    for o in merged(outcomes):
        sessions += 1
        conversions += bool(o.get("converted"))
        orders += _orders(o)
        revenue += float(o.get("revenue") or 0.0)
    return SegmentKpis(key, sessions, conversions, orders, round(revenue, 2))


def by_segment(outcomes: Iterable[Mapping[str, Any]], field: str) -> list[SegmentKpis]:
    """One ``SegmentKpis`` per value of ``field`` (``journey``, ``device``...), most sessions
    first; a missing value is the segment ``(none)``."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for o in merged(outcomes):
        groups.setdefault(str(o.get(field) or NONE), []).append(o)
    rows = [total(v, k) for k, v in groups.items()]
    return sorted(rows, key=lambda s: (-s.sessions, s.key))


@dataclass(frozen=True)
class CustomerKpis:
    """Known customers' churn and lifetime value; ``period`` seconds is the unit of time of
    the rates (frequency and churn are per period)."""

    customers: int
    churned: int
    #: True: churn was derived from inactivity (no churn information was given).
    derived_churn: bool
    period: float
    #: How many periods the data spans (at least 1: a shorter span counts as one period, so a
    #: few hours of data are not extrapolated to a month).
    periods: float
    orders: int
    revenue: float

    @property
    def churn_rate(self) -> float:
        return self.churned / self.customers if self.customers else math.nan

    @property
    def average_order_value(self) -> float:
        return self.revenue / self.orders if self.orders else math.nan

    @property
    def purchase_frequency(self) -> float:
        """Orders per customer per period."""
        return self.orders / self.customers / self.periods if self.customers else math.nan

    @property
    def clv(self) -> float | None:
        """AOV * purchase frequency / churn rate; None when no customer has churned (the
        lifetime is not bounded by the data) or nobody ordered."""
        rate = self.churn_rate
        if not self.orders or not rate > 0:
            return None
        return round(self.average_order_value * self.purchase_frequency / rate, 2)


def customer_kpis(outcomes: Iterable[Mapping[str, Any]],
                  churn: Iterable[tuple[str, bool]] | None = None,
                  period: float = 30 * 86_400.0, end: float | None = None) -> CustomerKpis:
    """Churn and CLV of the customers in ``outcomes`` (sessions without a ``customer_id`` are
    left out).

    ``churn``: ``(customer_id, churned)`` pairs (the last one per customer wins); customers
    with sessions but no pair have not churned. Without it, a customer churned when their last
    session ended before ``end - period``; ``end`` defaults to the latest session end.
    """
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    orders = 0
    revenue = 0.0
    for o in outcomes:
        cid = o.get("customer_id")
        if not cid:
            continue
        start, stop = float(o.get("start") or 0.0), float(o.get("end") or 0.0)
        first[cid] = min(first.get(cid, start), start)
        last[cid] = max(last.get(cid, stop), stop)
        orders += _orders(o)
        revenue += float(o.get("revenue") or 0.0)
    if end is None:
        end = max(last.values(), default=0.0)
    span = end - min(first.values(), default=end)
    if churn is None:
        churned = sum(1 for t in last.values() if t < end - period)
    else:
        flags = dict(churn)
        churned = sum(1 for c in last if flags.get(c, False))
    return CustomerKpis(customers=len(last), churned=churned, derived_churn=churn is None,
                        period=period, periods=max(span / period, 1.0), orders=orders,
                        revenue=round(revenue, 2))
