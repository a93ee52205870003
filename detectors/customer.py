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
from detectors.session import is_replay

__all__ = ["CustomerState", "apply_customer", "encode_customer", "decode_customer"]

#: Traits kept per customer; identify calls can carry anything, state must stay small.
MAX_TRAITS = 50


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
            if e.action == "created":
                state.tickets_created += 1
                state.tickets_open += 1
                if e.priority in ("high", "urgent"):
                    state.high_priority_tickets += 1
            elif e.action == "solved":
                state.tickets_solved += 1
                state.tickets_open = max(0, state.tickets_open - 1)
            if e.satisfaction == "bad":
                state.bad_satisfaction += 1
    if origin is not None:
        state.positions[origin[0]] = origin[1]
    return state


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(CustomerState)


def encode_customer(state: CustomerState) -> bytes:
    return _encoder.encode(state)


def decode_customer(data: bytes) -> CustomerState:
    return _decoder.decode(data)
