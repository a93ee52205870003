"""The run: ``Simulator`` starts sessions as a Poisson process, plays them concurrently on one
event-time clock, and turns their actions into ``SimMessage`` s in time order while it collects
the truth."""

from __future__ import annotations

import functools
import heapq
import random
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any

import msgspec

from streams.sim.behaviour import PING, Behaviour
from streams.sim.config import Incident, SimConfig
from streams.sim.formats import Iso, ga4_payload, posthog_payload, segment_payload, snowplow_payload
from streams.sim.session import END, TICKET, Session
from streams.sim.tickets import burst_webhook
from streams.sim.truth import FrictionTruth, SessionOutcome, defines

__all__ = ["SimMessage", "Simulator"]

# --- output ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SimMessage:
    """One payload as a client would send it. ``payload`` shares sub-objects with other
    messages of its session (e.g. the Segment ``context``): treat it as read-only."""

    #: Event time, Unix seconds (whole milliseconds).
    time: float
    #: The ``fw-source`` header value: "segment", "ga4", "snowplow", "posthog" or "support".
    source: str
    #: Kafka key: the session id (web) or None (support webhooks).
    key: bytes | None
    payload: dict[str, Any]

    def encode(self) -> bytes:
        """The payload as compact JSON bytes (the Kafka value)."""
        return _encoder.encode(self.payload)

    def envelope(self) -> dict[str, Any]:
        """The line ``simulate --out`` writes and ``replay`` reads."""
        return {"time": self.time, "source": self.source,
                "key": self.key.decode() if self.key is not None else None,
                "payload": self.payload}


_encoder = msgspec.json.Encoder()


# --- the simulator ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=32)
def _calibrate(friction: tuple[tuple[str, float], ...], ga4_share: float, support_share: float,
               sessions: int) -> float:
    """Mean messages per session for these settings, without incidents. The sample's seed is
    fixed, so the session rate does not depend on the run's seed."""
    cfg = SimConfig(friction=dict(friction), ga4_share=ga4_share, support_share=support_share)
    world = Behaviour(cfg, random.Random("calibrate"), ())
    total = 0
    for _ in range(sessions):
        s = world.new_session(0)
        total += sum(1 for act in world.session(s) if act[1] is not END)
    return max(1.0, total / sessions)


