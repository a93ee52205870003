"""The traffic simulator: deterministic, adapter-clean, time-ordered, realistic, and its truth
is exact: every friction in the truth shows in the events the way its type says, and every
friction-like pattern in the events is in the truth."""

from __future__ import annotations

import dataclasses
import io
import itertools
import json
from collections import defaultdict
from typing import Any

import pytest

from detectors import events as ev
from detectors.noise import click_kind
from streams.adapters import adapt, detect
from streams.sim import (
    DEFAULT_START,
    FRICTION_TYPES,
    INCIDENT_KINDS,
    NO_FRICTION,
    PAGE_FRICTION,
    SHOP_URL,
    STEP_NAMES,
    FrictionTruth,
    Incident,
    SimConfig,
    SimMessage,
    Simulator,
    read_truth,
    write_truth,
)

START = DEFAULT_START
CHECKOUT_FRICTION = [f for f in FRICTION_TYPES if f not in PAGE_FRICTION]
INCIDENTS = (
    Incident("payment_outage", 120, 120),
    Incident("broken_field", 300, 120, {"step": "contact", "field": "email",
                                        "message": "Enter a valid email address"}),
    Incident("slow_step", 450, 120),
    Incident("api_outage", 600, 120),
    Incident("promo_broken", 750, 120, name="spring-promo"),
    Incident("broken_button", 180, 120, {"target": "button#continue"}),
)


class Run:
    """A finished simulation with its messages adapted to canonical events."""

    def __init__(self, config: SimConfig) -> None:
        self.sim = Simulator(config)
        self.messages: list[SimMessage] = list(self.sim.messages())
        self.events: list[Any] = []
        self.rejected: list[Any] = []
        for m in self.messages:
            out = adapt(m.payload, m.source)
            self.events.extend(out.events)
            self.rejected.extend(out.rejected)
        self.by_session: dict[str, list[Any]] = defaultdict(list)
        for e in self.events:
            if not isinstance(e, ev.Ticket):
                self.by_session[e.session_id].append(e)
        self.truth_by_session: dict[str, list[FrictionTruth]] = defaultdict(list)
        for t in self.sim.truth:
            self.truth_by_session[t.session_id].append(t)


@pytest.fixture(scope="module")
def busy() -> Run:
    """Friction well above default, every incident kind, the default warm-up."""
    return Run(SimConfig(seed=11, events_per_second=120, duration=900,
                         friction=dict.fromkeys(FRICTION_TYPES, 0.15), incidents=INCIDENTS))


@pytest.fixture(scope="module")
def population() -> Simulator:
    """Default settings; every session runs to its end (an unbiased sample of outcomes)."""
    sim = Simulator(SimConfig(seed=3, max_sessions=4000, warmup=0))
    for _ in sim.messages():
        pass
    return sim


# --- oracles: friction as the events show it (the rules in the simulator's docstring) --------


def evidence(events: list[Any]) -> set[str]:
    """Friction types whose pattern occurs in one session's web events (time-sorted)."""
    found: set[str] = set()
    clicks = [e for e in events if isinstance(e, ev.Click)]
    for i, c in enumerate(clicks):
        near = [d for d in clicks[i:] if d.time - c.time <= 1.0
                and abs(d.x - c.x) <= 30 and abs(d.y - c.y) <= 30]
        # Not rage: taps on a quantity stepper, a double or triple click selecting text.
        kind = click_kind(near[-1].target, near[-1].text) if len(near) >= 3 else None
        if len(near) >= 3 and kind != "stepper" and not (kind in ("text", "editable")
                                                         and len(near) <= 3):
            found.add("rage_click")
    for c in clicks:
        if any(isinstance(e, ev.JsError) and 0 <= e.time - c.time <= 1.0 for e in events):
            found.add("error_click")
    fields: dict[str, int] = defaultdict(int)
    declines = coupons = 0
    max_step = 0
    for prev, e in zip([None, *events], events, strict=False):
        if prev is not None and e.time - prev.time >= 240:
            found.add("step_stall")
        if isinstance(e, ev.DeadClick):
            found.add("dead_click")
        elif isinstance(e, ev.PagePerformance) and ((e.lcp_ms or 0) > 4000
                                                    or (e.inp_ms or 0) > 500):
            found.add("slow_page")
        elif isinstance(e, ev.PageView) and (e.status_code or 0) >= 400:
            found.add("error_page")
        elif isinstance(e, ev.ApiError):
            found.add("api_error")
        elif isinstance(e, ev.FormFieldError):
            fields[e.field] += 1
        elif isinstance(e, ev.PaymentAttempted) and not e.success:
            declines += 1
        elif isinstance(e, ev.CouponEntered) and not e.success:
            coupons += 1
        elif isinstance(e, ev.CheckoutStepViewed):
            if e.step < max_step:
                found.add("backtrack")
            max_step = max(max_step, e.step)
    if any(n >= 2 for n in fields.values()):
        found.add("form_error_loop")
    if declines >= 2:
        found.add("payment_declined")
    if coupons >= 2:
        found.add("coupon_failure")
    return found


