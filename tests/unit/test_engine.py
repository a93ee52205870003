"""Engine and alerting: expiry and outcomes, bounded state, one alert per cooldown,
results independent of batching."""

from __future__ import annotations

import random

from detectors import events as ev
from detectors.alerting import Alerting, hash_customer
from detectors.base import BaseDetector, Signal
from detectors.engine import Engine
from detectors.session import SessionProcessor, SessionState


class Declines(BaseDetector):
    """Toy: every declined payment is a signal."""

    name = "payment_declined"
    handles = (ev.PaymentAttempted,)

    def update(self, state: SessionState, event: ev.PaymentAttempted) -> list[Signal]:
        return [] if event.success else [self.signal(state, event.time, event.time, step=3)]


class Silence(BaseDetector):
    """Toy timed detector: a click with nothing after it for 1 s."""

    name = "dead_click"
    handles = tuple(ev.EVENT_TYPES.values())

    def update(self, state: SessionState, event: object) -> list[Signal]:
        mem = self.memory(state)
        if type(event) is ev.Click:
            mem["t"] = event.time  # type: ignore[attr-defined]
        else:
            mem.pop("t", None)
        return []

    def due(self, state: SessionState) -> float | None:
        t = state.detector_state.get(self.name, {}).get("t")
        return None if t is None else t + 1.0

    def tick(self, state: SessionState, now: float) -> list[Signal]:
        return [self.signal(state, now, self.memory(state).pop("t"))]


def _decline(sid: str, t: float) -> ev.PaymentAttempted:
    return ev.PaymentAttempted(id=f"{sid}-{t}", time=t, session_id=sid, success=False,
                               customer_id="cust-1")


def test_one_alert_and_one_chat_per_cooldown_however_long_it_struggles() -> None:
    eng = Engine(SessionProcessor([Declines()]), Alerting(cooldown=900, half_life=300),
                 session_gap=7200)
    alerts, chats = [], []
    for i in range(300):  # a decline every 2 s for 10 minutes
        out = eng.feed([_decline("s1", 1000.0 + 2 * i)])
        alerts += out.alerts
        chats += out.chats
    assert len(alerts) == 1 and len(chats) == 1
    a = alerts[0]
    assert a["specversion"] == "1.0" and a["subject"] == "s1"
    assert a["data"]["customer"] == hash_customer("cust-1") != "cust-1"
    assert a["data"]["signals"][-1]["type"] == "payment_declined"
    # Calm for long enough, then struggling again: one more of each.
    for i in range(5):
        out = eng.feed([_decline("s1", 5000.0 + i)])
        alerts += out.alerts
        chats += out.chats
    assert len(alerts) == 2 and len(chats) == 2
    assert len({a["id"] for a in alerts}) == 2 and len({c["id"] for c in chats}) == 2
    # The same session id back after expiry is a new session: new ids, not duplicates.
    out = eng.feed([_decline("s1", 20_000.0)])
    assert out.outcomes and out.alerts and out.alerts[0]["id"] not in {a["id"] for a in alerts}


def test_ids_are_deterministic() -> None:
    def run() -> list[str]:
        eng = Engine(SessionProcessor([Declines()]), Alerting())
        return [a["id"] for i in range(3) for a in eng.feed([_decline("s", 10.0 + i)]).alerts]

    assert run() == run() and len(run()) == 1


def test_many_short_sessions_expire_and_state_stays_bounded() -> None:
    eng = Engine(SessionProcessor([Silence()]), Alerting(), session_gap=60)
    outcomes = 0
    peak = 0
    for i in range(10_000):  # a new 2-event session every second
        sid = f"s{i}"
        out = eng.feed([ev.PageView(id=f"{i}a", time=float(i), session_id=sid),
                        ev.Click(id=f"{i}b", time=i + 0.5, session_id=sid, x=1, y=1)])
        outcomes += len(out.outcomes)
        peak = max(peak, len(eng.sessions), len(eng._due), len(eng._expiry))
    outcomes += len(eng.close().outcomes)
    assert outcomes == 10_000 and not eng.sessions
    assert peak <= 70  # about gap / inter-arrival, not the number of sessions


def test_deadline_signals_do_not_depend_on_batching_or_watermark() -> None:
    rng = random.Random(3)
    events = []
    t = 0.0
    for i in range(2000):
        t += rng.expovariate(2.0)
        sid = f"s{rng.randrange(40)}"
        cls = rng.choice(["click", "page"])
        events.append(ev.Click(id=str(i), time=t, session_id=sid, x=1, y=1) if cls == "click"
                      else ev.PageView(id=str(i), time=t, session_id=sid))

    def run(advance_every: int | None) -> list[tuple[str, float, float]]:
        eng = Engine(SessionProcessor([Silence()]), session_gap=30)
        sigs = []
        for n, e in enumerate(events):
            sigs += eng.feed([e]).signals
            if advance_every and n % advance_every == 0:
                sigs += eng.advance(e.time).signals
        sigs += eng.close().signals
        return sorted((s.session_id, s.start, s.time) for s in sigs)

    a, b = run(None), run(7)
    assert a == b and len(a) > 100
    assert all(abs(t - (s + 1.0)) < 1e-9 for _, s, t in a)


def test_outcomes_say_converted_or_where_abandoned() -> None:
    eng = Engine(SessionProcessor(), session_gap=10)
    eng.feed([ev.CartUpdated(id="1", time=0.0, session_id="a", action="add", cart_value=30.0)])
    eng.feed([ev.CheckoutStepViewed(id="2", time=0.0, session_id="b", step=3)])
    eng.feed([ev.OrderCompleted(id="3", time=0.0, session_id="c", revenue=12.5)])
    eng.feed([ev.PageView(id="4", time=0.0, session_id="d")])
    got = {o["session_id"]: (o["converted"], o["abandoned_step"], o["revenue"])
           for o in eng.close().outcomes}
    assert got == {"a": (False, 0, 0.0), "b": (False, 3, 0.0), "c": (True, None, 12.5),
                   "d": (False, None, 0.0)}
