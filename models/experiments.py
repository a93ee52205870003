"""Outcomes per arm: the units of each experiment, what they did in the attribution window,
and the lift (``models.lift``) they add up to.

``Ledger.add`` takes the holdout records (``detectors.holdout``) in any order: an exposure
opens a unit (its first exposure starts the attribution window), a result adds an exposed
session's orders and revenue when the session began within the unit's window. A unit is
final when nothing more can be added: a session unit when its session's result came, a
customer unit once its window and a session gap after it have passed (``close``). Final
units go into their arm's ``ArmStats``; the statistics merge across workers. Only open units
are remembered, so state stays bounded: a unit exposed again after its window closed counts
again, as a new period.

The pending units and the totals are the whole state (``snapshot`` / ``restore``), so the
worker keeps them in a table and recovers them after a crash.

>>> from detectors.holdout import Experiment
>>> led = Ledger([Experiment("chat_offer", control_share=0.5)], session_gap=1800)
>>> led.add({"type": "exposure", "experiment": "chat_offer", "arm": "treatment",
...          "unit": "s:a", "unit_kind": "session", "time": 10.0, "delivered": True})
[]
>>> [u.unit for u in led.add({"type": "result", "experiment": "chat_offer", "arm": "treatment",
...          "unit": "s:a", "unit_kind": "session", "exposed_at": 10.0, "end": 900.0,
...          "converted": True, "orders": 1, "revenue": 50.0})]
['s:a']
>>> t = led.totals["chat_offer"]["treatment"]
>>> t.units, t.conversions, t.revenue, t.delivered
(1, 1, 50.0, 1)
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from detectors.holdout import ARMS, Experiment
from models.finite import finite_amount
from models.lift import ArmStats, LiftEstimate, estimate

__all__ = ["Ledger", "Unit"]


class Unit(msgspec.Struct, kw_only=True):
    """One unit of one experiment while its attribution window is open."""

    experiment: str
    arm: str
    unit: str
    kind: str
    first: float
    converted: bool = False
    orders: int = 0
    revenue: float = 0.0
    sessions: int = 0
    delivered: int = 0


class _State(msgspec.Struct):
    pending: dict[str, Unit]
    totals: dict[str, dict[str, ArmStats]]
    #: Each experiment's arm totals after each unit, as it was finalized (lift over time).
    history: dict[str, list[tuple[float, int, int, float, int, int, float]]]


def _check(record: Mapping[str, Any]) -> None:
    """``ValueError`` unless the record's numbers are finite and within bounds."""
    for name in ("time", "exposed_at", "end", "revenue", "orders"):
        value = record.get(name)
        if value is None and (name not in record or name not in ("revenue", "orders")):
            continue  # absent, or an optional time (null: the encoder's word for inf)
        if isinstance(value, bool) or not finite_amount(value):
            raise ValueError(f"holdout record: {name} {value!r} is not a finite amount "
                             f"within bounds")


