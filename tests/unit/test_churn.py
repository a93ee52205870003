"""Customer state for churn (tickets, session summaries, subscriptions), the churn scorer
(labels by observation window, no leakage, hysteresis, explanations, checkpoints) and the
simulated customers it is measured on."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from detectors import events as ev
from detectors.customer import (
    CustomerState,
    apply_customer,
    decode_customer,
    encode_customer,
    session_summary,
)
from detectors.engine import outcome
from detectors.session import SessionState
from models.churn import DAY, ChurnScorer, churn_features
from streams.sim.lifecycle import LifecycleConfig, simulate_customers

C = "cust_1"


def _sub(t: float, action: str, cid: str = C, **kw: Any) -> ev.Subscription:
    return ev.Subscription(id=f"{cid}:{action}:{t}", time=t, session_id=cid, customer_id=cid,
                           action=action, **kw)  # type: ignore[arg-type]


def _ticket(t: float, tid: str, action: str = "created", cid: str = C, **kw: Any) -> ev.Ticket:
    return ev.Ticket(id=f"{tid}:{action}:{t}", time=t, session_id=cid, customer_id=cid,
                     ticket_id=tid, action=action, **kw)  # type: ignore[arg-type]


def _summary(t: float, sid: str, friction: int, cid: str = C, abandoned: bool = False
             ) -> ev.SessionSummary:
    return ev.SessionSummary(id=f"summary:{sid}", time=t, session_id=sid, customer_id=cid,
                             friction={"rage_click": friction} if friction else {},
                             abandoned_step=2 if abandoned else None)


class _Spy:
    """Wraps a model and records what it is taught."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.taught: list[tuple[dict[str, float], bool]] = []

    def __getitem__(self, key: str) -> Any:
        return self.model[key]

    def predict_proba_one(self, x: dict[str, float]) -> dict[bool, float]:
        return self.model.predict_proba_one(x)  # type: ignore[no-any-return]

    def learn_one(self, x: dict[str, float], y: bool) -> None:
        self.taught.append((copy.deepcopy(x), y))
        self.model.learn_one(x, y)


def test_customer_state_counts_reopens_escalations_and_wording_once() -> None:
    state = apply_customer(None, [
        _ticket(0.0, "9", priority="urgent", subject="Still not fixed", text="Ridiculous."),
        _ticket(1.0, "9", "updated", status="open", tags=("escalated",)),
        _ticket(2.0, "9", "updated", status="open", tags=("escalated",)),  # counted once
        _ticket(3.0, "9", "solved", status="solved", satisfaction="bad"),
        _ticket(4.0, "9", "updated", status="open"),  # reopened
        _ticket(5.0, "9", "solved", status="solved", satisfaction="bad"),  # rated once
        _ticket(6.0, "10", text="How do I add a teammate?"),
    ])
    assert (state.tickets_created, state.tickets_open, state.tickets_solved) == (2, 1, 2)
    assert (state.escalations, state.reopened, state.bad_satisfaction) == (1, 1, 1)
    assert (state.negative_tickets, state.high_priority_tickets) == (1, 1)
    assert decode_customer(encode_customer(state)) == state


def test_subscriptions_set_plan_and_churn_and_a_session_summary_counts_once() -> None:
    state = apply_customer(None, [_sub(0.0, "started", plan="pro", mrr=99.0),
                                  _summary(10.0, "s1", friction=3, abandoned=True),
                                  _summary(10.0, "s1", friction=3, abandoned=True)])
    assert (state.plan, state.mrr, state.sessions, len(state.recent_sessions)) == ("pro", 99.0,
                                                                                   1, 1)
    state = apply_customer(state, [_sub(20.0, "cancelled")])
    assert state.churned_at == 20.0
    state = apply_customer(state, [_sub(30.0, "started")])  # back: a new subscription
    assert (state.churned_at, state.subscribed_at) == (None, 30.0)


def test_the_session_agent_summarises_an_identified_sessions_outcome() -> None:
    s = SessionState(session_id="s", customer_id=C, first_time=5.0, last_time=65.0,
                     cart_value=80.0, max_checkout_step=2, checkout_step=2,
                     friction={"dead_click": 2})
    summary = session_summary(outcome(s, 2000.0))
    assert summary is not None and summary.customer_id == C and summary.time == 65.0
    assert (summary.abandoned_step, summary.friction, summary.seconds) == (2, {"dead_click": 2},
                                                                          60.0)
    assert session_summary(outcome(SessionState(session_id="anon"), 0.0)) is None


def test_windowed_features_see_recent_trouble_only() -> None:
    state = apply_customer(None, [_sub(0.0, "started", plan="basic", mrr=29.0),
                                  _ticket(1 * DAY, "old", satisfaction="bad"),
                                  _summary(2 * DAY, "s0", friction=4),
                                  _ticket(80 * DAY, "new", priority="high"),
                                  _summary(85 * DAY, "s1", friction=2, abandoned=True)])
    x = churn_features(state, 100 * DAY)
    assert (x["tickets_30d"], x["tickets_90d"], x["high_priority_30d"]) == (1.0, 1.0, 1.0)
    assert (x["bad_rating_90d"], x["abandoned_checkouts_30d"], x["sessions_90d"]) == (0, 1, 1)
    assert x["plan=basic"] == 1.0


