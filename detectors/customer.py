"""Per-customer state from support events and identify calls. Pure, like ``detectors.session``.

>>> from detectors.events import Identify, Ticket
>>> state = apply_customer(None, [
...     Identify(id="i", time=1.0, session_id="s", customer_id="c1", traits={"plan": "pro"}),
...     Ticket(id="t", time=2.0, session_id="s", customer_id="c1", action="created",
...            ticket_id="9", priority="high"),
... ], origin=("ingest-0", 3))
>>> state.tickets_created, state.tickets_open, state.traits["plan"], state.positions
(1, 1, 'pro', {'ingest-0': 3})
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from detectors import events as ev
from detectors.bounds import MAX_MONEY_SUM, MAX_SECONDS
from detectors.session import decode_lenient, finite, float_fields, is_replay

__all__ = ["CustomerState", "apply_customer", "encode_customer", "decode_customer",
           "is_negative", "session_summary"]

#: Traits kept per customer; identify calls can carry anything, state must stay small.
MAX_TRAITS = 50
#: Latest tickets and web sessions kept for windowed counts (state stays bounded).
MAX_RECENT = 50

#: Fields of a ``CustomerState.recent_tickets`` entry.
T_TIME, T_ID, T_HIGH, T_NEGATIVE, T_BAD, T_REOPENED, T_ESCALATED, T_SOLVED = range(8)

#: Words that mark a ticket as negative (stems, matched in lower-cased subject and text). A
#: lexicon, not a model: cheap, explainable, and good enough as one churn feature among many.
NEGATIVE_WORDS = (
    "unacceptable", "terrible", "awful", "worst", "ridiculous", "frustrat", "angry", "furious",
    "disappoint", "useless", "cancel", "refund", "never again", "fed up", "waste", "joke",
    "scam", "complain", "still not", "again!",
)


def is_negative(*texts: str | None) -> bool:
    """Whether any of ``texts`` uses negative wording (``NEGATIVE_WORDS``)."""
    low = " ".join(t for t in texts if t).lower()
    return any(w in low for w in NEGATIVE_WORDS)


class CustomerState(msgspec.Struct, kw_only=True):
    customer_id: str
    first_time: float = 0.0
    last_time: float = 0.0
    traits: dict[str, Any] = {}
    tickets_created: int = 0
    tickets_solved: int = 0
    tickets_open: int = 0
    high_priority_tickets: int = 0
    bad_satisfaction: int = 0
    #: Solved tickets reopened (a solved ticket's later update not solved or closed).
    reopened: int = 0
    #: Tickets tagged or set ``escalated``.
    escalations: int = 0
    #: Tickets whose subject or text uses negative wording (``is_negative``).
    negative_tickets: int = 0
    #: The latest ``MAX_RECENT`` tickets, for windowed counts: ``[created, id, high,
    #: negative, bad, reopened, escalated, solved]`` (flags 0/1; reopened a count). Indexed by
    #: the ``T_*`` constants.
    recent_tickets: list[list[Any]] = []
    # --- web sessions, from their summaries --------------------------------------------------
    sessions: int = 0
    orders: int = 0
    revenue: float = 0.0
    #: Latest ``MAX_RECENT`` sessions: ``[end time, friction signals, abandoned (0/1), id]``.
    recent_sessions: list[list[Any]] = []
    # --- subscription ---------------------------------------------------------------------
    plan: str | None = None
    mrr: float = 0.0
    subscribed_at: float | None = None
    renewals: int = 0
    #: When the customer cancelled or did not renew (None while subscribed).
    churned_at: float | None = None
    # --- churn model (``models.churn``) -----------------------------------------------------
    churn_risk: float | None = None
    #: Whether a churn alert is out and not yet re-armed (hysteresis).
    churn_alerted: bool = False
    #: The churn model's memory: predictions waiting for their label.
    model_state: dict[str, Any] = {}
    #: Highest offset applied per origin; see ``detectors.session.SessionState.positions``.
    positions: dict[str, int] = {}


def apply_customer(
    state: CustomerState | None,
    events: Sequence[Any],
    origin: tuple[str, int] | None = None,
) -> CustomerState:
    """Fold one message's support events into the customer's state (replays skipped)."""
    if state is None:
        state = CustomerState(customer_id=events[0].customer_id if events else "")
    elif is_replay(state.positions, origin):
        return state
    for e in events:
        if state.first_time == 0.0:
            state.first_time = e.time
        state.last_time = max(state.last_time, e.time)
        if type(e) is ev.Identify:
            traits = {**state.traits, **e.traits}
            state.traits = dict(list(traits.items())[:MAX_TRAITS])
        elif type(e) is ev.Ticket:
            _ticket(state, e)
        elif type(e) is ev.SessionSummary:
            _session(state, e)
        elif type(e) is ev.Subscription:
            _subscription(state, e)
    if origin is not None:
        state.positions[origin[0]] = origin[1]
    return state


def push_recent(items: list[Any], item: Any, cap: int = MAX_RECENT) -> None:
    """Append ``item``, dropping the oldest past ``cap`` (state lists stay bounded)."""
    items.append(item)
    if len(items) > cap:
        del items[0]


def _ticket(state: CustomerState, e: ev.Ticket) -> None:
    entry = next((t for t in reversed(state.recent_tickets) if t[T_ID] == e.ticket_id), None)
    if entry is None:
        # [created, id, high, negative, bad, reopened, escalated, solved]
        entry = [e.time, e.ticket_id, 0, 0, 0, 0, 0, 0]
        push_recent(state.recent_tickets, entry)
        state.tickets_created += 1
        state.tickets_open += 1
        if e.priority in ("high", "urgent"):
            entry[T_HIGH] = 1
            state.high_priority_tickets += 1
        if is_negative(e.subject, e.text):
            entry[T_NEGATIVE] = 1
            state.negative_tickets += 1
    if e.action == "solved":
        if not entry[T_SOLVED]:
            entry[T_SOLVED] = 1
            state.tickets_solved += 1
            state.tickets_open = max(0, state.tickets_open - 1)
    elif entry[T_SOLVED] and e.status not in ("solved", "closed"):
        entry[T_SOLVED] = 0
        entry[T_REOPENED] += 1
        state.reopened += 1
        state.tickets_open += 1
    if e.satisfaction == "bad" and not entry[T_BAD]:
        entry[T_BAD] = 1
        state.bad_satisfaction += 1
    if (e.status == "escalated" or "escalated" in e.tags) and not entry[T_ESCALATED]:
        entry[T_ESCALATED] = 1
        state.escalations += 1


def _session(state: CustomerState, e: ev.SessionSummary) -> None:
    if any(s[3] == e.id for s in state.recent_sessions):
        return  # sent again after a crash: already counted
    state.sessions += 1
    if e.converted:
        state.orders += 1
        state.revenue += e.revenue
    abandoned = 1 if e.abandoned_step is not None and not e.converted else 0
    push_recent(state.recent_sessions, [e.time, sum(e.friction.values()), abandoned, e.id])


def _subscription(state: CustomerState, e: ev.Subscription) -> None:
    if e.plan is not None:
        state.plan = e.plan
    if e.mrr is not None:
        state.mrr = e.mrr
    if e.action == "started":
        if state.subscribed_at is None or state.churned_at is not None:
            state.subscribed_at = e.time
        state.churned_at = None
    elif e.action == "renewed":
        state.renewals += 1
        state.churned_at = None
    else:
        state.churned_at = e.time


def session_summary(outcome: dict[str, Any]) -> ev.SessionSummary | None:
    """The customer-side summary of an ended session (``detectors.engine.outcome``), or None
    for an anonymous session. Its id is derived from the session, so a re-send is known."""
    customer = outcome.get("customer_id")
    if not customer:
        return None
    sid = outcome["session_id"]
    return ev.SessionSummary(
        id=f"summary:{sid}:{outcome['start']!r}",
        time=outcome["end"],
        session_id=sid,
        customer_id=customer,
        device=outcome.get("device"),
        converted=outcome["converted"],
        # Clamped to the summary's bounds (detectors.bounds), which the customers agent's
        # decode enforces: a session whose events span years (times are only bounded by
        # datetime's range) must not cost its customer the whole summary.
        revenue=min(outcome["revenue"], MAX_MONEY_SUM),
        orders=min(int(outcome.get("orders") or outcome["converted"]), 1_000_000_000),
        cart_value=outcome["cart_value"],
        abandoned_step=outcome["abandoned_step"],
        friction=dict(outcome["friction"]),
        seconds=min(max(outcome["end"] - outcome["start"], 0.0), MAX_SECONDS),
    )


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(CustomerState)
_FLOATS = float_fields(CustomerState)


def encode_customer(state: CustomerState) -> bytes:
    """The state as JSON; non-finite floats are stored as their defaults
    (``detectors.session.finite``: JSON cannot hold them, and ``null`` would not read back)."""
    return _encoder.encode(finite(state, _FLOATS))


def decode_customer(data: bytes) -> CustomerState:
    return decode_lenient(data, _decoder, CustomerState, _FLOATS)  # type: ignore[no-any-return]