def shows(t: FrictionTruth, events: list[Any]) -> bool:
    """The session's events show friction ``t`` from ``t.start`` the way its type says."""
    at = [e for e in events if e.time == t.start]
    after = [e for e in events if t.start <= e.time <= t.end]
    kind = t.friction
    if kind == "rage_click":
        clicks = [e for e in after if isinstance(e, ev.Click) and e.time - t.start <= 1.0]
        return len(clicks) >= 3 and all(abs(c.x - clicks[0].x) <= 30 and
                                        abs(c.y - clicks[0].y) <= 30 for c in clicks)
    if kind == "dead_click":
        [click] = [e for e in at if isinstance(e, ev.Click)]
        nxt = [e for e in events if e.time > t.start and not isinstance(e, ev.DeadClick)]
        return (any(isinstance(e, ev.DeadClick) for e in after) == t.detail["reported"]
                and (not nxt or nxt[0].time - t.start >= 4.0))
    if kind == "error_click":
        return any(isinstance(e, ev.Click) for e in at) and any(
            isinstance(e, ev.JsError) and e.time - t.start <= 1.0 for e in after)
    if kind == "form_error_loop":
        errors = [e for e in after if isinstance(e, ev.FormFieldError)]
        return (len(errors) == t.detail["errors"] >= 2
                and {e.field for e in errors} == {t.detail["field"]}
                and isinstance(at[0], ev.FormFieldError))
    if kind == "payment_declined":
        declines = [e for e in after if isinstance(e, ev.PaymentAttempted) and not e.success]
        ok = len(declines) >= t.detail["declines"] >= (1 if t.incident else 2)
        return ok and [d.decline_reason for d in declines][:len(t.detail["reasons"])] == \
            t.detail["reasons"] and isinstance(at[0], ev.PaymentAttempted)
    if kind == "step_stall":
        # The step view, the page loading (within a minute or two), then nothing for 4+ min:
        # until they come back (the event at ``end``) or for good.
        loading = [e for e in events if t.start <= e.time <= t.start + 120]
        later = [e for e in events if e.time > t.start + 120
                 and not isinstance(e, ev.Presence)]  # their leave beacon, if they left
        gap_ends = later[0].time if later else t.end
        return (isinstance(at[-1], ev.CheckoutStepViewed) and at[-1].step == t.step
                and gap_ends - loading[-1].time >= 240 and (not later or gap_ends == t.end))
    if kind == "backtrack":
        views = [e for e in after if isinstance(e, ev.CheckoutStepViewed)]
        back = [v for v in views if v.step == t.step - 1]
        return isinstance(at[0], ev.CheckoutStepViewed) and at[0].step == t.step - 1 and \
            len(back) == t.detail["returns"] >= 2
    if kind == "slow_page":
        [perf] = [e for e in at if isinstance(e, ev.PagePerformance)]
        return (perf.lcp_ms or 0) > 4000 or (perf.inp_ms or 0) > 500
    if kind == "error_page":
        [page] = [e for e in at if isinstance(e, ev.PageView)]
        return page.status_code == t.detail["status_code"] >= 400
    if kind == "api_error":
        errors = [e for e in after if isinstance(e, ev.ApiError)]
        return len(errors) == t.detail["failures"] >= 1 and isinstance(at[0], ev.ApiError)
    if kind == "coupon_failure":
        denied = [e for e in after if isinstance(e, ev.CouponEntered) and not e.success]
        return len(denied) == t.detail["failures"] >= 2 and \
            [d.code for d in denied] == t.detail["codes"]
    raise AssertionError(kind)


# --- tests ---------------------------------------------------------------------------------


