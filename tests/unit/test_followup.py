"""Follow-ups of abandoned carts and checkouts: when they are due, when they are not, both arms'
records, the simulator's ground truth, and the lift the report shows."""

from __future__ import annotations

import math

import pytest

from detectors.engine import Engine, Outputs
from detectors.events import (
    CartUpdated,
    CheckoutStarted,
    CheckoutStepViewed,
    OrderCompleted,
    PageView,
)
from detectors.followup import FollowUps
from detectors.holdout import Experiment, customer_unit
from detectors.session import SessionProcessor
from models.experiments import Ledger
from streams import detection
from streams.backtest import run_simulated
from streams.report import ReportData, headline
from streams.settings import load
from streams.sim import SimConfig, Simulator

EXP = Experiment("followup", "followup", control_share=0.5, salt="t")


def _engine(delay: float = 3600.0, exp: Experiment | None = EXP) -> Engine:
    return Engine(SessionProcessor(), session_gap=1800.0, explicit_gap=14_400.0,
                  followups=FollowUps(exp, delay=delay))


def _cart(sid: str, t: float, customer: str | None = "c1", value: float = 80.0) -> list:
    return [PageView(id=f"{sid}-p", time=t, session_id=sid, customer_id=customer),
            CartUpdated(id=f"{sid}-c", time=t + 5, session_id=sid, customer_id=customer,
                        action="add", cart_value=value)]


def _both_arms(n: int = 40) -> tuple[str, str]:
    """A customer of each arm."""
    found: dict[str, str] = {}
    for i in range(n):
        found.setdefault(EXP.arm(customer_unit(f"c{i}")), f"c{i}")
    return found["control"], found["treatment"]


def test_an_abandoned_cart_is_followed_up_after_the_delay_and_an_order_cancels_it() -> None:
    control, treated = _both_arms()
    eng = _engine()
    for cid in (control, treated):
        eng.feed(_cart(f"s-{cid}", 0.0, cid))
    eng.feed(_cart("s-buyer", 0.0, "buyer"))
    # The buyer comes back in another session (another id) and orders before the delay.
    eng.feed([OrderCompleted(id="o", time=2500.0, session_id="s-back", customer_id="buyer",
                             revenue=80.0)])
    out = eng.advance(3604.0)
    assert out.followups == []  # due at last event + delay = 3605
    out = eng.advance(3605.0)
    assert [d["data"]["customer_id"] for d in out.followups] == [treated]
    doc = out.followups[0]
    assert doc["type"] == "io.frictionwatch.cart.abandoned" and doc["specversion"] == "1.0"
    assert doc["data"]["cart_value"] == 80.0 and doc["subject"] == f"s-{treated}"
    exposures = {r["unit"]: r for r in out.experiments if r["type"] == "exposure"}
    assert {r["arm"] for r in exposures.values()} == {"control", "treatment"}
    assert customer_unit("buyer") not in exposures  # ordered meanwhile: no follow-up at all


def test_the_same_session_id_coming_back_to_order_cancels_it_and_anonymous_gets_none() -> None:
    eng = _engine(exp=None)
    eng.feed(_cart("s1", 0.0, "c1"))
    eng.feed(_cart("anon", 0.0, None))
    eng.advance(1900.0)  # both expired; s1's follow-up is due at 3605
    # s1 comes back (its id, no customer id in these events) and orders.
    eng.feed([OrderCompleted(id="o", time=3000.0, session_id="s1", revenue=80.0)])
    out = eng.advance(10_000.0)
    assert out.followups == [] and eng.followups is not None and not eng.followups.pending


def test_a_checkout_is_named_with_its_friction_and_ids_are_deterministic() -> None:
    def run() -> dict:
        eng = _engine(delay=600.0, exp=None)  # shorter than the gap: sent at expiry
        eng.feed([*_cart("s1", 0.0, "c1"),
                  CheckoutStarted(id="k", time=10.0, session_id="s1", customer_id="c1"),
                  CheckoutStepViewed(id="v", time=11.0, session_id="s1", customer_id="c1",
                                     step=2)])
        out = eng.advance(5000.0)
        (doc,) = out.followups
        return doc

    doc = run()
    assert doc["type"] == "io.frictionwatch.checkout.abandoned"
    assert doc["data"]["kind"] == "abandoned_checkout" and doc["data"]["checkout_step"] == 2
    assert doc["time"].startswith("1970-01-01T00:30:11")  # expiry: last event + gap
    assert run()["id"] == doc["id"]


