"""Lift of an intervention over its holdout, with confidence intervals valid at every look.

A fixed-horizon t-test looked at every day is wrong far more often than its 5%: each look is
another chance for noise to cross the line. Here the intervals are an *asymptotic confidence
sequence* (Waudby-Smith, Arbour, Sinha, Kennedy & Ramdas, "Time-uniform central limit theory
and asymptotic confidence sequences", Annals of Statistics 2024): with probability about
``1 - alpha`` the true lift lies inside the interval at *every* sample size at once, so anyone
may look as often as they like and stop when the interval excludes zero.

For a mean of i.i.d. terms with standard deviation ``sd`` after ``t`` of them, the interval is
the estimate plus or minus

    sd * sqrt(2 (t rho^2 + 1) / (t^2 rho^2) * ln(sqrt(t rho^2 + 1) / alpha))

(Robbins' normal mixture boundary). ``rho`` sets at which ``t`` it is tightest; it is chosen
for ``horizon`` units (the paper's rule). The difference in means of two randomized arms is
such a mean: its per-unit term has variance ``var1 / share1 + var0 / share0``. Relative lift
(of conversion and of revenue per unit) uses the delta method around the control mean.

Until both arms have ``min_units`` units and ``min_conversions`` conversions the answer is
``not_enough_data``, with point estimates but no interval: the normal approximation behind any
interval needs some events first.

>>> c = ArmStats(units=4000, conversions=800, revenue=64_000.0, revenue_sq=6_400_000.0)
>>> t = ArmStats(units=4000, conversions=960, revenue=76_800.0, revenue_sq=7_680_000.0)
>>> e = estimate(c, t)
>>> e.status, round(e.conversion.lift, 3), e.conversion.low > 0
('positive', 0.04, True)
>>> estimate(ArmStats(units=10), ArmStats(units=12)).status
'not_enough_data'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import msgspec
import numpy as np

from models.finite import finite_amount

__all__ = ["ArmStats", "Interval", "LiftEstimate", "Path", "estimate", "halfwidth", "path",
           "rho_squared"]

Status = Literal["not_enough_data", "no_difference_yet", "positive", "negative"]


class ArmStats(msgspec.Struct, kw_only=True):
    """Sufficient statistics of one arm: they add up across partitions and workers."""

    units: int = 0
    conversions: int = 0
    orders: int = 0
    revenue: float = 0.0
    #: Sum of squared revenue per unit (for the revenue variance).
    revenue_sq: float = 0.0
    #: Interventions delivered to the arm's units (0 in a control arm).
    delivered: int = 0

    def add(self, converted: bool, revenue: float, orders: int = 0, delivered: int = 0) -> None:
        """One more unit. ``ValueError`` (nothing added) for a revenue that is not a finite
        amount within ``models.finite.MAX_AMOUNT``: its square would overflow the variance."""
        if not finite_amount(revenue):
            raise ValueError(f"revenue {revenue!r} is not a finite amount within bounds")
        self.units += 1
        self.conversions += int(converted)
        self.orders += orders
        self.revenue += revenue
        self.revenue_sq += revenue * revenue
        self.delivered += delivered

    def merge(self, other: ArmStats) -> None:
        for f in self.__struct_fields__:
            setattr(self, f, getattr(self, f) + getattr(other, f))

    @property
    def conversion_rate(self) -> float:
        return self.conversions / self.units if self.units else math.nan

    @property
    def revenue_per_unit(self) -> float:
        return self.revenue / self.units if self.units else math.nan

    @property
    def revenue_var(self) -> float:
        """Variance of revenue per unit (the plug-in one, as ``path`` uses)."""
        if not self.units:
            return math.nan
        m = self.revenue / self.units
        return max(0.0, self.revenue_sq / self.units - m * m)


def rho_squared(alpha: float, horizon: float) -> float:
    """The mixing parameter that makes the boundary tightest at ``horizon`` units."""
    la = -2.0 * math.log(alpha)
    return (la + math.log(la + 1.0)) / horizon


def halfwidth(sd: Any, t: Any, alpha: float = 0.05, horizon: float = 10_000.0) -> Any:
    """Half-width of the confidence sequence for a mean of ``t`` terms with standard deviation
    ``sd``; takes numbers or numpy arrays (a whole path of looks at once)."""
    r2 = rho_squared(alpha, horizon)
    tr = np.asarray(t, dtype=float) * r2
    w = sd * np.sqrt(2.0 * (tr + 1.0) / (np.asarray(t, dtype=float) * tr)
                     * np.log(np.sqrt(tr + 1.0) / alpha))
    return float(w) if np.ndim(w) == 0 else w


@dataclass(frozen=True)
class Interval:
    """A lift and its always-valid interval (NaN bounds: not enough data)."""

    lift: float
    low: float
    high: float

    @property
    def known(self) -> bool:
        return not math.isnan(self.low)

    def as_dict(self) -> dict[str, float | None]:
        return {k: (None if math.isnan(v) else round(v, 6)) for k, v in
                (("lift", self.lift), ("low", self.low), ("high", self.high))}


@dataclass(frozen=True)
class LiftEstimate:
    status: Status
    control: ArmStats
    treatment: ArmStats
    #: Absolute lift in conversion rate (treatment minus control), and relative (ratio - 1).
    conversion: Interval
    relative_conversion: Interval
    #: Lift in revenue per eligible unit, absolute and relative.
    revenue_per_unit: Interval
    relative_revenue_per_unit: Interval
    #: Revenue the treatment arm made because of the intervention (its units times the lift
    #: in revenue per unit), what the interventions cost, and return on that cost.
    incremental_revenue: Interval
    cost: float
    roi: Interval | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "control": msgspec.to_builtins(self.control),
            "treatment": msgspec.to_builtins(self.treatment),
            "conversion_rate": {"control": _r(self.control.conversion_rate),
                                "treatment": _r(self.treatment.conversion_rate)},
            "conversion_lift": self.conversion.as_dict(),
            "relative_conversion_lift": self.relative_conversion.as_dict(),
            "revenue_per_unit_lift": self.revenue_per_unit.as_dict(),
            "relative_revenue_per_unit_lift": self.relative_revenue_per_unit.as_dict(),
            "incremental_revenue": self.incremental_revenue.as_dict(),
            "cost": round(self.cost, 2),
            "roi": self.roi.as_dict() if self.roi is not None else None,
        }


def _r(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 6)


_NAN = math.nan


def estimate(control: ArmStats, treatment: ArmStats, alpha: float = 0.05,
             horizon: float = 10_000.0, min_units: int = 100, min_conversions: int = 10,
             cost_per_intervention: float = 0.0) -> LiftEstimate:
    """The lift of ``treatment`` over ``control``, with ``1 - alpha`` confidence sequences."""
    n0, n1 = control.units, treatment.units
    n = n0 + n1
    p0, p1 = control.conversion_rate, treatment.conversion_rate
    m0, m1 = control.revenue_per_unit, treatment.revenue_per_unit
    cost = cost_per_intervention * treatment.delivered
    ready = (min(n0, n1) >= max(min_units, 2)
             and min(control.conversions, treatment.conversions) >= min_conversions
             and min(n0 - control.conversions, n1 - treatment.conversions) >= min_conversions)
    if not ready:
        point = (p1 - p0) if n0 and n1 else _NAN
        rel_point = (p1 / p0 - 1) if n0 and n1 and p0 > 0 else _NAN
        per_unit = (m1 - m0) if n0 and n1 else _NAN
        rel_per_unit = (m1 / m0 - 1) if n0 and n1 and m0 > 0 else _NAN
        inc = Interval(per_unit * n1, _NAN, _NAN)
        return LiftEstimate("not_enough_data", control, treatment, Interval(point, _NAN, _NAN),
                            Interval(rel_point, _NAN, _NAN), Interval(per_unit, _NAN, _NAN),
                            Interval(rel_per_unit, _NAN, _NAN), inc, cost, _roi(inc, cost))
    w0, w1 = n0 / n, n1 / n
    # The per-unit term of a difference in means under randomization: var1/w1 + var0/w0.
    sd_conv = math.sqrt(p1 * (1 - p1) / w1 + p0 * (1 - p0) / w0)
    hw = halfwidth(sd_conv, n, alpha, horizon)
    conv = Interval(p1 - p0, p1 - p0 - hw, p1 - p0 + hw)
    rel = _relative(p1, p0, p1 * (1 - p1), p0 * (1 - p0), w1, w0, n, alpha, horizon)
    sd_rev = math.sqrt(treatment.revenue_var / w1 + control.revenue_var / w0)
    hw_rev = halfwidth(sd_rev, n, alpha, horizon)
    rpu = Interval(m1 - m0, m1 - m0 - hw_rev, m1 - m0 + hw_rev)
    rel_rpu = _relative(m1, m0, treatment.revenue_var, control.revenue_var, w1, w0, n, alpha,
                        horizon)
    inc = Interval(rpu.lift * n1, rpu.low * n1, rpu.high * n1)
    status: Status = ("positive" if conv.low > 0 else "negative" if conv.high < 0
                      else "no_difference_yet")
    return LiftEstimate(status, control, treatment, conv, rel, rpu, rel_rpu, inc, cost,
                        _roi(inc, cost))


def _relative(m1: float, m0: float, v1: float, v0: float, w1: float, w0: float, n: int,
              alpha: float, horizon: float) -> Interval:
    """``m1 / m0 - 1`` with its interval, by the delta method around the control mean."""
    if m0 <= 0:
        return Interval(_NAN, _NAN, _NAN)
    ratio = m1 / m0
    hw = halfwidth(math.sqrt(v1 / w1 + ratio**2 * v0 / w0) / m0, n, alpha, horizon)
    return Interval(ratio - 1, ratio - 1 - hw, ratio - 1 + hw)


def _roi(inc: Interval, cost: float) -> Interval | None:
    """Return on the interventions' cost: (incremental revenue - cost) / cost."""
    if cost <= 0:
        return None
    return Interval(*((v - cost) / cost for v in (inc.lift, inc.low, inc.high)))


