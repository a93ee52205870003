"""Checkout detectors: a case each must flag and a near miss it must not; the step learner."""

from __future__ import annotations

import json
import math
import random

import pytest

from detectors import events as ev
from detectors.base import Signal
from detectors.checkout import (
    Backtrack,
    CouponFailure,
    FormErrorLoop,
    PaymentDeclined,
    StepDurations,
    StepStall,
    checkout_detectors,
)
from detectors.session import SessionProcessor, SessionState, decode_state, encode_state

SID = "s1"


def _err(t: float, field: str, form: str = "shipping") -> ev.FormFieldError:
    return ev.FormFieldError(id=f"e{t}", time=t, session_id=SID, form=form, field=field,
                             message=f"bad {field}")


def _pay(t: float, ok: bool = False, reason: str | None = "insufficient_funds"
         ) -> ev.PaymentAttempted:
    return ev.PaymentAttempted(id=f"p{t}", time=t, session_id=SID, success=ok,
                               decline_reason=None if ok else reason, provider="stripe")


def _view(t: float, step: int, sid: str = SID) -> ev.CheckoutStepViewed:
    return ev.CheckoutStepViewed(id=f"v{t}{sid}", time=t, session_id=sid, step=step)


def _done(t: float, step: int, sid: str = SID) -> ev.CheckoutStepCompleted:
    return ev.CheckoutStepCompleted(id=f"d{t}{sid}", time=t, session_id=sid, step=step)


def _coupon(t: float, ok: bool = False, code: str = "SAVE15") -> ev.CouponEntered:
    return ev.CouponEntered(id=f"c{t}", time=t, session_id=SID, code=code, success=ok,
                            reason=None if ok else "expired")


def _run(proc: SessionProcessor, events: list[ev.Event]) -> tuple[SessionState, list]:  # type: ignore[type-arg]
    return proc.apply(None, events)


# --- form-error loops --------------------------------------------------------------------------


def test_form_error_loop_flags_same_field_twice_once_per_loop() -> None:
    proc = SessionProcessor([FormErrorLoop()])
    state, out = _run(proc, [_err(10, "postal_code"), _err(12, "city"), _err(20, "postal_code"),
                             _err(30, "postal_code")])
    [sig] = out
    assert sig.type == "form_error_loop" and (sig.start, sig.time) == (10, 20)
    assert sig.evidence["field"] == "postal_code" and sig.evidence["form"] == "shipping"
    assert sig.evidence["count"] == 2 and sig.evidence["times"] == [10, 20]
    assert sig.evidence["messages"] == ["bad postal_code"]
    # A new loop on the same field after a long gap signals again.
    state, out = proc.apply(state, [_err(2000, "postal_code"), _err(2010, "postal_code")])
    assert [s.start for s in out] == [2000]


def test_form_error_loop_near_miss_different_fields_or_forms() -> None:
    proc = SessionProcessor([FormErrorLoop()])
    _, out = _run(proc, [_err(10, "postal_code"), _err(20, "city"),
                         _err(30, "email", form="contact"), _err(40, "email", form="account")])
    assert out == []
    _, out = _run(proc, [_err(10, "city"), _err(700, "city")])  # further apart than max_gap
    assert out == []


def test_form_error_loop_memory_is_bounded_and_jsonable() -> None:
    det = FormErrorLoop(max_fields=4)
    state = SessionState(session_id=SID)
    for i in range(50):
        det.update(state, _err(float(i), f"f{i % 10}"))
        det.update(state, _err(float(i) + 0.5, "hot"))
    mem = state.detector_state["form_error_loop"]["fields"]
    assert len(mem) <= 4 and len(mem["shipping|hot"]["times"]) <= 10
    assert decode_state(encode_state(state)).detector_state == json.loads(
        json.dumps(state.detector_state))


# --- payment declines --------------------------------------------------------------------------


def test_two_customer_declines_flag_with_reasons() -> None:
    proc = SessionProcessor([PaymentDeclined()])
    _, out = _run(proc, [_pay(10, reason="insufficient_funds"), _pay(40, reason="do_not_honor"),
                         _pay(80, reason="card_declined")])
    [sig] = out
    assert (sig.start, sig.time) == (10, 40)
    assert sig.evidence["reasons"] == ["insufficient_funds", "do_not_honor"]
    assert sig.evidence["count"] == 2 and sig.evidence["system_side"] is False