def test_later_sessions_of_an_exposed_customer_report_their_orders() -> None:
    _, treated = _both_arms()
    eng = _engine()
    eng.feed(_cart("s1", 0.0, treated))
    eng.advance(3605.0)
    eng.feed([PageView(id="b", time=4000.0, session_id="s2", customer_id=treated),
              OrderCompleted(id="o2", time=4100.0, session_id="s2", customer_id=treated,
                             revenue=80.0)])
    out = eng.close()
    (res,) = [r for r in out.experiments if r["type"] == "result"]
    assert (res["experiment"], res["arm"], res["converted"], res["revenue"]) == (
        "followup", "treatment", True, 80.0)
    led = Ledger([EXP])
    led.add({"type": "exposure", "experiment": "followup", "arm": "treatment",
             "unit": res["unit"], "unit_kind": "customer", "time": 3605.0, "delivered": True})
    led.add(res)
    led.close(math.inf)
    assert led.totals["followup"]["treatment"].conversions == 1


def test_follow_ups_add_return_visits_and_change_nothing_else_in_the_simulation() -> None:
    def run(**kw: float) -> list:
        sim = Simulator(SimConfig(seed=3, events_per_second=20, duration=2400, **kw))
        list(sim.messages())
        return sim.outcomes

    base = [(o.session_id, o.converted, o.end) for o in run()]
    on = run(followup_base=0.5, followup_effect=0.5, followup_delay=60.0)
    returns = {o.returned for o in on if o.returned}
    assert returns  # some shoppers came back...
    back = [o for o in on if o.session_id in returns and o.finished]  # not cut by the end
    assert back and all(o.converted for o in back)  # ...and ordered
    # Everyone else did what they did without follow-ups (the returns draw from their own
    # stream).
    assert [(o.session_id, o.converted, o.end) for o in on
            if o.session_id not in returns] == base
    with pytest.raises(ValueError):
        SimConfig(followup_base=0.6, followup_effect=0.6)


@pytest.fixture(scope="module")
def simulated() -> tuple[Simulator, object, object]:
    settings = load(followups=True, followup_delay=1800.0, holdout_control_share=0.5)
    exps = detection.experiments(settings)
    sim = Simulator(SimConfig(seed=5, events_per_second=10, duration=4800.0,
                              customers=10**8, followup_base=0.1, followup_effect=0.5,
                              followup_delay=1800.0, chat_experiment=exps[0],
                              followup_experiment=exps[1]))
    out = run_simulated(sim.messages(), detection.engine(settings))
    return sim, out, settings


def test_simulated_returns_follow_the_worker_s_arms_and_the_report_shows_the_lift(
        simulated) -> None:  # type: ignore[no-untyped-def]
    sim, out, settings = simulated
    outcomes = {o.session_id: o for o in sim.outcomes}
    # Every trigger the core sent went to a treatment-arm customer the simulator followed up.
    assert out.followups
    for doc in out.followups:
        o = outcomes[doc["data"]["session_id"]]
        assert o.followup_arm == "treatment" and o.customer_id == doc["data"]["customer_id"]
    caused = [o for o in sim.outcomes if o.followup_return == "caused"]
    assert caused and all(o.followup_arm == "treatment" for o in caused)
    data = ReportData("sim", outcomes=out.outcomes, experiments=out.experiments)
    line = next(h for h in headline(data, settings) if h.startswith("followup"))
    assert "conversion lift +" in line, line


class _Counting(FollowUps):
    """Follow-ups that remember each order they were told of."""

    def __init__(self) -> None:
        super().__init__(None, delay=3600.0)
        self.orders: list[tuple[str, str | None, float]] = []

    def ordered(self, session_id: str, customer_id: str | None, time: float) -> None:
        self.orders.append((session_id, customer_id, time))
        super().ordered(session_id, customer_id, time)


