"""State-size budgets: a session's or a customer's stored state kept under a byte budget.

Input bounds (``detectors.bounds``) cap every field, but state accumulates: detector memories,
ticket and session histories, the churn model's pending predictions, traits. A state whose
encoded size passes its budget drops its oldest evidence until it fits, and says how much it
dropped so the shell can count it (``frictionwatch_state_evidence_dropped_total{table}``):
stored state then always fits in one Kafka record of the table's changelog (the producer
refuses records over its 1 MiB request size, and that used to stop the worker).

What is dropped, in order:

- session: whole detector memories, the largest first (a detector forgets what it was
  following in this session and starts afresh; the journey position, the alert policy's
  memory and holdout exposures go last, as outcomes and experiments read them);
- customer: the oldest half of the session history, the ticket history, then of each of the
  models' pending predictions, until each is empty; then traits, the largest first.

Only a state over its budget pays more than one ``len``: it is encoded again after each drop
(halving keeps that to a few passes).

>>> from detectors.session import SessionState
>>> state = SessionState(session_id="s", detector_state={"rage_click": {"t": [1.0] * 5000}})
>>> data, dropped = encode_session_within(state, 4096)
>>> len(data) <= 4096, dropped, state.detector_state
(True, 1, {})
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from detectors.customer import CustomerState, encode_customer
from detectors.session import SessionState, encode_state

__all__ = ["encode_customer_within", "encode_session_within", "fit_customer", "fit_session"]

#: Session memories dropped last: outcomes (the journey step), the alert policy and the
#: holdout's exposures read them when the session ends.
PROTECTED = ("journey", "_alerting", "_holdout")


def encode_session_within(state: SessionState, budget: int) -> tuple[bytes, int]:
    """``encode_state(state)``, after ``fit_session`` when it is over ``budget`` bytes: the
    bytes and how many pieces of evidence were dropped."""
    data = encode_state(state)
    if len(data) <= budget:
        return data, 0
    dropped = fit_session(state, budget)
    return encode_state(state), dropped


def encode_customer_within(state: CustomerState, budget: int) -> tuple[bytes, int]:
    """``encode_customer(state)``, after ``fit_customer`` when it is over ``budget`` bytes."""
    data = encode_customer(state)
    if len(data) <= budget:
        return data, 0
    dropped = fit_customer(state, budget)
    return encode_customer(state), dropped


def fit_session(state: SessionState, budget: int) -> int:
    """Drop detector memories, the largest first (``PROTECTED`` ones last), until the encoded
    state fits ``budget``; how many were dropped."""
    memory = state.detector_state
    dropped = 0
    while memory and len(encode_state(state)) > budget:
        sizes = {k: len(encode_state(SessionState(session_id="", detector_state={k: v})))
                 for k, v in memory.items()}
        plain = [k for k in sizes if k not in PROTECTED]
        victim = max(plain or sizes, key=sizes.__getitem__)
        del memory[victim]
        dropped += 1
    return dropped


def fit_customer(state: CustomerState, budget: int) -> int:
    """Drop the oldest evidence (halves of histories, then traits) until the encoded state
    fits ``budget``; how many entries were dropped."""
    histories: list[list[Any]] = [state.recent_sessions, state.recent_tickets]
    histories += [v for v in state.model_state.values() if type(v) is list]
    dropped = 0
    for items in histories:
        dropped += _halve_until(items, lambda: len(encode_customer(state)) <= budget)
        if len(encode_customer(state)) <= budget:
            return dropped
    traits = state.traits
    while traits and len(encode_customer(state)) > budget:
        sizes = {k: len(repr(v)) for k, v in traits.items()}
        del traits[max(sizes, key=sizes.__getitem__)]
        dropped += 1
    return dropped


def _halve_until(items: list[Any], fits: Callable[[], bool]) -> int:
    """Drop the oldest half of ``items`` (at least one) until ``fits()`` or it is empty."""
    dropped = 0
    while items and not fits():
        n = max(1, len(items) // 2)
        del items[:n]
        dropped += n
    return dropped