def test_one_system_decline_flags_at_once() -> None:
    _, out = _run(SessionProcessor([PaymentDeclined()]), [_pay(10, reason="processing_error")])
    [sig] = out
    assert sig.evidence["system_side"] and sig.evidence["reasons"] == ["processing_error"]


def test_payment_near_miss_one_customer_decline_then_success() -> None:
    proc = SessionProcessor([PaymentDeclined()])
    _, out = _run(proc, [_pay(10, reason="incorrect_cvc"), _pay(30, ok=True)])
    assert out == []
    # A success ends the run: a decline after it starts counting again.
    _, out = _run(proc, [_pay(10), _pay(30, ok=True), _pay(60)])
    assert out == []
    _, out = _run(SessionProcessor([PaymentDeclined(min_declines=3)]), [_pay(10), _pay(20)])
    assert out == []


# --- step stalls -------------------------------------------------------------------------------


def _trained(typical: float = 30.0, n: int = 25) -> tuple[StepStall, SessionProcessor]:
    det = StepStall(k=3.5)  # numbers below: threshold 3.5 x 30 s = 105 s
    proc = SessionProcessor([det])
    for i in range(n):
        proc.apply(None, [_view(0.0, 2, f"t{i}"), _done(typical, 2, f"t{i}")])
    return det, proc


def test_stall_fires_by_deadline_while_the_customer_is_still_there() -> None:
    det, proc = _trained(30.0)
    assert det.durations.typical(2) == pytest.approx(30.0)
    assert det.threshold(2) == pytest.approx(105.0)
    state, out = _run(proc, [ev.PageView(id="p", time=1000.0, session_id=SID),
                             _view(1000.0, 2),
                             ev.PagePerformance(id="pp", time=1003.0, session_id=SID, lcp_ms=2000)])
    assert out == [] and proc.next_due(state) == pytest.approx(1105.0)
    assert proc.advance(state, 1104.0) == []
    [sig] = proc.advance(state, 1106.0)  # the watermark passed it: no event of the session needed
    assert sig.type == "step_stall" and sig.step == 2
    assert sig.start == 1000.0 and sig.time == pytest.approx(1105.0)
    assert sig.evidence["typical_seconds"] == pytest.approx(30.0)
    assert proc.next_due(state) is None and proc.advance(state, 5000.0) == []
    # The flagged visit is not learned from.
    n = det.durations.count(2)
    proc.apply(state, [_done(1500.0, 2)])
    assert det.durations.count(2) == n


def test_stall_near_misses() -> None:
    det, proc = _trained(30.0)
    # Just under the threshold: completes at 104 s.
    _, out = _run(proc, [_view(0.0, 2), _done(104.0, 2)])
    assert out == []
    # Just under, then the watermark passes it: nothing is pending any more.
    state, out = _run(proc, [_view(0.0, 2, "u"), _done(104.9, 2, "u")])
    assert out == [] and proc.next_due(state) is None and proc.advance(state, 1e6) == []
    # Active in the step (a click): not an idle stall, even if it then goes quiet (left).
    state, _ = _run(proc, [_view(0.0, 2, "w"),
                           ev.Click(id="c", time=5.0, session_id="w", x=1, y=1)])
    assert proc.advance(state, 1e6) == []
    # The page failing in the step (poor Web Vitals, an error page): the silence after it is
    # that failure's friction (the customer most often left), not a stall.
    for failure in (ev.PagePerformance(id="pp", time=9.0, session_id="f", lcp_ms=9000.0),
                    ev.PageView(id="pv", time=9.0, session_id="f", status_code=503),
                    ev.ApiError(id="ae", time=9.0, session_id="f", endpoint="/x",
                                status_code=500)):
        state, _ = _run(proc, [_view(0.0, 2, "f"), failure])
        assert proc.advance(state, 1e6) == [], failure
        # ... unless they come back after the deadline: a stall after all, flagged then.
        state, _ = _run(proc, [_view(0.0, 2, "g"), failure])
        state, out = proc.apply(state, [ev.Click(id="k", time=104.0, session_id="g", x=1, y=1)])
        assert out == []  # back before the deadline
        state, _ = _run(proc, [_view(0.0, 2, "h"), failure])
        state, [sig] = proc.apply(state, [ev.Click(id="k", time=400.0, session_id="h", x=1,
                                                   y=1)])
        assert (sig.start, sig.time, sig.evidence["came_back"]) == (0.0, 400.0, True)
    # A revisit after going back is not measured against first-visit times.
    state, _ = _run(proc, [_view(0.0, 2, "b"), _view(10.0, 3, "b"), _view(20.0, 2, "b")])
    assert proc.advance(state, 1e6) == []


