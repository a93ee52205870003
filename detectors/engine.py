"""The detection engine: session state, detectors, deadlines, expiry and alerting, driven by
event time. Pure: the offline backtest runs it over a file, the worker runs it per partition.

``feed(events)`` applies one message's events (one session). Before it does, every deadline
and expiry that event time has passed is run, so the order of work depends only on event
times, never on wall-clock time or on how messages were batched: the same events give the
same signals, alerts and outcomes in the stream and in the backtest.

Deadlines run *at their due time* (a dead click is flagged 1 s after the click, not when the
watermark happens to pass), which keeps results independent of the watermark's granularity.

Idle sessions expire ``session_gap`` seconds (event time) after their last event, emitting an
outcome (converted with revenue, or abandoned at a step) that later issues use as a label, so
state stays bounded. A session id the source named (not ``derived_session``) is not split by
a gap: if it comes back within ``explicit_gap`` seconds of its last event, the new state
continues that session and its outcome says ``continued`` (counted for orders and revenue,
not as another session). Only the ids are remembered for that long, in memory: after a
restart or a rebalance such a return starts a session of its own.

>>> from detectors.events import CheckoutStepViewed, OrderCompleted, PageView
>>> eng = Engine(SessionProcessor(), session_gap=60)
>>> out = eng.feed([PageView(id="1", time=0.0, session_id="a"),
...                 CheckoutStepViewed(id="2", time=5.0, session_id="a", step=2)])
>>> out = eng.feed([PageView(id="3", time=200.0, session_id="b")])
>>> [(o["session_id"], o["converted"], o["abandoned_step"]) for o in out.outcomes]
[('a', False, 2)]
>>> len(eng.sessions)
1
>>> out = eng.feed([OrderCompleted(id="4", time=900.0, session_id="a", revenue=30.0)])
>>> out = eng.close(out)
>>> [(o["session_id"], o["converted"], o["continued"]) for o in out.outcomes]
[('b', False, False), ('a', True, True)]
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from detectors.alerting import Alerting
from detectors.base import Signal
from detectors.elements import record_hits
from detectors.events import OrderCompleted
from detectors.followup import FollowUps
from detectors.funnel import Funnel
from detectors.holdout import Holdout, results
from detectors.session import SessionProcessor, SessionState

__all__ = ["Engine", "Outputs", "outcome"]


def _seconds(iso: str) -> float:
    """Unix seconds of a CloudEvents time (``...Z``)."""
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


@dataclass
class Outputs:
    """What feeding or advancing produced, in order."""

    signals: list[Signal] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    chats: list[dict[str, Any]] = field(default_factory=list)
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    #: Holdout records (``detectors.holdout``): exposures of both arms as they happen, and
    #: each exposed session's result when it ends.
    experiments: list[dict[str, Any]] = field(default_factory=list)
    #: Sessions whose state a deadline changed (the worker writes them back).
    ticked: set[str] = field(default_factory=set)
    #: Follow-ups of abandoned carts and checkouts to send (``detectors.followup``).
    followups: list[dict[str, Any]] = field(default_factory=list)
    #: Ids of ended sessions whose waiting follow-up left (sent, cancelled, replaced): the
    #: worker stores ``Engine.stored(id)`` under each (deletes it, unless the id is live).
    released: set[str] = field(default_factory=set)


def outcome(state: SessionState, expired_at: float) -> dict[str, Any]:
    """A session's outcome label: converted with revenue, or where it was abandoned."""
    abandoned = None
    if not state.converted and (state.cart_value > 0 or state.max_checkout_step > 0):
        abandoned = state.checkout_step  # 0: left with a cart before checkout
    journey = state.detector_state.get("journey") or {}
    return {
        "type": "session_outcome",
        "session_id": state.session_id,
        "customer_id": state.customer_id,
        "device": state.device,
        # The traffic channel it came from (``detectors.traffic``): a touch of its journey.
        "source": state.source,
        "start": state.first_time,
        "end": state.last_time,
        "expired_at": expired_at,
        "converted": state.converted,
        "revenue": round(state.revenue, 2),
        "orders": state.orders,
        "cart_value": round(state.cart_value, 2),
        "abandoned_step": abandoned,
        "max_checkout_step": state.max_checkout_step,
        # Where in its journey (if any) the session ended: the step it was last in.
        "journey": journey.get("journey"),
        "journey_step": journey.get("step_name"),
        "friction": dict(state.friction),
        # Elements it met click friction on: [type, journey/step or page path, element].
        "elements": [list(hit) for hit in state.detector_state.get("elements") or ()],
        # A later part of a session already reported: not a session of its own in counts.
        "continued": state.continued,
    }


