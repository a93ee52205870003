"""Journey funnel counts and incident detection: counted once per session, one incident per
outage that opens, updates and resolves, none from ordinary noise."""

from __future__ import annotations

import math
import random

from detectors import events as ev
from detectors.checkout import checkout_detectors
from detectors.engine import Engine
from detectors.funnel import Funnel, StepBucket
from detectors.incidents import (
    CONVERSION,
    IncidentConfig,
    IncidentDetector,
    IncidentPipeline,
    WindowMerger,
)
from detectors.journey import Journey, JourneyTracker
from detectors.session import SessionProcessor
from streams import detection
from streams.normalize import normalize
from streams.settings import Settings
from streams.sim import Incident, SimConfig, Simulator

SHOP = Journey.from_dict({"name": "shop", "profile": "retail", "steps": [
    {"name": "shipping", "events": ["checkout_step_viewed"], "step": 2},
    {"name": "payment", "events": ["checkout_step_viewed"], "step": 3},
    {"name": "order", "events": ["order_completed"]}]})


def _engine() -> tuple[Engine, Funnel]:
    funnel = Funnel(bucket_seconds=60)
    proc = SessionProcessor([*checkout_detectors(), JourneyTracker([SHOP], funnel=funnel)])
    return Engine(proc, funnel=funnel), funnel


def test_a_session_going_back_and_forth_enters_and_passes_each_step_once() -> None:
    eng, funnel = _engine()
    steps = [2, 3, 2, 3, 2, 3]
    eng.feed([ev.CheckoutStepViewed(id=f"v{i}", time=10.0 * i, session_id="s", step=step,
                                    device="desktop") for i, step in enumerate(steps)])
    eng.feed([ev.OrderCompleted(id="o", time=70.0, session_id="s", revenue=30.0)])
    by_step: dict[str, list[int]] = {}
    for b in funnel.close(1e9):
        got = by_step.setdefault(b.step, [0, 0, 0])
        got[0] += b.entered
        got[1] += b.passed
        got[2] += b.orders
    assert by_step == {"shipping": [1, 1, 0], "payment": [1, 1, 0], "order": [1, 0, 1]}


def test_signals_count_at_the_step_the_session_is_in_with_their_segments() -> None:
    eng, funnel = _engine()
    eng.feed([ev.CheckoutStepViewed(id="v", time=1.0, session_id="s", step=3, device="mobile")])
    for i in range(2):
        eng.feed([ev.PaymentAttempted(id=f"p{i}", time=5.0 + i, session_id="s", success=False,
                                      provider="stripe", method="card",
                                      decline_reason="card_declined")])
    [payment] = [b for b in funnel.close(1e9) if b.step == "payment"]
    assert payment.signals == {"payment_declined": 1}
    assert payment.segments["payment_declined|provider=stripe"] == 1
    assert payment.segments["payment_declined|device=mobile"] == 1


def test_a_count_after_its_window_closed_comes_in_a_record_of_its_own() -> None:
    eng, funnel = _engine()
    eng.feed([ev.CheckoutStepViewed(id="a", time=10.0, session_id="a", step=2)])
    first = funnel.close(60.0)
    eng.feed([ev.CheckoutStepViewed(id="b", time=20.0, session_id="b", step=2)])  # late
    late = funnel.close(60.0)
    assert [(b.start, b.entered) for b in first] == [(0.0, 1)]
    assert [(b.start, b.entered) for b in late] == [(0.0, 1)]
    merger = WindowMerger()
    assert merger.add(first[0]) == [] and merger.add(late[0]) == []
    assert [b.entered for b in merger.flush()] == [2]


def _window(i: int, entered: int, passed: int, signals: dict[str, int]) -> StepBucket:
    return StepBucket(journey="shop", step="payment", index=2, start=30.0 * i, seconds=30.0,
                      entered=entered, passed=passed, cart_value=50.0 * entered,
                      signals=signals)


def _normal(rng: random.Random, i: int) -> StepBucket:
    entered = rng.randint(5, 15)
    passed = sum(rng.random() < 0.85 for _ in range(entered))
    declines = sum(rng.random() < 0.04 for _ in range(entered))
    errors = sum(rng.random() < 0.02 for _ in range(entered))
    signals = {k: n for k, n in (("payment_declined", declines), ("api_error", errors)) if n}
    return _window(i, entered, passed, signals)


def test_ordinary_noise_opens_no_incident() -> None:
    rng = random.Random(3)
    det = IncidentDetector()
    docs = [d for i in range(4000) for d in det.observe(_normal(rng, i))]  # 33 hours
    assert docs == []