def test_stall_learns_from_completed_first_visits_and_next_step() -> None:
    det = StepStall(k=3.5, durations=StepDurations(warmup=3))
    proc = SessionProcessor([det])
    for i in range(3):
        proc.apply(None, [_view(0.0, 1, f"s{i}"), _view(20.0, 2, f"s{i}"),
                          _done(60.0, 2, f"s{i}")])
    assert det.durations.typical(1) == pytest.approx(20.0)  # moved on without a completion
    assert det.durations.typical(2) == pytest.approx(40.0)
    # Warm-up default until enough samples.
    assert det.durations.typical(4) == 60.0 and det.threshold(4) == 210.0


def test_step_durations_robust_to_outliers_and_checkpointable() -> None:
    rng = random.Random(3)
    clean, dirty = StepDurations(), StepDurations()
    for _ in range(3000):
        x = 40.0 * math.exp(rng.gauss(0, 0.5))
        clean.learn_one(3, x)
        dirty.learn_one(3, x if rng.random() > 0.05 else 50_000.0)  # 5% huge outliers
    assert clean.typical(3) == pytest.approx(40.0, rel=0.15)
    assert dirty.typical(3) / clean.typical(3) == pytest.approx(1.0, abs=0.1)
    again = StepDurations.from_dict(json.loads(json.dumps(dirty.to_dict())))
    assert again.typical(3) == dirty.typical(3) and again.count(3) == 3000
    # It follows a step that got slower.
    for _ in range(300):
        dirty.learn_one(3, 120.0 * math.exp(rng.gauss(0, 0.3)))
    assert dirty.typical(3) == pytest.approx(120.0, rel=0.2)


# --- backtracking ------------------------------------------------------------------------------


def test_backtrack_flags_second_return() -> None:
    _, out = _run(SessionProcessor([Backtrack()]), [
        _view(1, 1), _view(10, 2), _view(20, 3), _view(30, 2), _done(40, 2), _view(41, 3),
        _view(50, 2), _view(60, 3), _view(70, 2)])
    [sig] = out
    assert (sig.start, sig.time, sig.step) == (30, 50, 3)
    assert sig.evidence["from_step"] == 3 and sig.evidence["to_step"] == 2
    assert sig.evidence["count"] == 2 and sig.evidence["times"] == [30, 50]


def test_backtrack_near_miss_one_return_or_reloads() -> None:
    _, out = _run(SessionProcessor([Backtrack()]), [
        _view(1, 1), _view(10, 2), _view(11, 2), _view(20, 3), _view(30, 2), _view(40, 3),
        _view(45, 3), _view(50, 4)])
    assert out == []


# --- coupons -----------------------------------------------------------------------------------


def test_coupon_failure_flags_repeated_denials() -> None:
    _, out = _run(SessionProcessor([CouponFailure()]), [
        _coupon(10, code="WELCOME10"), _coupon(20, code="VIP25"), _coupon(30)])
    [sig] = out
    assert sig.evidence["codes"] == ["WELCOME10", "VIP25"]
    assert sig.evidence["reasons"] == ["expired", "expired"] and sig.evidence["count"] == 2


def test_coupon_near_miss_one_denial_then_accepted() -> None:
    _, out = _run(SessionProcessor([CouponFailure()]), [_coupon(10), _coupon(20, ok=True),
                                                        _coupon(30)])
    assert out == []


# --- factory -----------------------------------------------------------------------------------


def test_factory_names_match_simulator_and_overrides_apply() -> None:
    from streams.sim import FRICTION_TYPES

    dets = checkout_detectors(step_stall={"k": 5.0}, backtrack={"min_returns": 3})
    assert all(d.name in FRICTION_TYPES for d in dets)
    assert {d.name for d in dets} == {"form_error_loop", "payment_declined", "step_stall",
                                      "backtrack", "coupon_failure"}
    stall = next(d for d in dets if isinstance(d, StepStall))
    assert stall.k == 5.0
    with pytest.raises(ValueError, match="unknown checkout detectors"):
        checkout_detectors(rage_click={})
    # Every detector's memory survives the state's encoding.
    proc = SessionProcessor(dets)
    state, _ = proc.apply(None, [_view(1, 1), _err(2, "email"), _pay(3), _coupon(4)])
    assert decode_state(encode_state(state)).detector_state == state.detector_state


