"""The shell's side of the state budgets (``detectors.budget``): write a session's or a
customer's state within its budget, and count the evidence dropped to fit it."""

from __future__ import annotations

from collections.abc import Callable

from detectors.budget import encode_customer_within, encode_session_within
from detectors.customer import CustomerState
from detectors.session import SessionState
from streams.metrics import Metrics
from streams.settings import Settings

__all__ = ["state_writers"]


def state_writers(settings: Settings, metrics: Metrics) -> tuple[
        Callable[[SessionState], bytes], Callable[[CustomerState], bytes]]:
    """``(dump_session, dump_customer)``: encoders for the sessions and customers tables that
    keep each state within ``settings.session_state_budget`` / ``customer_state_budget``
    (``frictionwatch_state_evidence_dropped_total{table}`` counts what that cost)."""
    m_sessions = metrics.state_evidence_dropped.labels(table="sessions")
    m_customers = metrics.state_evidence_dropped.labels(table="customers")
    session_budget, customer_budget = settings.session_state_budget, settings.customer_state_budget

    def dump_session(state: SessionState) -> bytes:
        data, dropped = encode_session_within(state, session_budget)
        if dropped:
            m_sessions.inc(dropped)
        return data

    def dump_customer(state: CustomerState) -> bytes:
        data, dropped = encode_customer_within(state, customer_budget)
        if dropped:
            m_customers.inc(dropped)
        return data

    return dump_session, dump_customer
