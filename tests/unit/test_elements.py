"""Per-element click friction: session hits, the funnel's counts, bounded top-N, bounded
Prometheus labels, and the dashboard panel."""

from __future__ import annotations

import json
import random
from pathlib import Path

from prometheus_client import CollectorRegistry

from detectors.base import Signal
from detectors.elements import (
    MAX_SESSION_HITS,
    OTHER,
    LabelSlots,
    TopElements,
    record_hits,
)
from detectors.engine import Engine
from detectors.events import Click, DeadClick, JsError, PageView
from detectors.funnel import MAX_BUCKET_ELEMENTS, Funnel, StepBucket
from detectors.session import SessionProcessor, SessionState
from detectors.web import web_detectors
from streams.incidents import JourneyStats
from streams.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]


def _sig(kind: str, target: str) -> Signal:
    return Signal(type=kind, session_id="s", time=1.0, start=1.0, evidence={"target": target})


def test_a_session_counts_once_per_element_kind_and_place() -> None:
    s = SessionState(session_id="s", page="https://shop.example.com/p/1?x=2")
    assert record_hits(s, [_sig("dead_click", "a"), _sig("dead_click", "a"),
                           _sig("rage_click", "a")]) == [("dead_click", "/p/1", "a"),
                                                         ("rage_click", "/p/1", "a")]
    assert record_hits(s, [_sig("dead_click", "a")]) == []
    s.detector_state["journey"] = {"journey": "shop", "step_name": "pay", "step": 3}
    assert record_hits(s, [_sig("dead_click", "a")]) == [("dead_click", "shop/pay", "a")]
    # not a click friction, or no element: nothing
    assert record_hits(s, [_sig("slow_page", "a"), Signal(type="dead_click", session_id="s",
                                                          time=1.0, start=1.0)]) == []
    for i in range(30):
        record_hits(s, [_sig("dead_click", f"e{i}")])
    assert len(s.detector_state["elements"]) == MAX_SESSION_HITS


def test_engine_counts_element_hits_in_the_funnel_and_the_outcome() -> None:
    funnel = Funnel(bucket_seconds=60)
    eng = Engine(SessionProcessor(web_detectors()), funnel=funnel)
    events = [PageView(id="0", time=0.0, session_id="s", path="/p/1")]
    for i in range(3):  # one shopper, the same broken button three times
        t = 10.0 * (i + 1)
        events += [Click(id=f"c{i}", time=t, session_id="s", x=5, y=5, target="button#buy"),
                   DeadClick(id=f"d{i}", time=t + 1.2, session_id="s", x=5, y=5,
                             target="button#buy")]
    events += [Click(id="e", time=50.0, session_id="s", x=9, y=9, target="a.zoom"),
               JsError(id="j", time=50.3, session_id="s", message="TypeError")]
    out = eng.feed(events)
    assert sum(s.type == "dead_click" for s in out.signals) == 3
    [rec] = funnel.close(120.0)
    assert rec.elements == {"dead_click|button#buy": 1, "error_click|a.zoom": 1}
    [outcome] = eng.close().outcomes
    assert outcome["elements"] == [["dead_click", "/p/1", "button#buy"],
                                   ["error_click", "/p/1", "a.zoom"]]


def test_a_window_names_a_bounded_number_of_elements() -> None:
    funnel = Funnel(bucket_seconds=60)
    for i in range(MAX_BUCKET_ELEMENTS + 50):
        s = SessionState(session_id=f"s{i}")
        sig = _sig("rage_click", f"button.b{i}")
        funnel.signals(s, [sig], record_hits(s, [sig]))
    [rec] = funnel.close(120.0)
    assert len(rec.elements) == MAX_BUCKET_ELEMENTS + 1
    assert rec.elements[f"rage_click|{OTHER}"] == 50
    merged = StepBucket(journey="none", step="none", index=0, start=0.0, seconds=60.0,
                        elements={"rage_click|other": 1})
    merged.merge(rec)
    assert merged.elements["rage_click|other"] == 51


def test_top_elements_keeps_the_frequent_ones_in_bounded_memory() -> None:
    rng = random.Random(1)
    top = TopElements(capacity=20, max_places=3)
    truth: dict[str, int] = {}
    for _ in range(20_000):
        # a few elements take most hits (Zipf-like), a long tail of one-offs the rest
        element = f"e{min(int(rng.paretovariate(1.2)), 500)}" if rng.random() < 0.8 \
            else f"tail{rng.randrange(100_000)}"
        truth[element] = truth.get(element, 0) + 1
        top.add("/p", element, "dead_click")
    assert len(top.places["/p"]) == 20
    best = sorted(truth, key=lambda e: -truth[e])[:5]
    found = top.top(5, "/p")
    assert [r.element for r in found] == best
    for r in found:  # space-saving: never under, over by at most its error
        assert truth[r.element] <= r.sessions <= truth[r.element] + r.error
    for i in range(10):
        top.add(f"/q{i}", "x", "rage_click")
    assert len(top.places) == 3


def test_metric_labels_stay_bounded_whatever_the_elements() -> None:
    m = Metrics(CollectorRegistry())
    stats = JourneyStats(Funnel(), topic=None, metrics=m, lateness=15.0)
    rng = random.Random(2)
    for w in range(200):
        elements: dict[str, int] = {}
        for _ in range(30):
            kind = rng.choice(("dead_click", "rage_click", "error_click"))
            name = f"button.hot{rng.randrange(3)}" if rng.random() < 0.5 \
                else f"a.tail{rng.randrange(10_000)}"
            key = f"{kind}|{name}"
            elements[key] = elements.get(key, 0) + 1
        stats.count(StepBucket(journey="shop", step="pay", index=3, start=15.0 * w,
                               seconds=15.0, entered=30, elements=elements))
    samples = [s for fam in m.registry.collect()
               if fam.name == "frictionwatch_element_friction_sessions"
               for s in fam.samples if s.name.endswith("_total")]
    names = {s.labels["element"] for s in samples}
    assert len(names) <= stats.element_labels.slots + 1 and OTHER in names
    assert {"button.hot0", "button.hot1", "button.hot2"} <= names
    total = sum(s.value for s in samples)
    assert total == 200 * 30  # every session counted, under its name or "other"
    value = m.registry.get_sample_value
    hot = sum(value("frictionwatch_element_friction_sessions_total",
                    {"journey": "shop", "step": "pay", "type": k, "element": "button.hot0"})
              or 0 for k in ("dead_click", "rage_click", "error_click"))
    assert hot > 200 * 30 * 0.5 / 3 * 0.8  # nearly all of its hits under its own name


def test_the_journeys_dashboard_shows_elements_and_element_incidents() -> None:
    board = json.loads((ROOT / "deploy/grafana/dashboards/frictionwatch-journeys.json")
                       .read_text())
    exprs = {p["title"]: p["targets"][0]["expr"] for p in board["panels"] if p.get("targets")}
    table = exprs["Elements with most dead, rage and error clicks"]
    assert "frictionwatch_element_friction_sessions_total" in table
    assert "by (step, element, type)" in table and table.startswith("topk(")
    assert "frictionwatch_element_incidents_opened_total" in exprs["Element incidents opened"]
    assert "frictionwatch_element_incidents_open" in exprs["Element incidents open now"]


def test_label_slots_refuse_bad_sizes() -> None:
    import pytest

    with pytest.raises(ValueError):
        LabelSlots(top=5, slots=4)
    with pytest.raises(ValueError):
        TopElements(capacity=0)
