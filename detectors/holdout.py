"""Randomized holdouts: which units get an intervention, and the record that both arms leave.

Every intervention (a chat offer first; a discount or an email the same way) runs inside an
``Experiment``. A unit (the customer when known, else the session) is assigned an arm by a hash
of the experiment's salt and the unit id: deterministic, so the same unit lands in the same arm
in every worker, after every restart and in the offline backtest, with no state to share. A
control unit gets no intervention; instead a *counterfactual* exposure is recorded ("would have
triggered, with this score"), so both arms are compared on the very same eligibility rule.

``Holdout.expose`` decides and records; the session's exposures are kept on its state, and
``results`` says at the session's end what each exposed session did after its exposure
(orders, revenue), which ``models.experiments`` turns into lift.

>>> from detectors.session import SessionState
>>> h = Holdout([Experiment("chat_offer", "chat", control_share=0.5, salt="s")])
>>> s = SessionState(session_id="sess-1", cart_value=80.0)
>>> deliver, rec = h.expose(s, "chat", time=100.0, score=56.0, reason="payment_declined")
>>> rec["arm"] == ("treatment" if deliver else "control"), rec["unit_kind"]
(True, 'session')
>>> h.arm("chat", rec["unit"]) == rec["arm"]  # the same unit, the same arm, every time
True
>>> s.orders, s.revenue = 1, 80.0
>>> [(r["experiment"], r["converted"], r["revenue"]) for r in results(s, end=400.0)]
[('chat_offer', True, 80.0)]
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from detectors.session import SessionState

__all__ = ["ARMS", "Experiment", "Holdout", "assign", "customer_unit", "results", "unit_of"]

Arm = Literal["control", "treatment"]
ARMS: tuple[Arm, Arm] = ("control", "treatment")

#: Key of the session's exposures in ``SessionState.detector_state``.
_KEY = "_holdout"


def assign(unit: str, experiment: str, salt: str, control_share: float) -> Arm:
    """The arm of ``unit`` in ``experiment``: control for a ``control_share`` of units.

    The first 8 bytes of SHA-256 over salt, experiment and unit, read as a number in [0, 1):
    uniform, independent across experiments (a unit in one control group is not more likely
    in another's) and the same on every machine and Python version (``hash()`` is not).
    """
    digest = hashlib.sha256(f"{salt}\x1f{experiment}\x1f{unit}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2.0**64
    return "control" if u < control_share else "treatment"


def unit_of(state: SessionState, customer_salt: str = "") -> tuple[str, str]:
    """``(kind, id)`` of the unit a session belongs to: the customer (as the same pseudonym
    alerts carry) when known, so one person never sees both arms; else the session."""
    if state.customer_id:
        return "customer", customer_unit(state.customer_id, customer_salt)
    return "session", "s:" + state.session_id


def customer_unit(customer_id: str, customer_salt: str = "") -> str:
    """A customer's unit id: the pseudonym alerts carry (``hash_customer``), prefixed."""
    return "c:" + hashlib.sha256((customer_salt + customer_id).encode()).hexdigest()[:24]


@dataclass(frozen=True)
class Experiment:
    """One intervention's randomized holdout.

    Parameters
    ----------
    name
        The experiment's name (what reports and metrics call it).
    intervention
        What it withholds from the control arm: ``chat`` (proactive chat offers); others
        (``discount``, ``email``) are named by the code that triggers them.
    control_share
        Share of units held out (no intervention).
    salt
        Changing it reshuffles every unit: a new experiment on the same intervention.
    attribution_window
        Seconds after a unit's first exposure in which its orders count.
    cost_per_intervention
        What one delivered intervention costs (the shop's currency), for ROI.
    """

    name: str = "chat_offer"
    intervention: str = "chat"
    control_share: float = 0.2
    salt: str = "frictionwatch"
    attribution_window: float = 86_400.0
    cost_per_intervention: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 < self.control_share < 1.0:
            raise ValueError(f"control_share must be within (0, 1), not {self.control_share}")
        if self.attribution_window <= 0 or self.cost_per_intervention < 0:
            raise ValueError("attribution_window must be > 0 and cost_per_intervention >= 0")

    def arm(self, unit: str) -> Arm:
        return assign(unit, self.name, self.salt, self.control_share)


class Holdout:
    """The experiments, one per intervention; none for an intervention: always delivered."""

    def __init__(self, experiments: Iterable[Experiment] = (), customer_salt: str = "") -> None:
        self.experiments = {e.intervention: e for e in experiments}
        self.customer_salt = customer_salt

    def arm(self, intervention: str, unit: str) -> Arm:
        return self.experiments[intervention].arm(unit)

    def expose(self, state: SessionState, intervention: str, time: float, score: float,
               reason: str, **detail: Any) -> tuple[bool, dict[str, Any] | None]:
        """A session became eligible for ``intervention``: deliver it or not, and the exposure
        record (None when no experiment covers the intervention). The session remembers its
        first exposure per experiment, with its orders and revenue at that moment."""
        exp = self.experiments.get(intervention)
        if exp is None:
            return True, None
        kind, unit = unit_of(state, self.customer_salt)
        arm = exp.arm(unit)
        mine = state.detector_state.setdefault(_KEY, {})
        first = exp.name not in mine
        if first:
            mine[exp.name] = {"arm": arm, "unit": unit, "unit_kind": kind, "t": time,
                              "orders": state.orders, "revenue": state.revenue}
        record = {
            "type": "exposure",
            "experiment": exp.name,
            "intervention": intervention,
            "arm": arm,
            # Control: what would have been done, and was not.
            "delivered": arm == "treatment",
            "unit": unit,
            "unit_kind": kind,
            "session_id": state.session_id,
            "time": time,
            "first_in_session": first,
            "score": round(score, 3),
            "reason": reason,
            "device": state.device,
            "cart_value": round(state.cart_value, 2),
            **detail,
        }
        return arm == "treatment", record


def results(state: SessionState, end: float) -> list[dict[str, Any]]:
    """What each exposed session did after its first exposure per experiment, at its end:
    whether it ordered and the revenue of those orders."""
    mine = state.detector_state.get(_KEY)
    if not mine:
        return []
    out = []
    for name, e in sorted(mine.items()):
        orders = state.orders - e["orders"]
        out.append({
            "type": "result",
            "experiment": name,
            "arm": e["arm"],
            "unit": e["unit"],
            "unit_kind": e["unit_kind"],
            "session_id": state.session_id,
            "exposed_at": e["t"],
            "end": end,
            "converted": orders > 0,
            "orders": orders,
            "revenue": round(state.revenue - e["revenue"], 2),
            "device": state.device,
        })
    return out
