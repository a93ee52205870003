"""Click detectors: rage, dead and error clicks (flag, near miss, one per burst, bounded
memory, state encoding mid-burst)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import msgspec
import pytest

from detectors import events as ev
from detectors.base import Signal
from detectors.clicks import DeadClickDetector, ErrorClickDetector, RageClickDetector
from detectors.session import SessionProcessor, SessionState, decode_state, encode_state
from detectors.web import WEB_DETECTORS, web_detectors

SID = "s1"


def click(t: float, x: float = 100.0, y: float = 100.0, target: str | None = "button#pay",
          i: int = 0) -> ev.Click:
    return ev.Click(id=f"c{t}-{i}", time=t, session_id=SID, x=x, y=y, target=target)


def page(t: float) -> ev.PageView:
    return ev.PageView(id=f"p{t}", time=t, session_id=SID, path="/next")


def dead(t: float, target: str | None = "button#pay") -> ev.DeadClick:
    return ev.DeadClick(id=f"d{t}", time=t, session_id=SID, x=100.0, y=100.0, target=target)


def js(t: float, message: str = "TypeError: x is undefined") -> ev.JsError:
    return ev.JsError(id=f"j{t}", time=t, session_id=SID, message=message)


def run(detector: Any, events: Sequence[Any], end: float | None = math.inf,
        split: int | None = None) -> list[Signal]:
    """Events through a SessionProcessor (optionally encoding the state after ``split`` events,
    as the worker's table does between batches), then event time to ``end``."""
    proc = SessionProcessor([detector])
    state: SessionState | None = None
    out: list[Signal] = []
    parts = [events] if split is None else [events[:split], events[split:]]
    for part in parts:
        if state is not None:
            state = decode_state(encode_state(state))
        state, sigs = proc.apply(state, list(part))
        out += sigs
    if end is not None and state is not None:
        out += proc.advance(state, end)
    return out


# --- rage clicks -------------------------------------------------------------------------------


def test_rage_three_clicks_within_a_second_and_30px_flag_once_at_the_third() -> None:
    [sig] = run(RageClickDetector(), [click(10.0), click(10.4, x=110), click(10.9, y=115)])
    assert (sig.type, sig.start, sig.time, sig.step) == ("rage_click", 10.0, 10.9, None)
    assert sig.evidence == {"target": "button#pay", "clicks": 3, "x": 100.0, "y": 100.0,
                            "first": 10.0, "last": 10.9}


def test_rage_near_misses_too_slow_or_too_far_apart() -> None:
    assert run(RageClickDetector(), [click(10.0), click(10.55), click(11.1)]) == []  # 1.1 s
    assert run(RageClickDetector(), [click(10.0), click(10.2, x=140), click(10.4)]) == []  # 40 px
    assert run(RageClickDetector(), [click(10.0), click(10.2)]) == []  # two clicks


def test_rage_one_signal_per_burst_and_a_new_burst_later() -> None:
    burst = [click(10.0 + 0.2 * i, x=100 + (i % 3) * 5, i=i) for i in range(8)]  # 1.4 s long
    later = [click(30.0 + 0.15 * i, i=i) for i in range(4)]
    sigs = run(RageClickDetector(), burst + later)
    assert [(s.start, s.time) for s in sigs] == [(10.0, 10.4), (30.0, 30.3)]


def test_rage_configurable_count_window_and_radius() -> None:
    det = RageClickDetector(count=4, window_s=2.0, radius_px=50)
    evs = [click(10.0), click(10.6, x=140), click(11.2), click(11.8, x=120, y=130)]
    [sig] = run(det, evs)
    assert sig.evidence["clicks"] == 4
    assert run(RageClickDetector(count=4), evs[:3]) == []
    with pytest.raises(ValueError):
        RageClickDetector(count=1)


def test_rage_state_encoded_mid_burst_gives_the_same_signals() -> None:
    evs = [click(10.0 + 0.2 * i, i=i) for i in range(6)] + [click(20.0), click(20.3)]
    whole = run(RageClickDetector(), evs)
    for split in range(1, len(evs)):
        assert run(RageClickDetector(), evs, split=split) == whole
    assert len(whole) == 1


def test_rage_step_is_the_checkout_step() -> None:
    evs = [ev.CheckoutStepViewed(id="s", time=1.0, session_id=SID, step=3),
           click(10.0), click(10.1), click(10.2)]
    proc = SessionProcessor([RageClickDetector()])
    _, [sig] = proc.apply(None, evs)
    assert sig.step == 3


# --- dead clicks -------------------------------------------------------------------------------


def test_dead_sdk_report_flags_the_click_it_reports() -> None:
    [sig] = run(DeadClickDetector(), [click(10.0), dead(11.2)])
    assert (sig.type, sig.start, sig.time) == ("dead_click", 10.0, 11.2)
    assert sig.evidence == {"target": "button#pay", "x": 100.0, "y": 100.0,
                            "click_time": 10.0, "detected": "sdk"}


def test_dead_sdk_report_without_its_click_still_flags() -> None:
    [sig] = run(DeadClickDetector(), [dead(5.0, target=None)])
    assert (sig.start, sig.time, sig.evidence["target"]) == (5.0, 5.0, None)


def test_dead_silence_on_an_element_expected_to_respond() -> None:
    det = DeadClickDetector(expect_response=["button#pay"])
    [sig] = run(det, [click(10.0)], end=11.0)
    assert (sig.start, sig.time, sig.evidence["detected"]) == (10.0, 11.0, "silence")
    # Near miss: a page view 0.9 s after the click.
    assert run(DeadClickDetector(expect_response=["button#pay"]), [click(10.0), page(10.9)]) == []
    # Not yet: event time has not reached the deadline.
    assert run(DeadClickDetector(expect_response=["button#pay"]), [click(10.0)], end=10.99) == []


def test_dead_silence_alone_is_not_enough_on_an_ordinary_element() -> None:
    """A last click before the shopper reads or leaves is silent too: not flagged unless the
    element is known to respond (or learned to be dead)."""
    assert run(DeadClickDetector(), [click(10.0, target="img.product-thumb")]) == []


def test_dead_learns_elements_that_sdks_report_dead_then_flags_their_silence() -> None:
    det = DeadClickDetector(min_reports=3)
    proc = SessionProcessor([det])
    for k in range(3):  # sessions whose SDK reports dead clicks on the carousel
        s, out = proc.apply(None, [ev.Click(id="c", time=k * 100.0, session_id=f"r{k}", x=1,
                                            y=1, target="div.carousel"),
                                   ev.DeadClick(id="d", time=k * 100 + 1.2, session_id=f"r{k}",
                                                target="div.carousel")])
        out += proc.advance(s, math.inf)
        assert len(out) == 1
    assert det.is_dead("div.carousel") and not det.is_dead("img.product-thumb")
    # A session whose SDK does not report: the silent click is flagged, once.
    s, _ = proc.apply(None, [ev.Click(id="c", time=500.0, session_id="q", x=1, y=1,
                                      target="div.carousel")])
    [sig] = proc.advance(s, 501.0)
    assert (sig.session_id, sig.evidence["detected"], sig.time) == ("q", "silence", 501.0)
    # Its SDK report, if it comes after all, is the same click: no second signal.
    assert proc.apply(s, [ev.DeadClick(id="d", time=501.3, session_id="q",
                                       target="div.carousel")])[1] == []
    assert proc.advance(s, math.inf) == []


def test_dead_learned_share_follows_silent_clicks_that_are_not_reported() -> None:
    det = DeadClickDetector(min_reports=3, min_dead_share=0.3)
    st = [det._learn("a.x", 1, 1) for _ in range(3)]
    assert st[-1] == [3.0, 3.0] and det.is_dead("a.x")
    for _ in range(7):  # silent, unreported clicks: 3 reports in 10 silent clicks
        det._learn("a.x", 1, 0)
    assert det.is_dead("a.x")
    det._learn("a.x", 1, 0)  # 3 in 11: below 0.3
    assert not det.is_dead("a.x")


def test_dead_repeat_clicks_are_not_silence_candidates() -> None:
    det = DeadClickDetector(expect_response=["button#pay"])
    # A rage burst on the element: only rage_click's business, not three dead clicks.
    assert run(det, [click(10.0), click(10.3), click(10.6)]) == []


def test_dead_state_encoded_between_click_and_deadline_gives_the_same_signals() -> None:
    evs = [click(10.0), page(10.5), click(20.0), dead(21.2), click(30.0), click(40.0)]

    def fresh() -> DeadClickDetector:
        return DeadClickDetector(expect_response=["button#pay"])

    whole = run(fresh(), evs)
    assert [(s.start, s.evidence["detected"]) for s in whole] == [
        (20.0, "silence"), (30.0, "silence"), (40.0, "silence")]
    for split in range(1, len(evs)):
        assert run(fresh(), evs, split=split) == whole


def test_dead_learned_targets_are_bounded() -> None:
    det = DeadClickDetector(max_targets=50, max_silent=100)
    for i in range(10_000):
        det._learn(f"t{i % 300}", 1, i % 2)
    assert len(det.targets) == 50
    assert all(st[0] < 100 for st in det.targets.values())


# --- error clicks ------------------------------------------------------------------------------


def test_error_click_js_error_within_a_second() -> None:
    [sig] = run(ErrorClickDetector(), [click(10.0), js(10.6, "TypeError: boom")])
    assert (sig.type, sig.start, sig.time) == ("error_click", 10.0, 10.6)
    assert sig.evidence == {"target": "button#pay", "message": "TypeError: boom",
                            "source": None, "delay": 0.6}


def test_error_click_near_miss_error_after_1_2_s_or_without_a_click() -> None:
    assert run(ErrorClickDetector(), [click(10.0), js(11.2)]) == []
    assert run(ErrorClickDetector(), [js(3.0)]) == []


def test_error_click_one_signal_per_click_and_state_encoding() -> None:
    evs = [click(10.0), js(10.2), js(10.5), click(20.0), js(20.9)]
    whole = run(ErrorClickDetector(), evs)
    assert [s.start for s in whole] == [10.0, 20.0]
    for split in range(1, len(evs)):
        assert run(ErrorClickDetector(), evs, split=split) == whole


# --- all of them -------------------------------------------------------------------------------


def _mixed(n: int) -> list[Any]:
    """A long session: bursts, spaced clicks, SDK reports, errors, pages, vitals, API errors."""
    out: list[Any] = []
    t = 0.0
    for i in range(n):
        k = i % 10
        t += 0.2 if k in (1, 2, 3) else 1.7
        if k < 5:
            out.append(click(t, x=100 + (i % 7) * 13, y=200, target=f"el{i % 40}", i=i))
        elif k == 5:
            out.append(dead(t, target=f"el{i % 40}"))
        elif k == 6:
            out.append(js(t))
        elif k == 7:
            out.append(ev.PageView(id=f"p{i}", time=t, session_id=SID, path=f"/p/{i}",
                                   status_code=500 if i % 3 else 200))
        elif k == 8:
            out.append(ev.PagePerformance(id=f"v{i}", time=t, session_id=SID, lcp_ms=5000.0))
        else:
            out.append(ev.ApiError(id=f"a{i}", time=t, session_id=SID, endpoint=f"/api/{i}",
                                   status_code=503))
    return out


def test_memory_stays_small_and_json_able_over_10000_events() -> None:
    proc = SessionProcessor(web_detectors(dead_click={"expect_response": ["el1"]}))
    state = SessionState(session_id=SID, checkout_step=2)
    signals = 0
    sizes = []
    for i, e in enumerate(_mixed(10_000)):
        state, out = proc.apply(state, [e])
        signals += len(out)
        if i % 1000 == 999:
            sizes.append(len(msgspec.json.encode(state.detector_state)))
    assert signals > 1000  # it did detect things all along
    assert max(sizes) < 1500 and sizes[-1] <= max(sizes[:2]) + 200
    assert decode_state(encode_state(state)).detector_state == state.detector_state
    assert len(state.detector_state["rage_click"]) <= 2 * 3  # two clicks, flat [t, x, y]
    assert len(state.detector_state["api_error"]["e"]) <= 8


def test_web_detectors_names_are_the_simulators_friction_types() -> None:
    from streams.sim import FRICTION_TYPES

    names = [d.name for d in web_detectors()]
    assert names == [c.name for c in WEB_DETECTORS]
    assert set(names) <= set(FRICTION_TYPES) and len(set(names)) == 6
    with pytest.raises(ValueError, match="unknown detectors"):
        web_detectors(rage_clicks={"count": 4})


def test_rage_clicks_without_a_position_go_by_target() -> None:
    """Snowplow link_click and PostHog $autocapture carry the element, not the pointer: the
    same element stands in for "within the radius"; no element named, no burst."""

    def bare(t: float, target: str | None) -> ev.Click:
        return ev.Click(id=f"b{t}", time=t, session_id=SID, target=target)

    det, state = RageClickDetector(), SessionState(session_id=SID)
    burst = [bare(t, "button#pay") for t in (1.0, 1.2, 1.4, 1.6)]
    out = [s for e in burst for s in det.update(state, e)]
    assert [(s.time, s.start, s.evidence["clicks"], s.evidence["x"]) for s in out] == [
        (1.4, 1.0, 3, None)]
    state = decode_state(encode_state(state))  # the memory stays JSON-able mid-burst
    mixed = [bare(5.0, "a#help"), bare(5.2, "button#pay"), bare(5.4, "a#help"), bare(5.5, None),
             bare(5.6, None), bare(5.7, None), bare(7.0, "a#help")]
    assert [s for e in mixed for s in det.update(state, e)] == []
