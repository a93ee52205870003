"""Randomized holdouts: stable arms, no intervention for the control arm, outcomes per arm."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from detectors.engine import Engine
from detectors.holdout import Experiment, Holdout, assign, results
from detectors.session import SessionState
from models.experiments import Ledger
from streams import detection
from streams.backtest import run_simulated
from streams.settings import load
from streams.sim import FRICTION_TYPES, SimConfig, Simulator

IDS = [f"c:{i:06d}" for i in range(2000)]

_ARMS_SCRIPT = """
import sys
from detectors.holdout import assign
ids = [f"c:{i:06d}" for i in range(2000)]
print("".join("c" if assign(u, "chat_offer", "salt", 0.2) == "control" else "t" for u in ids))
"""


def test_the_same_unit_gets_the_same_arm_in_every_process_and_worker() -> None:
    here = "".join("c" if assign(u, "chat_offer", "salt", 0.2) == "control" else "t"
                   for u in IDS)
    # Other processes with other hash seeds stand for restarts and other workers.
    for seed in ("1", "2"):
        out = subprocess.run([sys.executable, "-c", _ARMS_SCRIPT], capture_output=True,
                             text=True, check=True, env={"PYTHONHASHSEED": seed,
                                                         "PYTHONPATH": "."})
        assert out.stdout.strip() == here
    # And two holdouts built separately (two workers) agree on every unit.
    a, b = (Holdout([Experiment(salt="salt")]) for _ in range(2))
    assert [a.arm("chat", u) for u in IDS] == [b.arm("chat", u) for u in IDS]


def test_arms_have_the_configured_shares_and_a_new_salt_reshuffles() -> None:
    ids = [f"s:{i}" for i in range(20_000)]
    control = [u for u in ids if assign(u, "chat_offer", "a", 0.2) == "control"]
    # Binomial(20000, 0.2): standard deviation 57.
    assert abs(len(control) - 4000) < 4 * 57
    again = {u for u in ids if assign(u, "chat_offer", "b", 0.2) == "control"}
    # Independent draws: about 20% of one control group is in the other.
    assert abs(len(again & set(control)) / len(control) - 0.2) < 0.03


def test_a_customer_is_one_unit_across_sessions() -> None:
    h = Holdout([Experiment(control_share=0.5)])
    arms = set()
    for i in range(20):
        state = SessionState(session_id=f"sess-{i}", customer_id="cust-7")
        _, rec = h.expose(state, "chat", time=float(i), score=1.0, reason="api_error")
        assert rec is not None and rec["unit_kind"] == "customer"
        arms.add(rec["arm"])
    assert len(arms) == 1


@pytest.fixture(scope="module")
def simulated() -> tuple[Simulator, Engine, object]:
    settings = load(abandonment_model=False, churn_model=False, incident_detection=False,
                    holdout_control_share=0.5)
    engine = detection.engine(settings)
    sim = Simulator(SimConfig(seed=3, events_per_second=80, duration=1200,
                              friction=dict.fromkeys(FRICTION_TYPES, 0.1), chat_effect=0.5,
                              chat_experiment=detection.experiments(settings)[0]))
    out = run_simulated(sim.messages(), engine)
    return sim, engine, out


def test_the_control_arm_never_gets_a_chat_offer(simulated) -> None:  # type: ignore[no-untyped-def]
    _, engine, out = simulated
    exposures = [r for r in out.experiments if r["type"] == "exposure"]
    control = [r for r in exposures if r["arm"] == "control"]
    treated = [r for r in exposures if r["arm"] == "treatment"]
    assert len(control) > 20 and len(treated) > 20
    chats = {c["id"]: c for c in out.chats}
    # Every chat sent is a treatment exposure; no control exposure became a chat.
    assert set(chats) == {r["id"] for r in treated}
    assert not {r["id"] for r in control} & set(chats)
    assert all(not r["delivered"] for r in control) and all(r["delivered"] for r in treated)
    # The arm is the unit's, recomputed from scratch.
    h = engine.holdout
    assert h is not None and all(h.arm("chat", r["unit"]) == r["arm"] for r in exposures)
    # Alerts say when the chat offer was withheld.
    withheld = [a for a in out.alerts if a["data"].get("intervention", {}).get("withheld")]
    assert len(withheld) == len({r["session_id"] for r in control if r["first_in_session"]})


def test_exposed_sessions_report_orders_after_their_exposure(simulated) -> None:  # type: ignore[no-untyped-def]
    _, _, out = simulated
    res = [r for r in out.experiments if r["type"] == "result"]
    by_session = {o["session_id"]: o for o in out.outcomes}
    assert len(res) == len({r["session_id"] for r in out.experiments
                            if r["type"] == "exposure"})
    for r in res:
        o = by_session[r["session_id"]]
        assert r["orders"] <= o["orders"] and r["revenue"] <= o["revenue"] + 1e-9
        assert r["converted"] == (r["orders"] > 0)
    assert any(r["converted"] for r in res)


def test_the_estimate_finds_the_simulated_chat_effect(simulated) -> None:  # type: ignore[no-untyped-def]
    sim, _, out = simulated
    led = Ledger(detection.experiments(load(holdout_control_share=0.5)))
    for r in out.experiments:
        led.add(r)
    led.close(math.inf)
    arms = led.totals["chat_offer"]
    assert arms["control"].units > 30 and arms["treatment"].units > 30
    assert arms["control"].delivered == 0 and arms["treatment"].delivered > 0
    # Rescued shoppers exist only in the treatment arm; the arms differ in the right way.
    assert all(o.chat_arm == "treatment" for o in sim.outcomes if o.rescued)
    assert any(o.rescued for o in sim.outcomes)
    assert arms["treatment"].conversion_rate > arms["control"].conversion_rate


def test_no_chat_effect_leaves_the_traffic_as_it_was() -> None:
    base = SimConfig(seed=5, events_per_second=50, duration=120)
    other = SimConfig(seed=5, events_per_second=50, duration=120,
                      chat_experiment=Experiment(salt="x", control_share=0.5))
    a = [m.encode() for m in Simulator(base).messages()]
    b = [m.encode() for m in Simulator(other).messages()]
    assert a == b


def _exp(t: float, unit: str = "c:1", arm: str = "treatment") -> dict[str, object]:
    return {"type": "exposure", "experiment": "chat_offer", "arm": arm, "unit": unit,
            "unit_kind": "customer" if unit.startswith("c:") else "session", "time": t,
            "delivered": arm == "treatment"}


def _res(exposed: float, end: float, revenue: float, unit: str = "c:1",
         arm: str = "treatment") -> dict[str, object]:
    return {"type": "result", "experiment": "chat_offer", "arm": arm, "unit": unit,
            "unit_kind": "customer" if unit.startswith("c:") else "session",
            "exposed_at": exposed, "end": end, "converted": revenue > 0,
            "orders": int(revenue > 0), "revenue": revenue}


def test_a_customer_unit_counts_orders_within_its_window_and_closes_after_it() -> None:
    led = Ledger([Experiment(attribution_window=3600)], session_gap=600)
    led.add(_exp(0.0))
    led.add(_res(0.0, 500.0, 0.0))  # first session: no order
    led.add(_exp(3000.0))
    led.add(_res(3000.0, 3400.0, 40.0))  # within the window: counts
    led.add(_exp(5000.0))
    led.add(_res(5000.0, 5200.0, 99.0))  # after it: does not
    assert led.close(3600 + 599) == []  # a session of the window may still be running
    (unit,) = led.close(3600 + 600)
    assert unit.converted and unit.revenue == 40.0 and unit.sessions == 2
    assert unit.delivered == 3
    t = led.totals["chat_offer"]["treatment"]
    assert (t.units, t.conversions, t.revenue) == (1, 1, 40.0)


def test_the_ledger_survives_a_snapshot_and_restore() -> None:
    led = Ledger([Experiment()])
    led.add(_exp(0.0, "c:1"))
    led.add(_exp(1.0, "s:x", arm="control"))
    led.add(_res(1.0, 50.0, 0.0, "s:x", arm="control"))
    again = Ledger([Experiment()])
    again.restore(led.snapshot())
    assert again.pending.keys() == led.pending.keys()
    assert again.totals == led.totals
    again.add(_res(0.0, 100.0, 20.0, "c:1"))
    assert [u.revenue for u in again.close(math.inf)] == [20.0]


def test_close_makes_final_exactly_the_units_whose_window_ended_in_time_order() -> None:
    """``close`` pops units by when they end (not a scan of every pending unit); checked
    against that definition over units opened, finalized by results, reopened and restored."""
    import random

    rng = random.Random(3)
    window, gap = 3600.0, 600.0
    led = Ledger([Experiment(attribution_window=window)], session_gap=gap)
    firsts: dict[str, float] = {}
    now = 0.0
    for i in range(600):
        now += rng.uniform(0, 60)
        unit = f"c:{rng.randrange(80)}" if rng.random() < 0.7 else f"s:{i}"
        led.add(_exp(now, unit))
        firsts.setdefault(unit, now)
        if unit.startswith("s:") and rng.random() < 0.5:
            led.add(_res(now, now + 30, 5.0, unit))  # a session unit ends with its result
            firsts.pop(unit)
        if i == 300:  # a restart in the middle
            again = Ledger([Experiment(attribution_window=window)], session_gap=gap)
            again.restore(led.snapshot())
            led = again
        if rng.random() < 0.1:
            due = sorted((f + window + gap, u) for u, f in firsts.items()
                         if f + window + gap <= now)
            closed = led.close(now)
            assert [u.unit for u in closed] == [u for _, u in due]
            for _, u in due:
                firsts.pop(u)
            assert set(led.pending) == {f"chat_offer\x1f{u}" for u in firsts}
    assert len(led.close(math.inf)) == len(firsts)
    assert led.pending == {}


def test_results_without_an_exposure_count_from_the_result() -> None:
    state = SessionState(session_id="s")
    assert results(state, 10.0) == []
    led = Ledger([Experiment()])
    (unit,) = led.add(_res(5.0, 60.0, 12.5, "s:a", arm="control"))
    assert unit.arm == "control" and unit.first == 5.0 and unit.revenue == 12.5


def test_lift_intervals_follow_the_delta_method_and_roi_counts_delivered_offers() -> None:
    from models.lift import ArmStats, estimate

    c = ArmStats(units=2000, conversions=400, orders=400, revenue=32_000.0,
                 revenue_sq=400 * 80.0**2)
    t = ArmStats(units=8000, conversions=2000, orders=2000, revenue=160_000.0,
                 revenue_sq=2000 * 80.0**2, delivered=9000)
    e = estimate(c, t, cost_per_intervention=1.0, horizon=10_000)
    assert e.status == "positive"
    assert math.isclose(e.conversion.lift, 0.05) and e.conversion.low > 0
    assert math.isclose(e.relative_conversion.lift, 0.25)
    assert math.isclose(e.revenue_per_unit.lift, 4.0)
    assert math.isclose(e.relative_revenue_per_unit.lift, 0.25)
    # Incremental revenue: the treated units times the lift per unit; ROI on 9,000 offers.
    assert math.isclose(e.incremental_revenue.lift, 32_000.0)
    assert e.cost == 9000.0 and e.roi is not None
    assert math.isclose(e.roi.lift, (32_000.0 - 9000.0) / 9000.0)
    # Wider for fewer units: the same rates at a tenth of the units.
    small = estimate(ArmStats(units=200, conversions=40), ArmStats(units=800, conversions=200),
                     horizon=10_000)
    assert small.conversion.high - small.conversion.low > \
        2.5 * (e.conversion.high - e.conversion.low)
