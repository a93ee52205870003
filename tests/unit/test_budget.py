"""State budgets (``detectors.budget``): the oldest evidence goes first, and it is counted."""

from __future__ import annotations

from detectors.budget import PROTECTED, encode_customer_within, encode_session_within
from detectors.customer import CustomerState, decode_customer
from detectors.session import SessionState, decode_state


def test_a_state_within_budget_is_left_alone() -> None:
    state = SessionState(session_id="s", detector_state={"rage_click": {"t": [1.0, 2.0]}})
    data, dropped = encode_session_within(state, 4096)
    assert dropped == 0 and decode_state(data) == state


def test_session_drops_the_largest_plain_memories_before_the_protected_ones() -> None:
    memory = {"journey": {"step": "pay", "pad": "j" * 3000},
              "_holdout": {"chat": ["x" * 3000]},
              "form_error_loop": {"fields": ["f" * 1000] * 6},
              "dead_click.last": [1.0, "t" * 2000, 0],
              "rage_click": {"t": [1.0]}}
    state = SessionState(session_id="s", detector_state=dict(memory))
    data, dropped = encode_session_within(state, 8 * 1024)
    assert len(data) <= 8 * 1024
    assert dropped == 2 and set(state.detector_state) == {"journey", "_holdout", "rage_click"}
    assert set(PROTECTED) >= {"journey", "_holdout"}


def test_customer_drops_the_oldest_history_first_then_traits() -> None:
    state = CustomerState(
        customer_id="c",
        recent_tickets=[[float(i), "t" * 250 + str(i), 0, 0, 0, 0, 0, 0] for i in range(50)],
        recent_sessions=[[float(i), 0, 0, "s" * 250 + str(i)] for i in range(50)],
        model_state={"churn": [[{"f": 1.0}, 0.5, float(i)] for i in range(40)]},
        traits={"plan": "pro", "bio": ["b" * 2048] * 100},
    )
    data, dropped = encode_customer_within(state, 16 * 1024)
    back = decode_customer(data)
    assert len(data) <= 16 * 1024 and dropped > 0
    assert back.traits == {"plan": "pro"}  # the largest trait went; the plan stayed
    # Whatever is left of a history is its newest end.
    for kept, field in ((back.recent_sessions, 3), (back.recent_tickets, 1)):
        if kept:
            assert kept[-1][field].endswith("49")
    assert dropped == (100 - len(back.recent_sessions) - len(back.recent_tickets)
                       + 40 - len(back.model_state["churn"]) + 1)


def test_the_shell_counts_what_the_budgets_dropped() -> None:
    from prometheus_client import CollectorRegistry

    from streams.budgets import state_writers
    from streams.metrics import Metrics
    from streams.settings import Settings

    metrics = Metrics(CollectorRegistry())
    dump_session, dump_customer = state_writers(
        Settings(session_state_budget=4096, customer_state_budget=4096), metrics)
    big = SessionState(session_id="s", detector_state={"a": ["x" * 3000], "b": ["y" * 3000]})
    assert len(dump_session(big)) <= 4096
    assert len(dump_customer(CustomerState(customer_id="c", traits={"t": "z" * 5000}))) <= 4096

    def dropped(table: str) -> float | None:
        return metrics.registry.get_sample_value(
            "frictionwatch_state_evidence_dropped_total", {"table": table})

    assert (dropped("sessions"), dropped("customers")) == (1.0, 1.0)