def test_same_seed_same_output_and_truth() -> None:
    def run(seed: int) -> tuple[list[bytes], list[Any], list[Any]]:
        sim = Simulator(SimConfig(seed=seed, events_per_second=40, duration=300, warmup=120,
                                  incidents=INCIDENTS[:1]))
        msgs = [m.encode() + (m.key or b"") + m.source.encode() for m in sim.messages()]
        return (msgs, [dataclasses.asdict(t) for t in sim.truth],
                [dataclasses.asdict(o) for o in sim.outcomes])

    first = run(1)
    assert len(first[0]) > 5000 and first[1] and first[2]
    assert run(1) == first
    assert run(2)[0] != first[0]


def test_every_payload_adapts_cleanly_to_one_event_at_its_time(busy: Run) -> None:
    assert busy.rejected == []
    assert len(busy.events) == len(busy.messages)
    for m, e in zip(busy.messages, busy.events, strict=True):
        assert detect(m.payload) == m.source  # auto-detection agrees with the header
        assert e.time == m.time
        if m.source == "support":
            assert isinstance(e, ev.Ticket) and m.key is None
        else:
            assert m.key == e.session_id.encode()
    sources = {m.source for m in busy.messages}
    assert sources == {"segment", "ga4", "support"}
    kinds = {type(e).__name__ for e in busy.events}
    # Subscriptions play out over months (streams.sim.lifecycle simulates them); session
    # summaries are made by the worker, not sent by clients.
    lifecycle = {"Subscription", "SessionSummary"}
    # Focus and change on form fields come from Snowplow's form tracking only.
    snowplow_only = {"FormInteraction"}
    assert kinds == set(ev.__all__) & {c.__name__ for c in ev.EVENT_TYPES.values()} \
        - lifecycle - snowplow_only


def test_messages_in_event_time_order_within_the_window(busy: Run) -> None:
    times = [m.time for m in busy.messages]
    assert times == sorted(times)
    assert START <= times[0] < START + 2  # warm-up: full traffic from the first second
    assert times[-1] < START + 900


def test_rate_is_the_requested_one_from_the_start() -> None:
    times = [m.time - START for m in Simulator(SimConfig(seed=3, events_per_second=70,
                                                          duration=600)).messages()]
    assert len(times) == pytest.approx(70 * 600, rel=0.1)
    first_minute = sum(1 for t in times if t < 60)
    assert first_minute == pytest.approx(70 * 60, rel=0.2)


@pytest.mark.parametrize("types", [PAGE_FRICTION, CHECKOUT_FRICTION], ids=["page", "checkout"])
def test_every_friction_type_appears_when_its_probability_is_one(types: list[str]) -> None:
    sim = Simulator(SimConfig(seed=2, events_per_second=50, max_sessions=3000, warmup=0,
                              friction={**NO_FRICTION, **dict.fromkeys(types, 1.0)}))
    for _ in sim.messages():
        pass
    assert {t.friction for t in sim.truth} == set(types)
    assert all(t.incident is None and not t.partial for t in sim.truth)


def test_no_friction_no_incidents_means_empty_truth() -> None:
    sim = Simulator(SimConfig(seed=4, events_per_second=50, duration=300, friction=NO_FRICTION))
    assert sum(1 for _ in sim.messages()) > 10_000
    assert sim.truth == []


def test_a_broken_button_must_be_one_the_simulator_has() -> None:
    assert Incident.parse("broken_button@1m+2m").settings["target"] == "button#place-order"
    with pytest.raises(ValueError, match="unknown target"):
        Incident.parse("broken_button@1m+2m:target=a.nav-sale")


def test_every_incident_kind_hits_many_sessions_inside_its_window(busy: Run) -> None:
    by_incident: dict[str, list[FrictionTruth]] = defaultdict(list)
    for t in busy.sim.truth:
        if t.incident:
            by_incident[t.incident].append(t)
    assert {i.label for i in INCIDENTS} == set(by_incident)
    assert {i.kind for i in INCIDENTS} == set(INCIDENT_KINDS)
    expected = {"payment_outage": "payment_declined", "broken_field": "form_error_loop",
                "slow_step": "slow_page", "api_outage": "api_error",
                "promo_broken": "coupon_failure", "broken_button": "dead_click"}
    for inc in INCIDENTS:
        hits = by_incident[inc.label]
        assert len(hits) >= 5, inc
        assert {t.friction for t in hits} == {expected[inc.kind]}
        begin, end = START + inc.start, START + inc.start + inc.duration
        # Evidence starts once the incident is on, and (allowing for pages loading and people
        # typing) not long after it is over.
        assert all(begin <= t.start < end + 90 for t in hits), inc
    broken = by_incident[INCIDENTS[1].label]
    assert {(t.step, t.detail["field"]) for t in broken} == {(1, "email")}