@dataclass(frozen=True)
class Path:
    """The conversion lift and its interval after each unit: what someone looking after every
    unit would have seen (NaN bounds where ``estimate`` says not enough data)."""

    units: np.ndarray
    lift: np.ndarray
    low: np.ndarray
    high: np.ndarray


def path(treated: np.ndarray, values: np.ndarray, converted: np.ndarray | None = None,
         alpha: float = 0.05, horizon: float = 10_000.0, min_units: int = 100,
         min_conversions: int = 10) -> Path:
    """``estimate``'s lift at every look, for units in the order they became final, computed
    for all looks at once: of the conversion rate when ``values`` are the units' conversions
    (booleans), of revenue per unit when they are revenues (then ``converted`` says which
    units converted, for the not-enough-data rule).

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> a = rng.random(20_000) < 0.5
    >>> p = path(a, rng.random(20_000) < np.where(a, 0.30, 0.25))
    >>> bool(np.isnan(p.low[50])), round(float(p.lift[-1]), 2), bool(p.low[-1] > 0)
    (True, 0.04, True)
    """
    a = np.asarray(treated, dtype=bool)
    y = np.asarray(values, dtype=float)
    conv = y > 0 if converted is None else np.asarray(converted, dtype=bool)
    t = np.arange(1, len(a) + 1, dtype=float)
    n1 = np.cumsum(a)
    n0 = t - n1
    s1, s0 = np.cumsum(y * a), np.cumsum(y * ~a)
    q1, q0 = np.cumsum(y * y * a), np.cumsum(y * y * ~a)
    c1, c0 = np.cumsum(conv & a), np.cumsum(conv & ~a)
    with np.errstate(divide="ignore", invalid="ignore"):
        m1, m0 = s1 / n1, s0 / n0
        v1 = np.maximum(q1 / n1 - m1 * m1, 0.0)
        v0 = np.maximum(q0 / n0 - m0 * m0, 0.0)
        sd = np.sqrt(v1 / (n1 / t) + v0 / (n0 / t))
        hw = halfwidth(sd, t, alpha, horizon)
    ready = ((np.minimum(n0, n1) >= max(min_units, 2))
             & (np.minimum(c0, c1) >= min_conversions)
             & (np.minimum(n0 - c0, n1 - c1) >= min_conversions))
    lift = m1 - m0
    hw = np.where(ready, hw, np.nan)
    return Path(t, lift, lift - hw, lift + hw)