def test_predictions_are_labelled_by_the_observation_window() -> None:
    scorer = ChurnScorer(record=True, snapshot_every_days=7, window_days=30)
    stays = apply_customer(None, [_sub(0.0, "started", cid="stays")])
    leaves = apply_customer(None, [_sub(0.0, "started", cid="leaves")])
    late = apply_customer(None, [_sub(0.0, "started", cid="late")])
    for s in (stays, leaves, late):
        scorer.update(s)
    leaves = apply_customer(leaves, [_sub(10 * DAY, "cancelled", cid="leaves")])
    scorer.update(leaves)  # churned within the window: learned when the window closes
    assert scorer.history == [] and len(scorer.pending) == 1
    stays = apply_customer(stays, [_sub(31 * DAY, "renewed", cid="stays")])
    scorer.update(stays)  # the window closed: both learned
    assert sorted(scorer.history) == [(0.5, False, 0.0), (0.5, True, 0.0)]
    late = apply_customer(late, [_sub(40 * DAY, "cancelled", cid="late")])
    scorer.update(late)  # churned 40 days after the prediction: it stayed within the window
    assert scorer.history[-1] == (0.5, False, 0.0)
    assert scorer.learned == 3


def test_a_feature_computed_after_the_prediction_cannot_change_what_is_learned() -> None:
    spy = _Spy(ChurnScorer().model)
    scorer = ChurnScorer(model=spy)
    state = apply_customer(None, [_sub(0.0, "started", plan="pro", mrr=99.0)])
    scorer.update(state)
    predicted = copy.deepcopy(state.model_state["churn"][0][0])
    # After the prediction: angry tickets and friction, then the churn.
    state = apply_customer(state, [_ticket(DAY, "1", priority="urgent", text="unacceptable"),
                                   _summary(2 * DAY, "s", friction=5, abandoned=True)])
    scorer.update(state)  # within snapshot_every: scored, not snapshotted again
    state = apply_customer(state, [_sub(3 * DAY, "cancelled")])
    scorer.update(state)
    scorer.update(apply_customer(None, [_sub(40 * DAY, "started", cid="other")]))
    assert spy.taught[0] == (predicted, True)
    assert predicted["tickets_30d"] == 0.0 and predicted["friction_signals_30d"] == 0.0


def _taught(n: int = 400) -> ChurnScorer:
    """A scorer taught that customers with bad ratings leave."""
    scorer = ChurnScorer(min_learned=100, alert_at=0.7, rearm_at=0.4)
    for i in range(n):
        cid, bad = f"c{i}", i % 2 == 1
        t0 = i * DAY
        state = apply_customer(None, [_sub(t0, "started", cid=cid),
                                      _ticket(t0, f"t{i}", "solved", cid=cid,
                                              satisfaction="bad" if bad else "good")])
        scorer.update(state)
        end = _sub(t0 + (5 if bad else 31) * DAY, "cancelled" if bad else "renewed", cid=cid)
        scorer.update(apply_customer(state, [end]))
    scorer.update(apply_customer(None, [_sub((n + 60) * DAY, "started", cid="clock")]))
    return scorer


def test_risk_alerts_once_with_its_factors_until_it_falls_back() -> None:
    scorer = _taught()
    state = apply_customer(None, [_sub(1000 * DAY, "started", plan="pro", mrr=99.0)])
    assert scorer.update(state) is None and state.churn_risk is not None
    state = apply_customer(state, [_ticket(1001 * DAY, "x", "solved", satisfaction="bad")])
    alert = scorer.update(state)
    assert alert is not None and state.churn_alerted
    data = alert["data"]
    assert data["reason"] == "churn_risk" and data["risk"] >= 0.7
    assert C not in str(alert) and alert["subject"] == data["customer"]
    assert data["revenue_at_risk"] == pytest.approx(12 * 99.0 * data["risk"], abs=0.01)
    assert any(f.startswith("1 bad satisfaction rating(s) in the last") for f in data["factors"])
    # Still high: no second alert. Once the bad rating is 90 days old, the risk falls below
    # the re-arm threshold and the next rise may alert again.
    state = apply_customer(state, [_ticket(1002 * DAY, "y")])
    assert scorer.update(state) is None
    state = apply_customer(state, [_ticket(1100 * DAY, "z", "solved", satisfaction="good")])
    assert scorer.update(state) is None and not state.churn_alerted
    state = apply_customer(state, [_ticket(1101 * DAY, "w", "solved", satisfaction="bad")])
    assert scorer.update(state) is not None


def test_a_cold_model_does_not_alert() -> None:
    scorer = ChurnScorer(alert_at=0.5, rearm_at=0.4)  # 0.5 is what it answers untrained
    state = apply_customer(None, [_sub(0.0, "started")])
    assert scorer.update(state) is None and not state.churn_alerted