def test_traffic_that_swells_and_ebbs_over_the_day_opens_no_incident() -> None:
    # Two days of 15-second windows: from 1 to 40 sessions a window, night to evening peak,
    # at the same rates. Rates per session entering, not counts, are what is watched.
    rng = random.Random(5)
    det = IncidentDetector()
    docs = []
    for i in range(2 * 5760):
        volume = 20.5 + 19.5 * math.sin(2 * math.pi * i / 5760)
        entered = max(1, round(rng.gauss(volume, math.sqrt(volume))))
        passed = sum(rng.random() < 0.85 for _ in range(entered))
        declines = sum(rng.random() < 0.04 for _ in range(entered))
        docs += det.observe(StepBucket(
            journey="shop", step="payment", index=2, start=15.0 * i, seconds=15.0,
            entered=entered, passed=passed,
            signals={"payment_declined": declines} if declines else {}))
    assert docs == []


def test_an_outage_opens_one_incident_that_updates_and_resolves_after_it_ends() -> None:
    rng = random.Random(4)
    det = IncidentDetector()
    docs = [d for i in range(200) for d in det.observe(_normal(rng, i))]
    for i in range(200, 240):  # 20 minutes: most payments fail, few get past
        entered = rng.randint(5, 15)
        docs += det.observe(_window(i, entered, entered // 5,
                                    {"payment_declined": entered - entered // 5}))
    docs += [d for i in range(240, 300) for d in det.observe(_normal(rng, i))]
    statuses = [d["data"]["status"] for d in docs]
    assert statuses[0] == "opened" and statuses[-1] == "resolved"
    assert statuses.count("opened") == 1 and statuses.count("resolved") == 1
    assert "updated" in statuses
    assert len({d["data"]["incident_id"] for d in docs}) == 1
    assert len({d["id"] for d in docs}) == len(docs)
    opened, resolved = docs[0]["data"], docs[-1]["data"]
    assert opened["opened"] <= "1970-01-01T01:42:00Z"  # within 2 minutes of the 100th
    assert resolved["resolved"] >= "1970-01-01T02:00:00Z"  # not before the end
    kinds = {k["kind"]: k for k in resolved["kinds"]}
    assert set(kinds) == {"payment_declined", CONVERSION}
    assert kinds["payment_declined"]["current_rate"] > 10 * kinds["payment_declined"][
        "baseline_rate"]
    assert resolved["revenue_lost_per_hour"] > 0 and resolved["sessions_affected"] > 100


def test_a_step_nobody_gets_past_has_no_conversion_to_fall() -> None:
    det = IncidentDetector()
    docs = []
    for i in range(500):  # a journey's last step: sessions enter, none pass
        docs += det.observe(StepBucket(journey="shop", step="order", index=3, start=30.0 * i,
                                       seconds=30.0, entered=10))
    assert docs == []


def test_a_step_is_not_watched_before_its_warm_up() -> None:
    det = IncidentDetector(IncidentConfig(warmup_entries=1000))
    docs = [d for i in range(50) for d in det.observe(
        _window(i, 10, 1, {"payment_declined": 9}))]
    assert docs == []


def test_a_simulated_payment_outage_opens_one_incident_at_the_step_that_pays() -> None:
    outage = Incident("payment_outage", 10 * 60, 300)
    sim = Simulator(SimConfig(seed=5, events_per_second=100, duration=15 * 60,
                              incidents=(outage,)))
    engine = detection.engine(Settings(abandonment_model=False))
    pipeline = IncidentPipeline(engine.funnel, IncidentConfig(warmup_entries=30))
    docs = []
    for msg in sim.messages():
        for evs in normalize(msg.encode(), msg.source, max_bytes=1 << 20, max_events=1000,
                             now=0.0).web.values():
            engine.feed(evs)
        docs += pipeline.advance(engine.watermark)
    docs += pipeline.finish()
    opened = [d["data"] for d in docs if d["data"]["status"] == "opened"]
    assert [(o["journey"], o["step"]) for o in opened] == [("retail_checkout", "review")]
    assert opened[0]["kinds"][0]["kind"] == "payment_declined"


def test_journey_stats_count_each_window_into_the_journey_metrics() -> None:
    from prometheus_client import CollectorRegistry

    from streams.incidents import JourneyStats
    from streams.metrics import Metrics

    m = Metrics(CollectorRegistry())
    stats = JourneyStats(Funnel(), topic=None, metrics=m, lateness=15.0)
    stats.count(StepBucket(journey="shop", step="order", index=3, start=0.0, seconds=15.0,
                           entered=3, passed=1, orders=3, revenue=90.0,
                           signals={"payment_declined": 2},
                           segments={"entered|device=mobile": 2, "passed|device=mobile": 1,
                                     "payment_declined|provider=stripe": 2}))
    value = m.registry.get_sample_value
    assert value("frictionwatch_journey_step_entered_total",
                 {"journey": "shop", "step": "order", "device": "mobile"}) == 2
    assert value("frictionwatch_journey_step_entered_total",
                 {"journey": "shop", "step": "order", "device": "unknown"}) == 1
    assert value("frictionwatch_journey_step_passed_total",
                 {"journey": "shop", "step": "order", "device": "mobile"}) == 1
    assert value("frictionwatch_journey_friction_signals_total",
                 {"journey": "shop", "step": "order", "type": "payment_declined"}) == 2
    assert value("frictionwatch_orders_total", {"journey": "shop"}) == 3
    assert value("frictionwatch_revenue_total", {"journey": "shop"}) == 90.0


# --- element-level incidents ---------------------------------------------------------------------


def _element_window(i: int, broken: int, noise: bool) -> StepBucket:
    from detectors.funnel import StepBucket

    elements = {"dead_click|button#continue": 1} if noise else {}
    if broken:
        elements["dead_click|button#place-order"] = broken
    return StepBucket(journey="shop", step="pay", index=3, start=15.0 * i, seconds=15.0,
                      entered=10, passed=8, cart_value=800.0,
                      signals={"dead_click": broken + noise}, segments={}, elements=elements)


def test_an_element_incident_opens_when_many_sessions_hit_one_element_and_closes() -> None:
    from detectors.incidents import IncidentConfig, IncidentDetector

    det = IncidentDetector(IncidentConfig(warmup_entries=100))
    docs = [d for i in range(60) for d in det.observe(_element_window(i, 0, i % 9 == 0))]
    assert docs == []  # a stray dead click now and then on one button is no incident
    broken = [d for i in range(60, 66) for d in det.observe(_element_window(i, 4, False))]
    opened = [d for d in broken if d["data"]["status"] == "opened"]
    [doc] = [d for d in opened if d["data"]["element"] is not None]
    data = doc["data"]
    assert data["element"] == "button#place-order" and data["reason"] == "dead_click"
    assert doc["subject"] == "shop/pay/element/button#place-order"
    assert doc["type"] == "io.frictionwatch.journey.incident.opened"
    assert data["revenue_lost_per_hour"] == 0.0 and "button#place-order" in data["summary"]
    assert det.open_elements("shop", "pay") == 1
    calm = [d for i in range(66, 80) for d in det.observe(_element_window(i, 0, False))]
    resolved = [d for d in calm if d["data"]["status"] == "resolved" and d["data"]["element"]]
    assert [d["data"]["incident_id"] for d in resolved] == [data["incident_id"]]
    assert det.open_elements("shop", "pay") == 0


def test_elements_watched_per_step_are_bounded() -> None:
    from detectors.funnel import StepBucket
    from detectors.incidents import IncidentConfig, IncidentDetector

    det = IncidentDetector(IncidentConfig(warmup_entries=0, max_elements=5))
    for i in range(40):
        det.observe(StepBucket(journey="shop", step="pay", index=3, start=15.0 * i,
                               seconds=15.0, entered=10, passed=8, signals={"rage_click": 1},
                               segments={}, elements={f"rage_click|a.link-{i}": 1,
                                                      "rage_click|other": 3}))
    watched = det.elements[("shop", "pay")]
    assert len(watched) == 5 and "other" not in watched
    assert set(watched) == {f"a.link-{i}" for i in range(35, 40)}


def test_the_simulators_broken_button_opens_an_element_incident_that_resolves() -> None:
    import calendar
    import time

    from detectors.incidents import IncidentConfig, IncidentPipeline

    def _t(iso: str) -> float:
        return float(calendar.timegm(time.strptime(iso, "%Y-%m-%dT%H:%M:%SZ")))

    # A short warm-up for the review step: the sessions reaching it in a few minutes.
    cfg = SimConfig(seed=5, events_per_second=100, duration=1200,
                    incidents=(Incident("broken_button", 480, 180),))
    settings = Settings(abandonment_model=False)
    engine = detection.engine(settings)
    pipeline = IncidentPipeline(engine.funnel, IncidentConfig(warmup_entries=30), lateness=15.0)
    docs = []
    for msg in Simulator(cfg).messages():
        for evs in normalize(msg.encode(), msg.source, max_bytes=1 << 20, max_events=1000,
                             now=0.0).web.values():
            engine.feed(evs)
        docs += pipeline.advance(engine.watermark)
    docs += pipeline.finish()
    elements = [d["data"] for d in docs if d["data"]["element"] is not None
                and d["data"]["status"] in ("opened", "resolved")]
    assert [(e["status"], e["step"], e["element"], e["reason"]) for e in elements] == [
        ("opened", "review", "button#place-order", "dead_click"),
        ("resolved", "review", "button#place-order", "dead_click")]
    start = cfg.start + 480
    opened, resolved = _t(elements[0]["opened"]), _t(elements[1]["resolved"])
    assert start < opened <= start + 120 and resolved >= start + 180