class Ledger:
    """Units and arm totals of the experiments; pure, fed with holdout records."""

    def __init__(self, experiments: Iterable[Experiment], session_gap: float = 1800.0,
                 keep_history: bool = False) -> None:
        self.experiments: dict[str, Experiment] = {e.name: e for e in experiments}
        self.session_gap = session_gap
        self.keep_history = keep_history
        self.pending: dict[str, Unit] = {}
        self.totals: dict[str, dict[str, ArmStats]] = {
            name: {arm: ArmStats() for arm in ARMS} for name in self.experiments}
        self.history: dict[str, list[tuple[float, int, int, float, int, int, float]]] = {}
        # (when a pending unit's window and a session gap end, its key), earliest first: the
        # worker closes after every batch, and a scan of every pending unit each time cost
        # the experiments agent more than the records did (py-spy, bench/scale.py paced).
        # A unit finalized by its result leaves a stale entry, skipped when it comes up.
        self._ends: list[tuple[float, str]] = []

    def add(self, record: Mapping[str, Any]) -> list[Unit]:
        """Take one holdout record; the units it made final. ``ValueError`` (and nothing
        changed) for a record whose times, orders or revenue are not finite numbers within
        ``models.finite.MAX_AMOUNT``: summed, they would make totals that read inf, and a
        stored ledger that cannot be read back."""
        _check(record)
        name = record["experiment"]
        exp = self.experiments.get(name)
        if exp is None:
            return []
        key = f"{name}\x1f{record['unit']}"
        unit = self.pending.get(key)
        kind = record["type"]
        if kind == "exposure":
            if unit is None:
                time = float(record["time"])
                unit = self._open(key, Unit(experiment=name, arm=record["arm"],
                                            unit=record["unit"], kind=record["unit_kind"],
                                            first=time))
            unit.delivered += int(bool(record.get("delivered")))
            return []
        if kind != "result":
            return []
        if unit is None:
            # Its exposure was not seen (e.g. before a topic's retention): the result has
            # all a unit needs.
            unit = self._open(key, Unit(experiment=name, arm=record["arm"],
                                        unit=record["unit"], kind=record["unit_kind"],
                                        first=float(record["exposed_at"])))
        if float(record["exposed_at"]) <= unit.first + exp.attribution_window:
            revenue = unit.revenue + float(record.get("revenue", 0.0))
            if not finite_amount(revenue):
                raise ValueError(f"unit {unit.unit}: revenue would reach {revenue!r}")
            unit.sessions += 1
            unit.orders += int(record.get("orders", 0))
            unit.revenue = revenue
            unit.converted = unit.converted or bool(record.get("converted"))
        if unit.kind == "session":  # nothing else can belong to it
            return [self._finalize(key, float(record["end"]))]
        return []

    def close(self, upto: float) -> list[Unit]:
        """Make final the customer units whose window (and a session gap) ended by
        ``upto`` (event time); ``math.inf``: all of them (the end of the data)."""
        done = []
        heap = self._ends
        while heap and heap[0][0] <= upto:
            ends, key = heapq.heappop(heap)
            unit = self.pending.get(key)
            if unit is not None and self._end_of(unit) == ends:
                done.append(self._finalize(key, min(ends, upto)))
        return done

    def _open(self, key: str, unit: Unit) -> Unit:
        self.pending[key] = unit
        heapq.heappush(self._ends, (self._end_of(unit), key))
        return unit

    def _end_of(self, unit: Unit) -> float:
        return unit.first + self.experiments[unit.experiment].attribution_window + \
            self.session_gap

    def _finalize(self, key: str, at: float) -> Unit:
        unit = self.pending.pop(key)
        arms = self.totals[unit.experiment]
        arms[unit.arm].add(unit.converted, unit.revenue, unit.orders, unit.delivered)
        if self.keep_history:
            c, t = arms["control"], arms["treatment"]
            self.history.setdefault(unit.experiment, []).append(
                (at, c.units, c.conversions, c.revenue, t.units, t.conversions, t.revenue))
        return unit

    def lift(self, experiment: str, **kwargs: Any) -> LiftEstimate:
        """The experiment's lift so far (``models.lift.estimate`` keyword arguments)."""
        arms = self.totals[experiment]
        kwargs.setdefault("cost_per_intervention",
                          self.experiments[experiment].cost_per_intervention)
        return estimate(arms["control"], arms["treatment"], **kwargs)

    # --- state -----------------------------------------------------------------------------

    def snapshot(self) -> bytes:
        """Pending units, totals and (offline) history."""
        return msgspec.json.encode(_State(self.pending, self.totals, self.history))

    def restore(self, raw: bytes) -> None:
        state = msgspec.json.decode(raw, type=_State)
        # Units of experiments no longer configured are dropped, as their totals are.
        self.pending = {k: u for k, u in state.pending.items() if u.experiment in self.experiments}
        self._ends = [(self._end_of(u), k) for k, u in self.pending.items()]
        heapq.heapify(self._ends)
        for name, arms in state.totals.items():
            if name in self.totals:
                self.totals[name] = {arm: arms.get(arm, ArmStats()) for arm in ARMS}
        self.history = state.history