# --- presence: a shopper who left is not stuck ------------------------------------------------


def _stall_run(*after: ev.BaseEvent) -> list[object]:
    """A shopper enters step 2 at t=100 (typical 30 s, so the deadline is at 190); ``after``
    follows; event time then passes the deadline."""
    det = StepStall(durations=StepDurations(warmup=1, default=30.0))
    proc = SessionProcessor([det])
    state, _ = proc.apply(None, [ev.PageView(id="p", time=99.0, session_id="s", path="/x"),
                                 ev.CheckoutStepViewed(id="v", time=100.0, session_id="s",
                                                       step=2)])
    state, out = proc.apply(state, list(after))
    return [*out, *proc.advance(state, 400.0)]


def _presence(t: float, state: str) -> ev.Presence:
    return ev.Presence(id=f"b{t}", time=t, session_id="s", state=state)  # type: ignore[arg-type]


def test_a_shopper_who_left_before_the_deadline_is_no_stall() -> None:
    assert _stall_run(_presence(120.0, "left")) == []
    assert _stall_run(_presence(120.0, "hidden")) == []


def test_a_beacon_followed_by_a_page_is_a_navigation_not_a_leave() -> None:
    [sig] = _stall_run(_presence(101.0, "left"),
                       ev.PageView(id="n", time=101.0, session_id="s", path="/checkout/2"))
    assert sig.evidence["presence"] == "presumed"  # the session sends beacons


def test_a_stall_says_how_we_know_the_customer_is_there() -> None:
    [silent] = _stall_run()
    assert silent.evidence["presence"] == "unknown"
    [seen] = _stall_run(_presence(170.0, "here"), _presence(195.0, "here"))
    assert seen.evidence["presence"] == "confirmed"


def test_where_heartbeats_come_the_stall_waits_for_one_past_the_deadline() -> None:
    # Snowplow pings while the page is in use and sends no leave event: pings that stop
    # before the deadline (190) are a leave, not a stall.
    assert _stall_run(_presence(110.0, "here"), _presence(180.0, "here")) == []
    # A ping past the deadline shows they are still there: the stall, at that ping.
    [sig] = _stall_run(*(_presence(t, "here") for t in range(115, 260, 10)))
    assert (sig.time, sig.evidence["presence"]) == (195.0, "confirmed")  # type: ignore[attr-defined]
    assert not sig.evidence["came_back"]  # type: ignore[attr-defined]
    # Not when they acted in the step meanwhile: then it was no idle stall.
    click = ev.Click(id="c", time=185.0, session_id="s", target="input#email")
    assert _stall_run(_presence(110.0, "here"), click, _presence(195.0, "here")) == []


def test_a_page_back_in_view_is_no_heartbeat() -> None:
    # "visible" is a moment, not a heartbeat: at the deadline they are only presumed there.
    [sig] = _stall_run(_presence(150.0, "hidden"), _presence(170.0, "visible"))
    assert (sig.time, sig.evidence["presence"]) == (190.0, "presumed")  # type: ignore[attr-defined]


def test_a_form_interaction_is_acting_in_the_step() -> None:
    focus = ev.FormInteraction(id="f", time=150.0, session_id="s", form="checkout",
                               field="postal_code", action="focus")
    assert _stall_run(focus) == []


def test_alerts_and_chat_follow_what_is_known_of_presence() -> None:
    from detectors.alerting import Alerting

    def policy(presence: str, **kw: bool) -> tuple[int, int]:
        sig = Signal(type="step_stall", session_id="s", time=190.0, start=100.0, step=2,
                     evidence={"presence": presence})
        alerts, chats = Alerting(**kw).on_signals(SessionState(session_id="s"), [sig])
        return len(alerts), len(chats)

    assert policy("unknown") == (0, 0)
    assert policy("unknown", silent_stalls=True) == (1, 1)
    assert policy("presumed") == (1, 0)
    assert policy("presumed", chat_presumed=True) == (1, 1)
    assert policy("confirmed") == (1, 1)