def test_a_restored_checkpoint_gives_the_same_risks() -> None:
    scorer = _taught(200)
    restored = ChurnScorer()
    restored.restore(scorer.checkpoint())
    probe = apply_customer(None, [_sub(0.0, "started"), _ticket(DAY, "1", satisfaction="bad")])
    x = churn_features(probe, 2 * DAY)
    assert restored.model.predict_proba_one(x) == scorer.model.predict_proba_one(x)
    assert (restored.learned, restored.pending, restored.watermark) == (
        scorer.learned, scorer.pending, scorer.watermark)


def test_the_plan_is_learned_and_named_only_for_the_customers_own_plan() -> None:
    # Given only as 1.0, a plan feature has no variance through the scaler and is never
    # learned: each other plan seen must come as 0.0.
    scorer = ChurnScorer(min_learned=100, alert_at=0.7, rearm_at=0.4)
    for i in range(400):
        cid, plan = f"c{i}", ("basic", "pro")[i % 2]
        state = apply_customer(None, [_sub(i * DAY, "started", cid=cid, plan=plan)])
        scorer.update(state)
        leaves = plan == "basic"
        end = _sub((i + (5 if leaves else 31)) * DAY, "cancelled" if leaves else "renewed",
                   cid=cid)
        scorer.update(apply_customer(state, [end]))
    scorer.update(apply_customer(None, [_sub(460 * DAY, "started", cid="clock")]))
    assert scorer.plans == ["basic", "pro"]
    basic = apply_customer(None, [_sub(500 * DAY, "started", cid="b", plan="basic")])
    pro = apply_customer(None, [_sub(500 * DAY, "started", cid="p", plan="pro")])
    scorer.update(basic)
    scorer.update(pro)
    assert basic.churn_risk is not None and pro.churn_risk is not None
    assert basic.churn_risk > 0.7 > 0.3 > pro.churn_risk
    x = churn_features(pro, 500 * DAY, scorer.plans)
    assert (x["plan=basic"], x["plan=pro"]) == (0.0, 1.0)
    assert "on the basic plan" not in scorer.explain(pro, x)


def test_being_a_business_customer_is_learned() -> None:
    # Given only as 1.0, "b2b" has no variance through the scaler and is never learned.
    scorer = ChurnScorer(min_learned=100, alert_at=0.7, rearm_at=0.4)

    def start(t: float, cid: str, company: bool) -> Any:
        first = [ev.Identify(id=f"{cid}:id", time=t, session_id=cid, customer_id=cid,
                             traits={"company": "Acme"})] if company else []
        return apply_customer(None, [*first, _sub(t, "started", cid=cid, plan="pro")])

    for i in range(400):
        cid, company = f"c{i}", i % 2 == 0
        state = start(i * DAY, cid, company)
        scorer.update(state)
        end = _sub((i + (5 if company else 31)) * DAY, "cancelled" if company else "renewed",
                   cid=cid)
        scorer.update(apply_customer(state, [end]))
    scorer.update(apply_customer(None, [_sub(460 * DAY, "started", cid="clock")]))
    business, person = start(500 * DAY, "b", True), start(500 * DAY, "p", False)
    scorer.update(business)
    scorer.update(person)
    assert business.churn_risk is not None and person.churn_risk is not None
    assert business.churn_risk > 0.7 > 0.3 > person.churn_risk


def test_a_checkpoint_from_before_the_plans_were_kept_is_still_taken() -> None:
    from models import checkpoint

    scorer = _taught(200)
    old = {name: getattr(scorer, name) for name in ChurnScorer.LEARNED if name != "plans"}
    restored = ChurnScorer()
    restored.restore(checkpoint.dumps(old))
    assert restored.learned == scorer.learned and restored.plans == []


def test_simulated_customers_are_deterministic_ordered_and_churn_with_trouble() -> None:
    config = LifecycleConfig(customers=300, days=120, seed=5)
    events = list(simulate_customers(config))
    assert events == list(simulate_customers(config))
    assert all(a.time <= b.time for a, b in zip(events, events[1:], strict=False))
    states: dict[str, CustomerState] = {}
    for e in events:
        states[e.customer_id] = apply_customer(states.get(e.customer_id), [e])
    churned = [s for s in states.values() if s.churned_at is not None]
    stayed = [s for s in states.values() if s.churned_at is None]
    assert churned and stayed

    def per_session(group: list[CustomerState], what: Any) -> float:
        return sum(map(what, group)) / max(sum(len(s.recent_sessions) for s in group), 1)

    def friction(s: CustomerState) -> int:
        return sum(r[1] for r in s.recent_sessions)

    def tickets(s: CustomerState) -> int:
        return len(s.recent_tickets)

    # Churn depends on friction and support history: churners had more of both.
    assert per_session(churned, friction) > 1.4 * per_session(stayed, friction)
    assert per_session(churned, tickets) > 1.4 * per_session(stayed, tickets)
