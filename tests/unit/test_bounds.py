"""Bounds at the edge (issue 13): the inputs that stopped the worker, flooded the dead-letter
topic or poisoned state are refused by ``normalize`` with their reason, and what is accepted
is bounded. Each test here failed on the code before the bounds."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors import events as ev
from detectors.bounds import MAX_TIME
from detectors.budget import encode_session_within
from detectors.customer import CustomerState, apply_customer, decode_customer, encode_customer
from detectors.session import SessionProcessor, SessionState, decode_state, encode_state
from streams import detection
from streams.deadletter import MAX_ORIGINAL_BYTES, decode_dead_letter, encode_dead_letter
from streams.normalize import Normalized, depth_exceeds, normalize
from streams.settings import Settings

# The worker's limits (settings' defaults).
LIMITS: dict[str, Any] = {"max_bytes": 512 * 1024, "max_events": 1000, "now": 1.8e9}


def _track(i: int, event: str, anon: str = "a1", **props: Any) -> dict[str, Any]:
    return {"type": "track", "event": event, "messageId": f"m{i}", "anonymousId": anon,
            "timestamp": "2026-01-01T00:00:00Z", "properties": props}


def _norm(body: Any, source: str | None = "segment", **kw: Any) -> Normalized:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return normalize(raw, source, **{**LIMITS, **kw})


def _reasons(out: Normalized) -> list[str]:
    return [d.reason for d in out.dead]


def _dead_bytes(out: Normalized) -> int:
    return sum(len(encode_dead_letter(d)) for d in out.dead)


def _canonical_bytes(out: Normalized) -> int:
    return sum(len(ev.encode_batch(v)) for v in (*out.web.values(), *out.support.values()))


# --- the three inputs that each ended the worker ---------------------------------------------


def test_a_400k_click_target_is_refused_and_session_state_stays_under_budget() -> None:
    target = "#" + "x" * 400_000
    out = Normalized()  # three requests of one session, each under the size limit
    for i in range(3):
        _norm(_track(i, "Element Clicked", x=10, y=10, target=target), out=out)
    assert not out.web
    assert _reasons(out) == ["invalid_field"] * 3
    assert all(d.detail.startswith("target=") and "2048" in d.detail for d in out.dead)
    assert all(len(d.detail) <= 200 for d in out.dead)

    # What is accepted cannot grow a session past its budget: clicks and every other event
    # with each string field at its largest, through every detector the worker runs.
    engine = detection.engine(Settings())
    big = "y" * 2044
    evs = []
    for i in range(300):
        t = 1.767e9 + i
        evs += [ev.Click(id=f"c{i}", time=t, session_id="s", x=1, y=1, target=big + f"{i:04d}"),
                ev.DeadClick(id=f"d{i}", time=t, session_id="s", target=big + f"{i:04d}"),
                ev.FormFieldError(id=f"f{i}", time=t, session_id="s", field="z" * 1024,
                                  form=str(i) + "f" * 1000, message=big + "mmmm"),
                ev.PageView(id=f"p{i}", time=t, session_id="s", url="u" * 4096,
                            path=str(i) + "p" * 4000)]
    assert not ev.check_batch(evs)  # all within bounds
    for e in evs:
        engine.feed([e])
    state = engine.sessions["s"]
    budget = Settings().session_state_budget
    data, _ = encode_session_within(state, budget)
    assert len(data) <= budget
    assert decode_state(data).session_id == "s"
    # A tighter budget drops detector memories, and the detectors carry on without them.
    data, dropped = encode_session_within(state, 16 * 1024)
    assert len(data) <= 16 * 1024 and dropped >= 1
    for e in evs[:40]:
        engine.feed([msgspec.structs.replace(e, time=e.time + 1000)])
    assert engine.close().outcomes


def test_a_checkout_step_of_1e308_is_refused() -> None:
    out = _norm(_track(1, "Checkout Step Viewed", step=1e308))
    assert not out.web and _reasons(out) == ["invalid_field"]
    assert out.dead[0].detail.startswith("step=") and "100" in out.dead[0].detail
    # As canonical input too, on the fast path's typed decode.
    canonical = {"type": "checkout_step_viewed", "id": "e", "time": 1.0, "session_id": "s",
                 "step": 10**30}
    assert _reasons(_norm(canonical, "canonical")) == ["invalid_field"]


@pytest.mark.parametrize("stamp", ["9999-12-31T23:59:59-23:59", "9999-12-31T23:59:59Z",
                                   "0001-01-01T00:00:00+23:59", "1969-12-31T23:59:59Z"])
def test_a_time_out_of_range_is_refused(stamp: str) -> None:
    out = _norm({**_track(1, "Checkout Started"), "timestamp": stamp})
    assert not out.web and _reasons(out) == ["invalid_field"]


def test_every_accepted_time_converts_to_a_datetime_with_room_for_deadlines() -> None:
    stamps = ["9998-12-31T23:59:59Z", "9998-12-31T23:59:59-23:59", "9999-01-01T00:00:00Z",
              "9999-06-01T00:00:00Z", "9999-12-31T23:59:59-23:59", "1970-01-01T00:00:00Z",
              "0001-01-01T00:00:00Z", "2026-01-01T00:00:00+14:00"]
    body = {"batch": [{**_track(i, "Checkout Started"), "timestamp": s}
                      for i, s in enumerate(stamps)]}
    out = _norm(body)
    accepted = [e.time for e in out.web["a1"]]
    assert len(accepted) + len(out.dead) == len(stamps) and len(accepted) >= 3
    for t in accepted:
        # The latest deadline or expiry the worker schedules is a session gap (or a day of
        # attribution) after an event.
        datetime.fromtimestamp(t + 86_400 * 2, UTC)
    assert max(accepted) <= MAX_TIME


def test_the_event_time_window_around_now() -> None:
    now = datetime(2026, 6, 1, tzinfo=UTC).timestamp()
    body = {"batch": [{**_track(1, "Cart Viewed"), "timestamp": "2026-06-01T01:00:00Z"},
                      {**_track(2, "Cart Viewed"), "timestamp": "2026-06-03T00:00:00Z"},
                      {**_track(3, "Cart Viewed"), "timestamp": "2026-05-01T00:00:00Z"}]}
    out = _norm(body, now=now, max_lead=86_400.0, max_age=7 * 86_400.0)
    assert [e.id for e in out.web["a1"]] == ["m1"]
    assert _reasons(out) == ["invalid_field"] * 2 and all("time=" in d.detail for d in out.dead)
    # Without a window (offline runs), only datetime's range applies.
    assert len(_norm(body, now=0.0).web["a1"]) == 3
    # Canonical input on the fast path gets the same window.
    canonical = [{"type": "page_view", "id": "p", "time": now + 2 * 86_400, "session_id": "s"}]
    assert _reasons(_norm(canonical, "canonical", now=now, max_lead=86_400.0)) == [
        "invalid_field"]


# --- silent loss: nesting --------------------------------------------------------------------


@pytest.mark.parametrize("depth", [65, 999, 5000, 100_000])
def test_deep_nesting_is_a_dead_letter_and_its_neighbours_still_come_out(depth: int) -> None:
    deep = json.dumps(_track(2, "Cart Viewed")).encode()[:-1] + (
        b', "extra": ' + b"[" * depth + b"]" * depth + b"}")
    out = Normalized()
    for raw in (json.dumps(_track(1, "Cart Viewed")).encode(), deep,
                json.dumps(_track(3, "Cart Viewed")).encode()):
        normalize(raw, None, out=out, **LIMITS)
    assert [e.id for e in out.web["a1"]] == ["m1", "m3"]
    assert _reasons(out) == ["too_deep"]
    assert "64" in out.dead[0].detail


def test_shallow_json_with_brackets_in_strings_is_not_too_deep() -> None:
    tricky = "[" * 200 + '\\" {{{ \\\\'
    out = _norm(_track(1, "JS Error", message=tricky[:2000]))
    assert _reasons(out) == [] and out.web["a1"][0].message == tricky[:2000]
    assert depth_exceeds(b'[' * 64 + b']' * 64, 64) is False
    assert depth_exceeds(b'[' * 65 + b']' * 65, 64) is True
    assert depth_exceeds(b'{"a": "\\"[[[[[[[[[[\\\\"}' * 30, 3) is False


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


_TRICKY = st.text(alphabet='[]{}"\\ab', max_size=5)
_JSON = st.recursive(st.none() | st.integers() | _TRICKY,
                     lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(_TRICKY, inner, max_size=4), max_leaves=40)


@settings(max_examples=400, deadline=None)
@given(_JSON, st.integers(1, 12))
def test_depth_exceeds_agrees_with_the_decoded_nesting(value: Any, limit: int) -> None:
    # Strings full of brackets, quotes and backslashes must not move the count either way.
    assert depth_exceeds(json.dumps(value).encode(), limit) is (_depth(value) > limit)


def test_normalize_never_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    import streams.normalize as mod

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RecursionError("deep")

    out = _norm(_track(1, "Cart Viewed"))
    monkeypatch.setattr(mod, "_normalize", boom)
    _norm(_track(2, "Cart Viewed"), out=out)  # the next message of the same batch
    assert [e.id for e in out.web["a1"]] == ["m1"]
    assert _reasons(out) == ["processing_error"] and "RecursionError" in out.dead[0].detail


# --- poisoned state: inf revenue -------------------------------------------------------------


def test_revenue_of_1e308_is_refused_and_max_revenues_stay_finite() -> None:
    body = {"batch": [_track(i, "Order Completed", revenue=1e308) for i in range(2)]}
    out = _norm(body)
    assert not out.web and _reasons(out) == ["invalid_field"] * 2
    assert out.dead[0].detail.startswith("revenue=")
    # The largest accepted revenues, summed over a session's and a customer's life, stay
    # finite and the states read back.
    orders = [ev.OrderCompleted(id=f"o{i}", time=1.767e9 + i, session_id="s", revenue=1e9)
              for i in range(1000)]
    assert not ev.check_batch(orders)
    state, _ = SessionProcessor().apply(None, orders)
    assert decode_state(encode_state(state)).revenue == pytest.approx(1e12)
    summaries = [ev.SessionSummary(id=f"x{i}", time=1.767e9 + i, session_id=f"s{i}",
                                   customer_id="c", converted=True, revenue=1e15)
                 for i in range(1000)]
    assert not ev.check_batch(summaries)
    customer = apply_customer(None, summaries)
    assert decode_customer(encode_customer(customer)).revenue == pytest.approx(1e18)


def test_stored_state_always_reads_back() -> None:
    state = SessionState(session_id="s", revenue=math.inf, cart_value=math.nan,
                         due_at=-math.inf)
    back = decode_state(encode_state(state))
    assert (back.revenue, back.cart_value, back.due_at) == (0.0, 0.0, None)
    customer = CustomerState(customer_id="c", revenue=math.inf, churn_risk=math.nan)
    again = decode_customer(encode_customer(customer))
    assert (again.revenue, again.churn_risk) == (0.0, None)
    # A state stored poisoned by an older version still loads (its null as the default).
    old = encode_state(SessionState(session_id="s")).replace(b'"revenue":0.0', b'"revenue":null')
    assert decode_state(old).revenue == 0.0


# --- amplification -----------------------------------------------------------------------------


def test_ga4_dead_letters_do_not_copy_the_payload() -> None:
    payload = {"client_id": "1.2", "timestamp_micros": 1767225600000000,
               "extra": "z" * 400_000,
               "events": [{"name": f"unmapped_{i}", "params": {}} for i in range(1000)]}
    raw = json.dumps(payload).encode()
    out = _norm(raw, "ga4")
    assert _reasons(out) == ["unknown_event"] * 1000
    assert _dead_bytes(out) <= 2 * len(raw) + 1024 * 1024  # was 533 MB
    one = json.loads(out.dead[0].original_bytes)
    assert one == {"client_id": "1.2", "timestamp_micros": 1767225600000000,
                   "events": [{"name": "unmapped_0", "params": {}}]}


def test_dead_letter_originals_are_bounded_in_size_and_in_total() -> None:
    calls = [_track(i, "Teleported", pad="p" * 100_000) for i in range(5)]
    raw = json.dumps({"batch": calls}).encode()
    out = _norm(raw)
    assert _reasons(out) == ["unknown_event"] * 5
    for d in decode_and_back(out):
        assert len(d.original_bytes) <= MAX_ORIGINAL_BYTES
        assert d.original_size is not None and d.original_size > 100_000 and d.truncated
    assert sum(len(d.original_bytes) for d in out.dead) <= len(raw) + 64 * 1024


def decode_and_back(out: Normalized) -> list[Any]:
    return [decode_dead_letter(encode_dead_letter(d)) for d in out.dead]


def test_a_segment_batch_context_is_bounded_once() -> None:
    calls = [_track(i, "Cart Viewed") for i in range(500)]
    raw = json.dumps({"batch": calls,
                      "context": {"page": {"url": "https://x/?" + "q" * 380_000}}}).encode()
    out = _norm(raw)
    assert _canonical_bytes(out) + _dead_bytes(out) <= 2 * len(raw) + 64 * 1024  # was 190 MB
    assert _reasons(out) == ["invalid_field"] and "context.page.url" in out.dead[0].detail
    # A batch context within bounds still reaches every call.
    ok = _norm({"batch": calls[:3], "context": {"page": {"url": "https://shop/cart"}}})
    assert [e.url for e in ok.web["a1"]] == ["https://shop/cart"] * 3


# --- type confusions ---------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "source"), [
    ({"type": [1, 2], "messageId": "m", "anonymousId": "a",
      "timestamp": "2026-01-01T00:00:00Z"}, "segment"),
    ({"batch": [{"type": {"a": 1}, "messageId": "m", "anonymousId": "a"}]}, "segment"),
    (_track(1, "Payment Attempted", success=[1]), "segment"),
    ({"client_id": "1", "timestamp_micros": 1, "events": [
        {"name": "payment_attempted", "params": {"success": {"x": 1}}}]}, "ga4"),
    ({"client_id": "1", "timestamp_micros": 10**300 // 10**290 * 10**18, "events": [
        {"name": "page_view"}]}, "ga4"),
    ({"client_id": "1", "timestamp_micros": "1e300", "events": [{"name": "page_view"}]}, "ga4"),
    ([{"type": ["click"], "id": "e", "time": 1.0, "session_id": "s"}], "canonical"),
    ({"ticket": {"id": 1, "requester_id": 2, "tags": [["x"]],
                 "created_at": "2026-01-01T00:00:00Z"}}, "support"),
    ({"ticket": {"id": 1, "requester_id": 2, "tags": "t " * 200,
                 "created_at": "2026-01-01T00:00:00Z"}}, "support"),
])
def test_type_confusions_are_invalid_fields(body: Any, source: str) -> None:
    out = _norm(body, source)
    assert not out.web and not out.support
    assert _reasons(out) == ["invalid_field"], [d.detail for d in out.dead]


# --- events per message --------------------------------------------------------------------


def test_too_many_events_is_counted_before_adapting(monkeypatch: pytest.MonkeyPatch) -> None:
    import streams.normalize as mod

    def never(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("adapted a payload over the limit")

    monkeypatch.setattr(mod, "adapt", never)
    for body, source in (({"batch": [_track(i, "Teleported") for i in range(11)]}, "segment"),
                         ({"client_id": "1", "events": [{"name": "x"}] * 11}, "ga4"),
                         ([{"type": "page_view"}] * 11, "canonical")):
        out = _norm(body, source, max_events=10)
        assert _reasons(out) == ["too_many_events"]
        assert out.dead[0].detail == "11 events > limit 10"


def test_a_session_summary_always_fits_its_bounds() -> None:
    from detectors.customer import session_summary
    from detectors.engine import outcome

    state, _ = SessionProcessor().apply(None, [
        ev.PageView(id="p", time=0.0, session_id="s", customer_id="c"),
        ev.OrderCompleted(id="o", time=MAX_TIME, session_id="s", revenue=1e9)])
    summary = session_summary(outcome(state, MAX_TIME))
    assert summary is not None and not ev.check_batch([summary])


@pytest.mark.parametrize("value", [b"1" + b"0" * 400, b"-1e308", b"123456789012345678901"])
def test_numbers_in_traits_are_bounded_too(value: bytes) -> None:
    """Traits are free-form, but a 400-digit integer (too large for a float) or a float past
    2**53 in them is refused like any other out-of-range number, not stored."""
    body = (b'{"type": "identify", "messageId": "m1", "userId": "c1", "anonymousId": "a1",'
            b' "timestamp": "2026-01-01T00:00:00Z", "traits": {"plan": "pro", "seats": '
            + value + b'}}')
    out = _norm(body)
    assert not out.support and _reasons(out) == ["invalid_field"]
    assert out.dead[0].detail.startswith("traits.seats:")
    ok = _norm(body.replace(value, b"12"))
    assert [e.traits for e in ok.support["c1"]] == [{"plan": "pro", "seats": 12}]
