"""KPIs per segment and per customer (``models.kpis``) on a hand-made list of outcomes."""

from __future__ import annotations

import math

import pytest

from models.kpis import by_segment, customer_kpis, total

DAY = 86_400.0


def _o(sid: str, customer: str | None, device: str | None, journey: str | None, day: float,
       orders: int = 0, revenue: float = 0.0) -> dict[str, object]:
    return {"session_id": sid, "customer_id": customer, "device": device, "journey": journey,
            "start": day * DAY, "end": day * DAY + 600, "converted": orders > 0,
            "orders": orders, "revenue": revenue}


OUTCOMES = [
    _o("s1", "alice", "mobile", "retail", 0, orders=1, revenue=30.0),
    _o("s2", "alice", "mobile", "retail", 50, orders=2, revenue=90.0),
    _o("s3", "bob", "desktop", "retail", 5),
    _o("s4", None, "desktop", None, 59),
    _o("s5", "carol", None, "b2b", 58, orders=1, revenue=200.0),
    _o("s6", "dave", "desktop", "retail", 10, orders=1, revenue=40.0),
]


def test_segments_by_journey() -> None:
    rows = {s.key: s for s in by_segment(OUTCOMES, "journey")}
    assert list(rows) == ["retail", "(none)", "b2b"]  # most sessions first, then by name
    r = rows["retail"]
    assert (r.sessions, r.conversions, r.orders, r.revenue) == (4, 3, 4, 160.0)
    assert r.conversion_rate == 0.75
    assert r.average_order_value == 40.0
    assert math.isnan(rows["(none)"].average_order_value)  # no orders: no AOV, not 0


def test_segments_by_device_and_total() -> None:
    rows = {s.key: s for s in by_segment(OUTCOMES, "device")}
    assert rows["desktop"].sessions == 3 and rows["desktop"].revenue == 40.0
    assert rows["(none)"].orders == 1
    t = total(OUTCOMES)
    assert (t.sessions, t.conversions, t.orders, t.revenue) == (6, 4, 5, 360.0)
    assert t.average_order_value == 72.0


def test_outcome_without_orders_field_counts_its_conversion() -> None:
    t = total([{"converted": True, "revenue": 10.0}, {"converted": False}])
    assert (t.orders, t.conversions, t.sessions) == (1, 1, 2)


def test_customers_churn_derived_from_inactivity() -> None:
    # Known customers' data ends at day 58 (+600 s; the anonymous session of day 59 is left
    # out); a 30-day period: alice (day 50) and carol (day 58) are active, bob (day 5) and
    # dave (day 10) are not.
    k = customer_kpis(OUTCOMES, period=30 * DAY)
    assert k.derived_churn
    assert (k.customers, k.churned, k.orders, k.revenue) == (4, 2, 5, 360.0)
    assert k.churn_rate == 0.5
    assert k.periods == pytest.approx((58 * DAY + 600) / (30 * DAY))
    freq = 5 / 4 / k.periods
    assert k.purchase_frequency == pytest.approx(freq)
    assert k.clv == round(72.0 * freq / 0.5, 2)


def test_customers_churn_given() -> None:
    k = customer_kpis(OUTCOMES, churn=[("bob", True), ("alice", True), ("alice", False),
                                       ("zed", True)], period=30 * DAY)
    # The last pair per customer wins; zed has no sessions and is not counted.
    assert not k.derived_churn and k.churned == 1 and k.churn_rate == 0.25


def test_no_churn_means_unknown_clv_and_short_data_is_one_period() -> None:
    short = [_o("a", "x", "mobile", "retail", 0, orders=1, revenue=50.0),
             _o("b", "y", "mobile", "retail", 0.01)]
    k = customer_kpis(short, period=30 * DAY)
    assert k.churned == 0 and k.clv is None
    assert k.periods == 1.0  # not extrapolated to a month
    assert k.purchase_frequency == 0.5


def test_empty() -> None:
    k = customer_kpis([])
    assert k.customers == 0 and k.clv is None and math.isnan(k.churn_rate)
    assert by_segment([], "device") == []