class Engine:
    """Sessions in a dict, deadlines and expiries in heaps (stale entries skipped lazily).

    Parameters
    ----------
    processor
        The detectors, wrapped in a ``SessionProcessor``.
    alerting
        Score/alert/chat policy; None: signals only.
    session_gap
        Seconds of event-time inactivity after which a session expires.
    funnel
        Journey counts per window (``detectors.funnel``) the signals are added to, at the
        step each session is in; the journey tracker adds entries to the same one.
    holdout
        Randomized holdouts of the interventions (``detectors.holdout``): a chat trigger for
        a session in a control arm is not sent; its counterfactual exposure is recorded.
    explicit_gap
        Seconds after its last event within which a session id the source named continues
        its session (module docstring); at most ``session_gap`` splits every id on idle time.
    followups
        Follow-ups of abandoned sessions (``detectors.followup``), due by event time like
        deadlines; None: none.
    """

    def __init__(self, processor: SessionProcessor, alerting: Alerting | None = None,
                 session_gap: float = 1800.0, funnel: Funnel | None = None,
                 holdout: Holdout | None = None, explicit_gap: float = 14400.0,
                 followups: FollowUps | None = None) -> None:
        self.processor = processor
        self.followups = followups
        # The follow-ups' heap (always a list, so the hot path's check stays one truth test).
        self._fdue: list[tuple[float, str]] = followups.heap if followups is not None else []
        self.alerting = alerting
        self.session_gap = session_gap
        self.explicit_gap = explicit_gap
        # Expired sessions' ids, to the last time their id may continue them; in order of
        # expiry (so of that time, give or take a batch), pruned from the front.
        self._ended: dict[str, float] = {}
        self._ended_order: deque[tuple[float, str]] = deque()
        self.funnel = funnel
        self.holdout = holdout
        self.sessions: dict[str, SessionState] = {}
        self.watermark = -math.inf
        # One heap entry per session at most (plus stale ones popped in passing), so memory is
        # bounded by the number of live sessions, not of events.
        self._due: list[tuple[float, str]] = []
        self._scheduled: dict[str, float] = {}
        self._expiry: list[tuple[float, str]] = []
        self._step = processor.step
        # Ids whose stored follow-up state goes (``Outputs.released``): the follow-ups' own
        # set, filled as they leave; without follow-ups, the waiting ones ``adopt`` found
        # (one set either way: the hot path tests one).
        self._released: set[str] = followups.released if followups is not None else set()

    def feed(self, events: Sequence[Any], origin: tuple[str, int] | None = None,
             out: Outputs | None = None) -> Outputs:
        """Apply one message's events (all of one session, in order); what it produces is
        appended to ``out`` (a new ``Outputs`` if None) and returned."""
        if out is None:
            out = Outputs()
        if not events:
            return out
        # The hot path: most messages carry one event and nothing is due before it.
        first = events[0].time if len(events) == 1 else min(e.time for e in events)
        if first > self.watermark:
            due, expiry, fdue = self._due, self._expiry, self._fdue
            if (due and due[0][0] <= first) or (expiry and expiry[0][0] <= first) or (
                    fdue and fdue[0][0] <= first):
                self._advance(first, out, strict=True)
            else:
                self.watermark = first
        sid = events[0].session_id
        state = self.sessions.get(sid)
        if state is None:
            # Checked (and moved on if the session had events since) when it comes up.
            last = events[-1].time if len(events) == 1 else max(e.time for e in events)
            heapq.heappush(self._expiry, (last + self.session_gap, sid))
            state, signals = self.processor.apply(None, events, origin)
            self.sessions[sid] = state
            if self._ended and self._returns(events[0]):
                state.continued = True
            before, orders = None, 0
        else:  # updated in place
            before, orders = state.due_at, state.orders
            state, signals = self.processor.apply(state, events, origin)
        if signals:
            self._emit(state, signals, out)
        if state.orders != orders and self.followups is not None:
            # Once, at the order (a replayed message applies none), by its own time: the
            # session's later events do not make an order placed before another session's
            # abandonment come after it.
            self.followups.ordered(sid, state.customer_id,
                                   max(e.time for e in events if type(e) is OrderCompleted))
        if self._released:
            self._take_released(out)
        # An unchanged deadline is in the heap already (it leaves only when it comes due).
        if state.due_at is not None and state.due_at != before:
            self._schedule(state)
        return out

    def feed_many(self, events: Iterable[Any], out: Outputs) -> None:
        """Feed each event as a message of its own, in order: ``feed([e], None, out)`` for
        each, without a call per event (the backtest's hot path). Each must be a session (web)
        event with an id and a session id."""
        sessions, gap, step = self.sessions, self.session_gap, self._step
        due, expiry, fdue, fu = self._due, self._expiry, self._fdue, self.followups
        watermark = self.watermark
        for event in events:
            now = event.time
            if now > watermark:
                if (due and due[0][0] <= now) or (expiry and expiry[0][0] <= now) or (
                        fdue and fdue[0][0] <= now):
                    self._advance(now, out, strict=True)
                watermark = self.watermark = now
            sid = event.session_id
            state = sessions.get(sid)
            if state is None:
                heapq.heappush(expiry, (now + gap, sid))
                state = sessions[sid] = SessionState(session_id=sid)
                if self._ended and self._returns(event):
                    state.continued = True
                before = None
            else:
                before = state.due_at
            signals = step(state, event)
            if signals:
                self._emit(state, signals, out)
            if fu is not None and type(event) is OrderCompleted:
                fu.ordered(sid, state.customer_id, now)  # once, at the order (as ``feed``)
            after = state.due_at
            if after is not None and after != before:
                self._schedule(state)
        if self._released:
            self._take_released(out)

    def stored(self, session_id: str) -> SessionState | None:
        """The state to keep stored under ``session_id``: the live session's, or that of an
        ended one whose follow-up waits (``detectors.followup``); None: none (delete it)."""
        state = self.sessions.get(session_id)
        if state is None and self.followups is not None:
            state = self.followups.state_of(session_id)
        return state

    def adopt(self, state: SessionState) -> None:
        """Take over a session whose state was stored elsewhere (the worker's table after a
        restart or a rebalance): its expiry and deadlines are scheduled again, or, for an
        ended one whose follow-up waits, that follow-up (a stale one is ``released`` by the
        next call that returns ``Outputs``)."""
        sid = state.session_id
        if sid in self.sessions:
            return
        if state.followup_due is not None:
            if self.followups is not None:
                self.followups.restore(state)  # releases it if no longer due
            else:
                self._released.add(sid)  # follow-ups turned off since
            return
        self.sessions[sid] = state
        heapq.heappush(self._expiry, (state.last_time + self.session_gap, sid))
        self._schedule(state)

    def advance(self, now: float, out: Outputs | None = None) -> Outputs:
        """Event time reached ``now``: run deadlines and expiries up to it."""
        if out is None:
            out = Outputs()
        self._advance(now, out, strict=False)
        if self._released:
            self._take_released(out)
        return out

    def close(self, out: Outputs | None = None) -> Outputs:
        """End of input: run what is due up to the last event time, then expire every
        session. Deadlines beyond the data are not run: what the customer did next is not in
        it (a stall flagged there would be a guess about the future)."""
        out = self.advance(self.watermark, out)
        finish = self.processor.finish
        for sid in sorted(self.sessions, key=lambda k: self.sessions[k].last_time):
            state = self.sessions[sid]
            done = outcome(state, state.last_time + self.session_gap)
            finish(state, done)
            self._ended_session(state, done, out)
        self.sessions.clear()
        self._scheduled.clear()
        self._due.clear()
        self._expiry.clear()
        return out

    # --- internals -----------------------------------------------------------------------

    def _take_released(self, out: Outputs) -> None:
        out.released |= self._released
        self._released.clear()

    def _emit(self, state: SessionState, signals: Iterable[Signal], out: Outputs) -> None:
        signals = list(signals)
        if not signals:
            return
        for s in signals:
            state.friction[s.type] = state.friction.get(s.type, 0) + 1
        out.signals += signals
        hits = record_hits(state, signals)
        if self.funnel is not None:
            # A page failing outside the journeys (site health) is not the step's friction.
            self.funnel.signals(state, [s for s in signals if s.evidence.get("scope") != "site"],
                                hits)
        if self.alerting is not None:
            alerts, chats = self.alerting.on_signals(state, signals)
            out.alerts += alerts
            if chats and self.holdout is not None:
                chats = self._hold_out(state, alerts, chats, out)
            out.chats += chats

    def _hold_out(self, state: SessionState, alerts: list[dict[str, Any]],
                  chats: list[dict[str, Any]], out: Outputs) -> list[dict[str, Any]]:
        """The chat triggers to send: those of sessions in a treatment arm. Each one, sent or
        withheld, leaves its exposure record; the alert says which arm the session is in."""
        assert self.holdout is not None
        sent = []
        for chat in chats:
            data = chat["data"]
            deliver, record = self.holdout.expose(
                state, "chat", time=_seconds(chat["time"]), score=data["priority"],
                reason=data["reason"], id=chat["id"])
            if record is None:
                sent.append(chat)
                continue
            out.experiments.append(record)
            if deliver:
                sent.append(chat)
            if alerts:
                alerts[-1]["data"]["intervention"] = {
                    "type": "chat", "experiment": record["experiment"], "arm": record["arm"],
                    "withheld": not deliver}
        return sent

    def _ended_session(self, state: SessionState, done: dict[str, Any], out: Outputs) -> None:
        out.outcomes.append(done)
        if self.holdout is not None:
            out.experiments += results(state, done["expired_at"])
        if self.followups is not None:
            out.experiments += self.followups.ended(state, done["expired_at"])

    def _remember(self, sid: str, until: float) -> None:
        ended, order = self._ended, self._ended_order
        while order and order[0][0] < self.watermark:
            old_until, old = order.popleft()
            if ended.get(old) == old_until:
                del ended[old]
        ended[sid] = until
        order.append((until, sid))

    def _returns(self, event: Any) -> bool:
        """Whether a new session's first event continues an expired one (module docstring)."""
        until = self._ended.pop(event.session_id, None)
        return until is not None and event.time <= until and not event.derived_session

    def _schedule(self, state: SessionState) -> None:
        due = state.due_at  # the processor keeps it (SessionProcessor.next_due)
        if due is None:
            return
        sid = state.session_id
        if due < self._scheduled.get(sid, math.inf):
            self._scheduled[sid] = due
            heapq.heappush(self._due, (due, sid))

    def _advance(self, now: float, out: Outputs, strict: bool) -> None:
        """Run what is due before ``now`` (``strict``: due < now, so an event at exactly a
        deadline is applied by ``feed`` itself, which ticks first) or at ``now``."""
        self.watermark = max(self.watermark, now)
        due, expiry, fdue = self._due, self._expiry, self._fdue
        while True:
            next_due = due[0][0] if due else math.inf
            next_exp = expiry[0][0] if expiry else math.inf
            next_fu = fdue[0][0] if fdue else math.inf
            t = min(next_due, next_exp, next_fu)
            if t > now or (strict and t == now) or t == math.inf:
                return
            if next_fu < min(next_due, next_exp):
                # Follow-ups in event-time order with expiries: a return session ending
                # after one must find its customer exposed.
                assert self.followups is not None
                sent, records = self.followups.fire(t)
                out.followups += sent
                out.experiments += records
            elif next_due <= next_exp:
                _, sid = heapq.heappop(due)
                if self._scheduled.get(sid) != t:
                    continue  # stale: superseded by an earlier deadline
                del self._scheduled[sid]
                state = self.sessions.get(sid)
                if state is None:
                    continue
                if state.due_at == t:
                    self._emit(state, self.processor.advance(state, t), out)
                    out.ticked.add(sid)
                self._schedule(state)  # its next deadline, if any (maybe later than t)
            else:
                _, sid = heapq.heappop(expiry)
                state = self.sessions.get(sid)
                if state is None:
                    continue
                expires = state.last_time + self.session_gap
                if expires > t:  # it had events since: look again then
                    heapq.heappush(expiry, (expires, sid))
                    continue
                # Deadlines inside the gap ran above (they come first in time).
                del self.sessions[sid]
                self._scheduled.pop(sid, None)
                done = outcome(state, t)
                self.processor.finish(state, done)
                self._ended_session(state, done, out)
                if self.explicit_gap > self.session_gap:
                    self._remember(sid, state.last_time + self.explicit_gap)