@pytest.mark.parametrize("many", [False, True])
def test_an_order_is_told_once_at_its_own_time_not_on_each_later_event(many: bool) -> None:
    fu = _Counting()
    eng = Engine(SessionProcessor(), session_gap=1800.0, followups=fu)
    # c1 abandons a cart in s1 (last event 1005), and in s2 has ordered at 900 but browses on
    # until 1500: the order came before the abandonment, so s1's cart is still followed up.
    events = [*_cart("s2", 0.0), OrderCompleted(id="o", time=900.0, session_id="s2",
                                                customer_id="c1", revenue=5.0),
              *_cart("s1", 1000.0),
              *[PageView(id=f"s2-{i}", time=1100.0 + 100 * i, session_id="s2",
                         customer_id="c1") for i in range(5)]]
    if many:
        eng.feed_many(events, Outputs())
    else:
        for e in events:
            eng.feed([e])
    # An order in a new message is told again; its replay applies nothing, so is not.
    eng.feed([OrderCompleted(id="o", time=900.0, session_id="s2", customer_id="c1",
                             revenue=5.0)], origin=("w-0", 1))
    eng.feed([OrderCompleted(id="o", time=900.0, session_id="s2", customer_id="c1",
                             revenue=5.0)], origin=("w-0", 1))
    assert fu.orders == [("s2", "c1", 900.0), ("s2", "c1", 900.0)]
    out = eng.advance(10_000.0)
    assert [d["subject"] for d in out.followups] == ["s1"]


def test_a_waiting_follow_up_survives_a_restart_through_its_stored_state_once() -> None:
    from detectors.session import decode_state, encode_state

    _, treated = _both_arms()
    eng = _engine()
    eng.feed(_cart("s1", 0.0, treated))
    eng.feed(_cart("s2", 0.0, "buyer"))
    out = eng.advance(2000.0)  # both expired; their follow-ups are due at 3605
    assert {o["session_id"] for o in out.outcomes} == {"s1", "s2"}
    # What the worker keeps stored under each id, as its table holds it.
    stored = {sid: encode_state(s) for sid in ("s1", "s2")
              if (s := eng.stored(sid)) is not None}
    assert set(stored) == {"s1", "s2"}
    # A restart: a new engine takes the stored states over (twice: the adopt timer's safety
    # net comes by again), and the buyer's order reaches it before the follow-up is due.
    new = _engine()
    for _ in range(2):
        for raw in stored.values():
            new.adopt(decode_state(raw))
    assert not new.sessions  # ended sessions: only their follow-ups are taken back
    out = new.feed([OrderCompleted(id="o", time=3000.0, session_id="s3", customer_id="buyer",
                                   revenue=80.0)])
    assert out.released == {"s2"} and new.stored("s2") is None  # the worker deletes it
    out = new.advance(3605.0)
    assert [d["subject"] for d in out.followups] == ["s1"]
    assert [r["arm"] for r in out.experiments if r["type"] == "exposure"] == ["treatment"]
    assert out.released == {"s1"} and new.stored("s1") is None
    # Taken over again after it was sent (a stale copy): nothing is sent twice.
    new.adopt(decode_state(stored["s1"]))
    assert new.advance(99_999.0).followups == []
    # The same document as the engine that never stopped would have sent.
    assert eng.advance(3605.0).followups == out.followups


def test_the_simulated_report_names_the_true_lift_its_interval_is_held_to() -> None:
    from streams.report import gather_simulated
    from streams.sim.truth import followup_truth

    settings = load(followups=True, followup_delay=1800.0, holdout_control_share=0.5)
    data = gather_simulated(settings, 4800.0, 5.0, 5, 0.0, followup_effect=0.5,
                            followup_base=0.1)
    assert "true follow-up lift here +" in data.source, data.source
    # The truth counts treated customers whose follow-up fell within the data, and only
    # returns that caused an order the data holds.
    sim = Simulator(SimConfig(seed=1, events_per_second=5, duration=4800.0, customers=10**8,
                              followup_base=0.2, followup_effect=0.5, followup_delay=1800.0))
    list(sim.messages())
    caused, per_unit, units = followup_truth(sim.outcomes, sim.clock)
    treated = [o for o in sim.outcomes if o.followup_arm == "treatment"]
    assert units and units <= len(treated) and 0 < caused < 0.5 and per_unit > 0
    assert followup_truth(sim.outcomes, 0.0)[2] == 0