def test_payment_declines_concentrate_in_the_outage(busy: Run) -> None:
    inside = [0, 0]
    outside = [0, 0]
    outage = INCIDENTS[0]
    for e in busy.events:
        if isinstance(e, ev.PaymentAttempted) and e.provider == "stripe":
            window = START + outage.start <= e.time < START + outage.start + outage.duration
            tally = inside if window else outside
            tally[0] += 1
            tally[1] += not e.success
    assert inside[0] >= 10 and outside[0] >= 50
    assert inside[1] / inside[0] > 0.7
    assert outside[1] / outside[0] < inside[1] / inside[0] / 2


def test_truth_start_is_an_event_that_shows_the_friction(busy: Run) -> None:
    assert len(busy.sim.truth) > 200
    for t in busy.sim.truth:
        events = busy.by_session[t.session_id]
        if t.partial:  # began in the warm-up: its first events were not emitted
            assert t.start < START
            continue
        assert t.start <= t.end
        if t.truncated:  # the run ended in the middle of it
            assert t.end >= busy.messages[-1].time - 60
            assert any(e.time == t.start for e in events)
            continue
        assert shows(t, events), t
    assert sum(t.truncated for t in busy.sim.truth) < 0.05 * len(busy.sim.truth)


def test_every_friction_pattern_in_the_events_is_in_the_truth(busy: Run) -> None:
    seen: set[str] = set()
    for sid, events in busy.by_session.items():
        found = evidence(events)
        truth = {t.friction for t in busy.truth_by_session[sid]}
        assert found <= truth, (sid, found - truth)
        seen |= found
    assert seen == set(FRICTION_TYPES)


def test_repeated_clicks_that_are_not_friction_are_there_and_not_flagged(busy: Run) -> None:
    from detectors.clicks import RageClickDetector
    from detectors.session import SessionProcessor

    selections = steppers = 0
    for sid, events in busy.by_session.items():
        clicks = [e for e in events if isinstance(e, ev.Click)]
        kinds = [click_kind(c.target, c.text) for c in clicks]
        selections += sum(k == "text" for k in kinds)
        steppers += sum(k == "stepper" for k in kinds)
        if "rage_click" in {t.friction for t in busy.truth_by_session[sid]}:
            continue
        _, out = SessionProcessor([RageClickDetector()]).apply(None, clicks)
        assert out == [], sid
    assert selections > 100 and steppers > 100


def test_conversion_and_checkout_completion_are_plausible(population: Simulator) -> None:
    done = population.outcomes
    assert len(done) == 4000 and all(o.finished for o in done)
    converted = [o for o in done if o.converted]
    checkouts = [o for o in done if o.checkout]
    assert 0.015 < len(converted) / len(done) < 0.045  # ~2-4% of sessions buy
    assert 0.4 < len(converted) / len(checkouts) < 0.8  # most checkouts complete
    assert all(o.revenue > 0 and o.abandoned_step is None for o in converted)
    left = [o for o in checkouts if not o.converted]
    assert {o.abandoned_step for o in left} <= {1, 2, 3, 4}
    assert {o.device for o in done} == {"desktop", "mobile", "tablet"}
    ga4 = sum(o.source == "ga4" for o in done) / len(done)
    assert 0.15 < ga4 < 0.25


def test_friction_makes_checkouts_fail_more_often(busy: Run) -> None:
    checkouts = [o for o in busy.sim.outcomes if o.finished and o.checkout]
    hit = [o for o in checkouts if o.frictions]
    clean = [o for o in checkouts if not o.frictions]
    assert len(hit) > 50 and len(clean) > 20
    rate = lambda group: sum(o.converted for o in group) / len(group)  # noqa: E731
    assert rate(hit) < rate(clean) * 0.7


def test_outcomes_match_the_events(busy: Run) -> None:
    for o in busy.sim.outcomes:
        events = busy.by_session[o.session_id]
        assert events, o
        orders = [e for e in events if isinstance(e, ev.OrderCompleted)]
        # A session begun in the warm-up may have ordered there (only its leave beacon shows).
        assert o.converted == bool(orders) or o.partial and o.converted
        if orders:
            assert o.revenue == orders[0].revenue
        if o.finished and not o.partial and o.checkout and not o.converted:
            # The step whose page they were on last: a step view, or an error page instead.
            steps = [e.step if isinstance(e, ev.CheckoutStepViewed) else
                     {f"/checkout/{n}": s for s, n in STEP_NAMES.items()}[e.url[len(SHOP_URL):]]
                     for e in events if isinstance(e, ev.CheckoutStepViewed)
                     or isinstance(e, ev.PageView) and (e.status_code or 0) >= 500]
            assert o.abandoned_step == steps[-1]
        assert o.frictions == len(busy.truth_by_session[o.session_id])
    assert any(o.partial for o in busy.sim.outcomes)