class Simulator:
    """Generate messages for ``config``; collect the truth as they come out.

    ``messages()`` can be iterated once. ``truth`` and ``outcomes`` grow as messages are taken
    and are complete for what was taken when iteration stops (at the end, or early).
    """

    #: Sessions in the calibration sample that measures messages per session (about 2%
    #: standard error; 0.3 s, once per process and friction/share settings).
    CALIBRATION_SESSIONS = 5000

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.truth: list[FrictionTruth] = []
        self._outcomes: list[SessionOutcome] = []
        #: Messages emitted, by source.
        self.counts: dict[str, int] = {"segment": 0, "ga4": 0, "support": 0}
        for fmt in ("snowplow", "posthog"):
            if getattr(config, f"{fmt}_share"):
                self.counts[fmt] = 0
        self.sessions = 0
        self.orders = 0
        self.revenue = 0.0
        #: Last emitted event time (Unix seconds).
        self.clock = config.start
        self.messages_per_session = _calibrate(
            tuple(sorted(config.friction_rates.items())), config.ga4_share,
            config.support_share, self.CALIBRATION_SESSIONS)
        #: Session arrivals per second of event time.
        self.session_rate = config.events_per_second / self.messages_per_session
        self._started = False
        self._gen: Generator[SimMessage, None, None] | None = None
        #: Pending actions: (time ms, sequence, session or None for an arrival, action).
        self._heap: list[tuple[int, int, Session | None, Any]] = []

    @property
    def outcomes(self) -> list[SessionOutcome]:
        """One per session that emitted a web event, in order of first emitted event."""
        return self._outcomes

    def active_incidents(self, at: float | None = None) -> list[Incident]:
        """Incidents whose window contains ``at`` (default: the last emitted event time)."""
        t = (self.clock if at is None else at) - self.config.start
        return [i for i in self.config.incidents if i.start <= t < i.start + i.duration]

    def messages(self) -> Iterator[SimMessage]:
        """All messages in event-time order (ties: in the order they were generated)."""
        if self._started:
            raise RuntimeError("Simulator.messages() can be iterated only once")
        self._started = True
        self._gen = self._run()
        return self._gen

    def _run(self) -> Generator[SimMessage, None, None]:
        cfg = self.config
        rng = random.Random(cfg.seed)
        world = Behaviour(cfg, rng, cfg.incidents)
        start_ms = int(round(cfg.start * 1000))
        end_ms = start_ms + int(round(cfg.duration * 1000)) if cfg.duration is not None else None
        max_sessions = cfg.max_sessions
        mean_gap_ms = 1000.0 / self.session_rate
        iso = Iso()
        heap = self._heap
        push, pop = heapq.heappush, heapq.heappop
        seq = ping_seq = 0
        arrival = float(start_ms - int(cfg.warmup_seconds * 1000))
        if max_sessions != 0:
            push(heap, (int(arrival), 0, None, None))
        started = 0
        truth, counts, outcomes = self.truth, self.counts, self._outcomes
        registered: set[int] = set()
        defining: dict[int, tuple[FrictionTruth, int]] = {}  # see defines
        expo = rng.expovariate
        follow_ups = bool(cfg.followup_base or cfg.followup_effect)
        segment_render = segment_payload
        ga4_render = ga4_payload
        other_render = {"snowplow": snowplow_payload, "posthog": posthog_payload}
        burst = cfg.ticket_burst
        bursts = burst.draws(cfg.seed, cfg.start, None if end_ms is None else end_ms / 1000) \
            if burst is not None else None
        burst_next = next(bursts, None) if bursts is not None else None
        burst_rng = random.Random(f"{cfg.seed}:burst-customers")
        try:
            while heap:
                t, _, s, act = pop(heap)
                if end_ms is not None and t >= end_ms:
                    push(heap, (t, seq + 1, s, act))  # still pending: for _truncate
                    break
                while burst_next is not None and burst_next[0] * 1000 <= t:
                    bt, bn, subject, text = burst_next
                    u = burst_rng.random()
                    customer = f"cust_{int(cfg.customers * u * u):06d}"
                    counts["support"] += 1
                    self.clock = bt
                    yield SimMessage(bt, "support", None,
                                     burst_webhook(bn, bt, customer, subject, text))
                    burst_next = next(bursts, None) if bursts is not None else None
                if s is None:  # a session arrives
                    s = world.new_session(t)
                    s.gen = world.session(s)
                    started += 1
                    first = next(s.gen)
                    seq += 1
                    push(heap, (first[0], seq, s, first))
                    if max_sessions is None or started < max_sessions:
                        arrival += expo(1.0) * mean_gap_ms
                        seq += 1
                        push(heap, (max(t, int(arrival)), seq, None, None))
                    continue
                kind = act[1]
                visible = t >= start_ms
                if kind is END:
                    o = s.outcome
                    if o is not None:
                        o.finished = True
                        o.left = t / 1000
                        o.end = s.last_t / 1000
                        o.customer_id = s.customer_id
                        if not o.converted:
                            o.abandoned_step = s.last_step if o.checkout else 0 if o.cart else None
                        if o.checkout:
                            o.intent = round(1.0 - s.hesitancy / 2.5, 4)
                        if follow_ups:
                            back = world.follow_up(s)
                            if back is not None:
                                first = next(back.gen)
                                seq += 1
                                push(heap, (first[0], seq, back, first))
                elif kind is TICKET:
                    if visible:
                        counts["support"] += 1
                        self.clock = t / 1000
                        if s.outcome is not None and act[2]["ticket"]["status"] == "new":
                            s.outcome.ticket = True
                        yield SimMessage(t / 1000, "support", None, act[2])
                else:
                    s.last_t = t
                    o = s.outcome
                    if o is None:
                        o = s.outcome = SessionOutcome(
                            s.sid, s.customer_id, s.fmt, s.device, t / 1000, t / 1000,
                            partial=not visible, presence=s.beacons or s.heartbeats)
                    if kind == "Order Completed":
                        o.converted = True
                        o.revenue = act[2]["revenue"]
                        if visible:
                            self.orders += 1
                            self.revenue += o.revenue
                    elif kind == "Checkout Started":
                        o.checkout = True
                    elif kind == "Product Added":
                        o.cart = True
                    tr = act[3]
                    if tr is not None:
                        if tr.start == 0.0:
                            tr.start = t / 1000
                            tr.partial = not visible
                        tr.end = max(tr.end, t / 1000)
                        if tr.onset == 0.0 and defines(tr, kind, act[2], defining):
                            tr.onset = t / 1000
                    if visible:
                        if not s.registered:
                            s.registered = True
                            outcomes.append(o)
                            self.sessions += 1
                        if tr is not None and id(tr) not in registered:
                            registered.add(id(tr))  # registered records stay alive: ids unique
                            truth.append(tr)
                            o.frictions += 1
                        if kind == "identify":
                            o.customer_id = s.customer_id
                        self.clock = t / 1000
                        fmt = s.fmt
                        if fmt == "segment" or fmt == "ga4":
                            counts[fmt] += 1
                            s.n += 1
                            if fmt == "segment":
                                yield SimMessage(t / 1000, "segment", s.key,
                                                 segment_render(s, t, kind, act[2], iso))
                            else:
                                yield SimMessage(t / 1000, "ga4", s.key,
                                                 ga4_render(s, t, kind, act[2]))
                        else:
                            s.n += 1
                            payload = other_render[fmt](s, t, kind, act[2], iso)
                            if payload is not None:  # None: the format cannot say it
                                counts[fmt] += 1
                                yield SimMessage(t / 1000, fmt, s.key, payload)
                if kind is PING:
                    continue  # queued apart: the session's next act is queued already
                try:
                    nxt = next(s.gen)
                except StopIteration:
                    continue
                seq += 1
                push(heap, (nxt[0], seq, s, nxt))
                if s.heartbeats:
                    for ping in world.pings(s, act, nxt[0]):
                        ping_seq -= 1  # apart from ``seq``, so acts pop as they would without
                        push(heap, (ping[0], ping_seq, s, ping))
        finally:
            self.mark_truncated()

    def mark_truncated(self) -> None:
        """Set each friction record's ``truncated``: are some of its events still to come?

        Done when a run ends; ``write_truth`` calls it too, for a run stopped part-way."""
        pending = {id(act[3]) for _, _, _, act in self._heap
                   if act is not None and act[3] is not None}
        for tr in self.truth:
            # A stall's end is known only once the shopper's silence is over; one that would
            # outlast the run was cut short even if no act of it is pending.
            planned = tr.start + tr.detail["seconds"] if tr.friction == "step_stall" else 0.0
            tr.truncated = max(tr.end, planned) > self.clock or id(tr) in pending

    def finish(self) -> None:
        """Stop a run taken part-way (e.g. on Ctrl-C), so the truth says what was cut short.
        A run iterated to its end needs no call."""
        if self._gen is not None:
            self._gen.close()
