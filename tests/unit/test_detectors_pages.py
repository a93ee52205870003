"""Page detectors: slow pages, error pages, failed API calls (flag, near miss, one per page or
episode, bounded memory, state encoding mid-episode)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from detectors import events as ev
from detectors.base import Signal
from detectors.pages import ApiErrorDetector, ErrorPageDetector, SlowPageDetector
from detectors.session import SessionProcessor, SessionState, decode_state, encode_state

SID = "s1"


def run(detector: Any, events: Sequence[Any], split: int | None = None) -> list[Signal]:
    proc = SessionProcessor([detector])
    state: SessionState | None = None
    out: list[Signal] = []
    for part in [events] if split is None else [events[:split], events[split:]]:
        if state is not None:
            state = decode_state(encode_state(state))
        state, sigs = proc.apply(state, list(part))
        out += sigs
    return out


def page(t: float, status: int | None = None, path: str = "/p/1") -> ev.PageView:
    return ev.PageView(id=f"p{t}", time=t, session_id=SID, path=path, status_code=status)


def vitals(t: float, lcp: float | None = None, inp: float | None = None) -> ev.PagePerformance:
    return ev.PagePerformance(id=f"v{t}", time=t, session_id=SID, lcp_ms=lcp, inp_ms=inp,
                              url="https://shop.example.com/p/1")


def checkout(t: float, step: int = 2) -> ev.CheckoutStepViewed:
    return ev.CheckoutStepViewed(id=f"s{t}", time=t, session_id=SID, step=step)


def api(t: float, status: int = 503, endpoint: str = "/api/checkout/rates") -> ev.ApiError:
    return ev.ApiError(id=f"a{t}", time=t, session_id=SID, endpoint=endpoint, status_code=status)


# --- slow pages --------------------------------------------------------------------------------


def test_slow_page_poor_lcp_or_inp() -> None:
    [sig] = run(SlowPageDetector(), [page(1.0), vitals(6.0, lcp=4500.0, inp=120.0)])
    assert (sig.type, sig.start, sig.time, sig.step) == ("slow_page", 1.0, 6.0, None)
    assert sig.evidence == {"url": "https://shop.example.com/p/1", "path": "/p/1",
                            "lcp_ms": 4500.0, "inp_ms": 120.0, "poor": ["lcp"]}
    [sig] = run(SlowPageDetector(), [page(1.0), vitals(3.0, lcp=2000.0, inp=501.0)])
    assert sig.evidence["poor"] == ["inp"]


def test_slow_page_near_misses_at_exactly_the_thresholds() -> None:
    assert run(SlowPageDetector(), [page(1.0), vitals(5.0, lcp=4000.0, inp=500.0)]) == []
    assert run(SlowPageDetector(), [page(1.0), vitals(5.0)]) == []  # nothing measured


def test_slow_page_one_signal_per_page_view_and_configurable() -> None:
    evs = [page(1.0), vitals(6.0, lcp=5000.0), vitals(9.0, inp=900.0),  # same page: once
           page(20.0), vitals(26.0, lcp=7000.0)]
    assert [s.start for s in run(SlowPageDetector(), evs)] == [1.0, 20.0]
    for split in range(1, len(evs)):
        assert run(SlowPageDetector(), evs, split=split) == run(SlowPageDetector(), evs)
    assert run(SlowPageDetector(lcp_ms=2500.0), [page(1.0), vitals(4.0, lcp=3000.0)]) != []
    with pytest.raises(ValueError):
        SlowPageDetector(lcp_ms=0)


def test_slow_page_step_in_checkout() -> None:
    [sig] = run(SlowPageDetector(), [checkout(0.5, step=3), page(1.0),
                                     vitals(9.0, lcp=9000.0)])
    assert sig.step == 3


# --- error pages -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [404, 410, 500, 502, 503])
def test_error_page_4xx_5xx(status: int) -> None:
    [sig] = run(ErrorPageDetector(), [page(2.0, status, path="/checkout/payment")])
    assert (sig.type, sig.time, sig.start) == ("error_page", 2.0, 2.0)
    assert sig.evidence == {"path": "/checkout/payment", "url": None, "status": status}


def test_error_page_near_misses_3xx_2xx_and_unknown() -> None:
    assert run(ErrorPageDetector(), [page(1.0, 399), page(2.0, 200), page(3.0)]) == []
    assert run(ErrorPageDetector(min_status=500), [page(1.0, 404)]) == []


# --- failed API calls --------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 503, 504, 429, 0])
def test_api_error_in_checkout_flags_server_errors_throttling_and_network(status: int) -> None:
    [sig] = run(ApiErrorDetector(), [checkout(1.0), api(5.0, status)])
    assert (sig.type, sig.time, sig.start, sig.step) == ("api_error", 5.0, 5.0, 2)
    assert sig.evidence == {"endpoint": "/api/checkout/rates", "status": status}


def test_api_error_near_misses_outside_checkout_and_client_errors() -> None:
    assert run(ApiErrorDetector(), [api(5.0, 503)]) == []  # browsing, not checkout
    assert run(ApiErrorDetector(), [checkout(1.0), api(5.0, 422), api(6.0, 404)]) == []
    assert run(ApiErrorDetector(client_errors=True), [checkout(1.0), api(5.0, 422)]) != []
    assert run(ApiErrorDetector(checkout_only=False), [api(5.0, 503)]) != []


def test_api_error_one_signal_per_episode() -> None:
    evs = [checkout(1.0), api(10.0), api(14.0, 0), api(22.0),  # retries: one episode
           api(25.0, endpoint="/api/payments/session"),  # another endpoint: another one
           api(200.0)]  # the first endpoint again, minutes later: a new episode
    sigs = run(ApiErrorDetector(), evs)
    assert [(s.time, s.evidence["endpoint"]) for s in sigs] == [
        (10.0, "/api/checkout/rates"), (25.0, "/api/payments/session"),
        (200.0, "/api/checkout/rates")]
    for split in range(1, len(evs)):
        assert run(ApiErrorDetector(), evs, split=split) == sigs


def test_api_error_memory_bounded_over_10000_failures() -> None:
    det = ApiErrorDetector(max_endpoints=8)
    state = SessionState(session_id=SID, checkout_step=3)
    n = 0
    for i in range(10_000):
        n += len(det.update(state, api(float(i), endpoint=f"/api/{i % 50}")))
    assert len(state.detector_state["api_error"]["e"]) == 8
    assert n > 1000  # endpoints evicted and failing again start new episodes


# --- scope: a page failing outside the journeys is the site's health ----------------------------


def test_failing_pages_are_friction_in_journeys_and_site_health_elsewhere() -> None:
    from detectors.alerting import Alerting
    from detectors.catalog import default_detectors
    from detectors.journey import Journey

    cart = Journey.from_dict({"name": "retail", "profile": "retail",
                              "steps": [{"name": "cart", "url": "*/cart"}]})
    dets = [d for d in default_detectors(journeys=[cart], friction_paths=["/account/*"])
            if d.name in ("error_page", "api_error")]
    proc = SessionProcessor(dets)

    def scope(*events: ev.BaseEvent) -> list[str]:
        _, out = proc.apply(None, list(events))
        return [s.evidence["scope"] for s in out]

    blog = ev.PageView(id="1", time=1.0, session_id="s", path="/blog/2019/old", status_code=404)
    assert scope(blog) == ["site"]
    assert scope(ev.PageView(id="2", time=1.0, session_id="s",
                             url="https://shop.example/cart", status_code=500)) == ["session"]
    assert scope(ev.PageView(id="3", time=1.0, session_id="s", path="/account/orders",
                             status_code=503)) == ["session"]
    in_checkout = [ev.CheckoutStarted(id="4", time=0.5, session_id="s"), blog,
                   ev.ApiError(id="5", time=2.0, session_id="s", endpoint="/api/rates",
                               status_code=503)]
    assert scope(*in_checkout) == ["session", "session"]
    # Outside checkout a failed API call is site health now, not nothing.
    assert scope(ev.PageView(id="6", time=0.5, session_id="s", path="/p/1"),
                 ev.ApiError(id="7", time=2.0, session_id="s", endpoint="/api/reviews",
                             status_code=500)) == ["site"]
    _, out = proc.apply(None, [blog])
    assert Alerting().on_signals(SessionState(session_id="s"), out) == ([], [])