def test_support_tickets_follow_friction_and_link_the_session() -> None:
    run = Run(SimConfig(seed=8, events_per_second=2, duration=4 * 3600, support_share=1.0,
                        friction=dict.fromkeys(FRICTION_TYPES, 0.2)))
    tickets = [e for e in run.events if isinstance(e, ev.Ticket)]
    by_id: dict[str, list[str]] = defaultdict(list)
    for t in tickets:
        by_id[t.ticket_id].append(t.action)
    assert len(by_id) > 30
    lifecycles = {tuple(actions) for actions in by_id.values()}
    assert ("created", "updated", "solved") in lifecycles
    assert lifecycles <= {("created",), ("created", "updated"), ("created", "updated", "solved"),
                          ("updated",), ("updated", "solved"), ("solved",)}
    solved = [t for t in tickets if t.action == "solved"]
    assert {t.satisfaction for t in solved} == {"good", "bad"}
    outcomes = {o.session_id: o for o in run.sim.outcomes}
    created = [t for t in tickets if t.action == "created" and t.session_id in outcomes]
    assert len(created) > 20
    for t in created:
        o = outcomes[t.session_id]
        assert t.customer_id == o.customer_id and o.ticket and t.time > o.end
    with_friction = sum(bool(run.truth_by_session[t.session_id]) for t in created)
    assert with_friction >= len(created) * 0.7


def test_no_warmup_starts_empty() -> None:
    sim = Simulator(SimConfig(seed=1, events_per_second=50, duration=60, warmup=0))
    msgs = list(sim.messages())
    assert not any(o.partial for o in sim.outcomes) and not any(t.partial for t in sim.truth)
    assert len(msgs) < 50 * 60 * 0.8  # ramping up: sessions only just began


def test_max_sessions_runs_them_to_the_end() -> None:
    sim = Simulator(SimConfig(seed=1, max_sessions=200, warmup=0))
    for _ in sim.messages():
        pass
    assert len(sim.outcomes) == 200 and all(o.finished for o in sim.outcomes)


