"""The simulator's ground truth: a ``FrictionTruth`` per injected friction that reached the
output, a ``SessionOutcome`` per session, and the JSONL file ``write_truth`` writes and
``read_truth`` reads (incident, friction and outcome records)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from streams.sim.config import Incident

if TYPE_CHECKING:
    from streams.sim.run import Simulator

__all__ = ["FrictionTruth", "SessionOutcome", "TruthFile", "defines", "followup_truth",
           "read_truth", "write_truth"]


@dataclass(slots=True)
class FrictionTruth:
    """One injected friction, as it shows in the output."""

    session_id: str
    customer_id: str | None
    #: One of ``FRICTION_TYPES``.
    friction: str
    #: Event time of the first event that shows it, and of the last (a stall: when it ended).
    start: float
    end: float
    #: Checkout step (1-4) where it happened; None while browsing.
    step: int | None
    #: ``Incident.label`` of the incident that caused it; None for per-session friction.
    incident: str | None
    #: Type-specific evidence: target, path, field, reasons, counts...
    detail: dict[str, Any]
    #: Event time at which it exists by its own definition, which detection is timed from:
    #: the 3rd click of a rage burst, the 2nd failure of a form-field loop, a coupon or a
    #: payment (the 1st during an outage), the 2nd return of a backtrack, and for a stall the
    #: moment its time in the step passes 3x the step's typical time (the most a friction-free
    #: visit takes here). Else ``start``.
    onset: float = 0.0
    #: The friction began before the emitted window (warm-up): its first events are missing.
    partial: bool = False
    #: The run stopped before all its events were out: ``end`` and the counts in ``detail``
    #: are as planned, not as emitted.
    truncated: bool = False


@dataclass(slots=True)
class SessionOutcome:
    """How one session ended (``finished`` False: still going when the run stopped)."""

    session_id: str
    customer_id: str | None
    source: str
    device: str
    start: float
    end: float
    converted: bool = False
    revenue: float = 0.0
    #: None: converted, or never had a cart. 0: left with a cart before checkout. 1-4: left
    #: during that checkout step.
    abandoned_step: int | None = None
    cart: bool = False
    checkout: bool = False
    #: Hidden purchase intent at checkout (``CHECKOUT_INTENT``, 0-1), which no event shows;
    #: None without a checkout. For judging models against what could be known at best.
    intent: float | None = None
    #: Friction records of this session in the truth.
    frictions: int = 0
    ticket: bool = False
    finished: bool = False
    partial: bool = False
    #: Holdout arm of the session's unit once it hit a checkout blocker (eligible for a chat
    #: offer), else None; ``rescued``: it would have left then and stayed thanks to the offer
    #: (``SimConfig.chat_effect``). Converted and rescued: the offer made this order.
    chat_arm: str | None = None
    rescued: bool = False
    #: Holdout arm of a reachable abandoned session's customer in the follow-up experiment
    #: (``SimConfig.followup_*``), when its follow-up is due (Unix seconds), and whether the
    #: shopper came back to order: ``base`` (on their own) or ``caused`` (by the follow-up);
    #: ``returned``: that return visit's session id.
    followup_arm: str | None = None
    followup_at: float | None = None
    followup_return: str | None = None
    returned: str | None = None
    #: The session's source sends presence signals (leave beacons or heartbeats), and when
    #: the shopper left the site (the end of the web part; a lost beacon does not hide it here).
    presence: bool = False
    left: float | None = None


@dataclass
class TruthFile:
    frictions: list[FrictionTruth]
    outcomes: list[SessionOutcome]
    incidents: list[dict[str, Any]]
    #: Injected ticket bursts (``streams.sim.tickets.TicketBurst.truth``).
    bursts: list[dict[str, Any]] = field(default_factory=list)


def _incident_record(inc: Incident, start: float) -> dict[str, Any]:
    return {"record": "incident", "name": inc.label, "kind": inc.kind,
            "start": start + inc.start, "end": start + inc.start + inc.duration,
            "params": inc.settings}


#: Friction type -> (event names that make it, how many it takes); see ``FrictionTruth.onset``.
_ONSET: dict[str, tuple[frozenset[str], int]] = {
    "rage_click": (frozenset({"Element Clicked"}), 3),
    "form_error_loop": (frozenset({"Form Field Error"}), 2),
    "coupon_failure": (frozenset({"Coupon Denied"}), 2),
    "payment_declined": (frozenset({"Payment Declined", "Payment Attempted"}), 2),
    "backtrack": (frozenset({"Checkout Step Viewed"}), 2),
}


def defines(tr: FrictionTruth, kind: str, props: dict[str, Any],
             counts: dict[int, tuple[FrictionTruth, int]]) -> bool:
    """Whether this event of ``tr`` is the one from which the friction exists.

    ``counts`` maps ``id(tr)`` to (``tr``, its defining events so far): holding ``tr`` keeps
    the id from being reused by a later record while the count is live."""
    if tr.friction == "step_stall":
        # Set once: the stall becomes abnormal 3x typical after the step opened.
        tr.onset = tr.start + 3 * float(tr.detail.get("typical_seconds", 0.0))
        return False
    rule = _ONSET.get(tr.friction)
    if rule is None:
        return True
    kinds, needed = rule
    if kind not in kinds:
        return False
    if tr.friction == "backtrack" and props.get("step") != tr.detail.get("to_step"):
        return False
    if tr.friction == "payment_declined" and tr.incident is not None:
        needed = 1
    n = counts.get(id(tr), (tr, 0))[1] + 1
    if n == needed:
        counts.pop(id(tr), None)
        return True
    counts[id(tr)] = (tr, n)
    return False


def write_truth(sim: Simulator, out: str | Path | IO[str]) -> int:
    """Write the truth as JSONL: ``{"record": "incident" | "ticket_burst" | "friction" |
    "outcome", ...}`` lines (incidents and the ticket burst first, then frictions in order of
    first emitted event, then outcomes); returns lines written. Works mid-run too (e.g. after
    Ctrl-C): ``truncated`` is brought up to date."""
    sim.mark_truncated()
    lines = [_incident_record(i, sim.config.start) for i in sim.config.incidents]
    if sim.config.ticket_burst is not None:
        lines.append(sim.config.ticket_burst.truth(sim.config.start))
    lines += [{"record": "friction", **asdict(t)} for t in sim.truth]
    lines += [{"record": "outcome", **asdict(o)} for o in sim.outcomes]
    text = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines)
    if isinstance(out, str | Path):
        Path(out).write_text(text)
    else:
        out.write(text)
    return len(lines)


def read_truth(path: str | Path) -> TruthFile:
    """Read a file ``write_truth`` wrote."""
    out = TruthFile([], [], [])
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            rec = json.loads(line)
            kind = rec.pop("record")
            if kind == "friction":
                out.frictions.append(FrictionTruth(**rec))
            elif kind == "outcome":
                out.outcomes.append(SessionOutcome(**rec))
            elif kind == "ticket_burst":
                out.bursts.append(rec)
            else:
                out.incidents.append(rec)
    return out


def followup_truth(outcomes: list[SessionOutcome], end: float) -> tuple[float, float, int]:
    """What the follow-ups truly caused, as their lift is defined (per exposed unit): among
    the treatment arm's followed-up shoppers whose follow-up fell within the data (due by
    ``end``), the share who came back *because of it* and whose order the data holds (a
    return after the end is seen by neither), their revenue per unit, and how many units.
    A customer is one abandoned session when the customer base is large, as in the truth."""
    by_id = {o.session_id: o for o in outcomes}
    treated = [o for o in outcomes if o.followup_arm == "treatment"
               and o.followup_at is not None and o.followup_at <= end]
    caused = [by_id[o.returned] for o in treated if o.followup_return == "caused"
              and o.returned in by_id and by_id[o.returned].converted]
    n = max(len(treated), 1)
    return len(caused) / n, sum(o.revenue for o in caused) / n, len(treated)