def test_truth_file_round_trip(busy: Run, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "truth.jsonl"
    n = write_truth(busy.sim, path)
    back = read_truth(path)
    assert n == len(back.incidents) + len(back.frictions) + len(back.outcomes)
    assert back.frictions == busy.sim.truth and back.outcomes == busy.sim.outcomes
    assert [i["name"] for i in back.incidents] == [i.label for i in INCIDENTS]
    assert back.incidents[0]["start"] == START + 120 and back.incidents[0]["params"] == \
        INCIDENT_KINDS["payment_outage"]


def test_a_run_stopped_part_way_says_what_was_cut_short() -> None:
    sim = Simulator(SimConfig(seed=6, events_per_second=100, warmup=0,
                              friction={**NO_FRICTION, "step_stall": 1.0, "backtrack": 1.0}))
    taken = list(itertools.islice(sim.messages(), 20_000))
    out = io.StringIO()
    write_truth(sim, out)
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    frictions = [r for r in records if r["record"] == "friction"]
    assert len(frictions) == len(sim.truth) > 20
    cut = [r for r in frictions if r["truncated"]]
    assert cut and len(cut) < len(frictions)
    last = taken[-1].time
    assert all(r["end"] <= last for r in frictions if not r["truncated"])
    assert any(r["end"] > last for r in cut if r["friction"] == "step_stall")
    sim.finish()


def test_messages_can_be_taken_once() -> None:
    sim = Simulator(SimConfig(duration=1, warmup=0))
    list(sim.messages())
    with pytest.raises(RuntimeError):
        sim.messages()


@pytest.mark.parametrize("spec", ["payment_outage", "nope@1+2", "slow_step@1+2:step=basket",
                                  "api_outage@1+2:colour=red", "broken_field@5+0",
                                  "promo_broken@1+2:code"])
def test_bad_incident_specs_are_value_errors(spec: str) -> None:
    with pytest.raises(ValueError):
        Incident.parse(spec)


def test_incident_spec_parses_units_and_values() -> None:
    inc = Incident.parse("api_outage@1m+90s:status_code=502,fail_rate=0.5")
    assert (inc.start, inc.duration) == (60.0, 90.0)
    assert inc.settings["status_code"] == 502 and inc.settings["fail_rate"] == 0.5


@pytest.mark.parametrize("kwargs", [{"events_per_second": 0}, {"friction": {"nope": 0.1}},
                                    {"friction": {"rage_click": 2}}, {"ga4_share": -0.1},
                                    {"snowplow_share": 1.5}, {"posthog_share": -0.1},
                                    {"ga4_share": 0.5, "snowplow_share": 0.3,
                                     "posthog_share": 0.3},
                                    {"duration": -1}, {"warmup": -5}])
def test_bad_config_is_a_value_error(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        SimConfig(**kwargs)


def test_a_new_friction_record_never_inherits_a_dead_ones_onset_count() -> None:
    # Counts were keyed by id(): a warm-up record freed mid-count could lend its id, and its
    # count, to a later record, whose onset then came early (seen as a same-seed mismatch).
    from streams.sim.truth import defines

    counts: dict[int, Any] = {}
    click = "Element Clicked"
    old = FrictionTruth("s0", None, "rage_click", 0.0, 0.0, None, None, {})
    assert not defines(old, click, {}, counts) and not defines(old, click, {}, counts)
    del old
    for i in range(200):
        fresh = FrictionTruth(f"s{i + 1}", None, "rage_click", 0.0, 0.0, None, None, {})
        assert [defines(fresh, click, {}, counts) for _ in range(3)] == [False, False, True]


def test_snowplow_and_posthog_sessions_adapt_cleanly_and_keep_their_sessions() -> None:
    """The same seed gives the same sessions in every format: the format comes from the draw
    that picks GA4, so the shares pick formats without changing anything else."""

    def run(**shares: float) -> tuple[list[SimMessage], list[Any]]:
        sim = Simulator(SimConfig(seed=3, events_per_second=40, duration=300, **shares))
        return list(sim.messages()), [o.session_id for o in sim.outcomes]

    segment, sessions = run(ga4_share=0.0, segment_beacons=1.0)
    # Leave beacons draw from the presence stream: Snowplow, which has none, is the run of
    # Segment without them, plus the sessions whose only messages in the window are
    # heartbeats (pings queue apart and draw from their own stream).
    pinged, (_, unpinged) = run(ga4_share=0.0, snowplow_share=1.0), run(ga4_share=0.0,
                                                                         segment_beacons=0.0)
    assert set(pinged[1]) >= set(unpinged)
    assert all(m.payload["event"] == "page_ping" for m in pinged[0]
               if m.key is not None and m.key.decode() not in set(unpinged))
    for name in ("snowplow", "posthog"):
        msgs, same = run(ga4_share=0.0, **{f"{name}_share": 1.0})
        assert name == "snowplow" or same == sessions
        assert {m.source for m in msgs} == {name, "support"}
        web = [m for m in msgs if m.source == name]
        for m in web:
            assert detect(m.payload) == name
            out = adapt(m.payload, name)
            assert not out.rejected and len(out.events) == 1
            assert out.events[0].time == m.time and m.key == out.events[0].session_id.encode()
        kinds = {type(adapt(m.payload, name).events[0]) for m in web}
        if name == "posthog":  # everything Segment sends, leave beacons included
            assert kinds == {type(e) for m in segment if m.source == "segment"
                             for e in adapt(m.payload, "segment").events}
        else:  # what Snowplow can say: heartbeats, not leave beacons; a field error only
            # as the field's change; no dead click or API error
            assert {e.state for m in web for e in adapt(m.payload, name).events
                    if isinstance(e, ev.Presence)} == {"here"}
            assert ev.OrderCompleted in kinds and ev.FormInteraction in kinds
            assert ev.Click in kinds and ev.PaymentAttempted in kinds
            assert not kinds & {ev.FormFieldError, ev.DeadClick, ev.ApiError}
    mixed = Simulator(SimConfig(seed=3, events_per_second=40, duration=120, ga4_share=0.25,
                                snowplow_share=0.25, posthog_share=0.25))
    assert {m.source for m in mixed.messages()} >= {"segment", "ga4", "snowplow", "posthog"}
    assert set(mixed.counts) == {"segment", "ga4", "snowplow", "posthog", "support"}
