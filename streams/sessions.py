"""The sessions agent: canonical web events fold into per-session state and the detectors run.

The web-events topic is keyed by session id. One engine per input partition: event time (the
watermark that runs deadlines and expiries) is per partition, where Kafka keeps order; across
partitions it does not, and a lagging partition must not see its sessions' deadlines run ahead
of their events. A message is a bundle of many sessions' entries (``streams.bundle``). Each
changed session is written once per commit interval, its messages acknowledged only then
(``streams.dirty``); each batch sends what the detectors produced (signals, alerts, chat
triggers, holdout records, session outcomes) on their topics.

Timers: ``event_time`` runs deadlines and expiries as each partition's event time moves (and
flushes the journey windows). Rebalances (``register_rebalance``, ``streams.rebalance``): the
engines of partitions that move away are dropped, and the stored sessions of partitions that
come in are taken over once their table partitions are recovered, so they still expire and
their deadlines run.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, cast

import faust
import msgspec
from faust.types import EventT

from detectors.customer import session_summary
from detectors.engine import Engine, Outputs
from detectors.session import decode_state
from models.segments import UNKNOWN
from streams import detection
from streams.bundle import Bundle, Entry
from streams.context import Context, dead_letter, decode_entries, entry_origin, failed
from streams.deadletter import DeadLetter
from streams.dirty import DirtyStates, Pending
from streams.guard import inc_finite
from streams.incidents import JourneyStats
from streams.rebalance import Ownership, rewind_uncommitted
from streams.segments import SegmentKpis
from streams.tables import At, del_in_partition
from streams.take import take_batches
from streams.topics import partition_for, topic_name

__all__ = ["register_sessions"]

log = logging.getLogger(__name__)

STAGE = "sessions"

#: State flushes a worker goes on past before their changelog records are acknowledged. Each
#: waited for the previous one's (and so the sessions stage for a broker round trip per batch):
#: at 14,000 events/s paced that wait, and the producer flush before each, were a fifth of
#: the stage's time, in which no batch was applied (``bench/latency.py``).
_FLUSHES_IN_FLIGHT = 4
#: Seconds a revocation waits for the changelog writes made before it (a broker round trip;
#: the group waits for this worker to rejoin, ``Settings.broker_rebalance_timeout``).
_REVOKE_DELIVERY_WAIT = 1.0

#: Device labels kept as they are; any other value counts as "other" (bounded labels).
_DEVICES = frozenset({"desktop", "mobile", "tablet"})


def _outcome_label(o: dict[str, Any]) -> str:
    if o["converted"]:
        return "converted"
    return "abandoned" if o["abandoned_step"] is not None else "browsed"


def register_sessions(ctx: Context, journey_stats: JourneyStats | None) -> dict[int, Engine]:
    """The sessions agent and its timers; returns the engines by partition."""
    app, settings, metrics, guard = ctx.app, ctx.settings, ctx.metrics, ctx.guard
    sessions, topics = ctx.sessions, ctx.topics
    web_name = topic_name("web_events", settings.topic_prefix)
    engines: dict[int, Engine] = {}
    signal_topic, alert_topic = topics["friction_signals"], topics["alerts"]
    chat_topic, labels_topic = topics["chat_triggers"], topics["labels"]
    email_topic = topics["email_triggers"]
    experiments_topic, support_topic = topics["experiments"], topics["support_events"]
    m_signals, m_alerts, m_site = metrics.signals, metrics.alerts, metrics.site_health
    m_chats, m_outcomes = metrics.chat_triggers, metrics.sessions_ended
    # Anonymous sessions' KPIs under segment "unknown"; known customers' are counted by the
    # customers agent, under their segment (streams.segments).
    segment_kpis = SegmentKpis(metrics, settings.segments_k) \
        if settings.customer_segments else None
    m_at_risk, m_abandoned = metrics.revenue_at_risk, metrics.step_abandoned
    m_msgs = metrics.messages.labels(topic="web_events")
    m_applied = metrics.events_applied.labels(agent=STAGE)
    m_batch = metrics.batch_seconds.labels(agent=STAGE)
    m_latency = metrics.processing_latency.labels(agent=STAGE)

    ownership = Ownership(web_name)
    ctx.acks.guard(web_name)

    def engine_for(partition: int) -> Engine:
        eng = engines.get(partition)
        if eng is None:
            eng = engines[partition] = detection.engine(settings, ctx.processor, ctx.alerting)
        return eng

    def partition_of(key: bytes) -> int:
        n = app.consumer.topic_partitions(web_name) if app.consumer else None
        return partition_for(key, n or settings.partitions)

    def store_keys(engine: Engine, keys: dict[str, Any]) -> list[DeadLetter]:
        """Write back sessions by id, each with the message its write is attributed to;
        delete those no longer stored (``Engine.stored``: live, or ended with a follow-up
        waiting). A session whose state cannot be written (too large for its changelog
        record) is dropped and starts fresh; its dead letters are returned."""
        dead: list[DeadLetter] = []
        for sid, event in keys.items():
            key = sid.encode()
            state = engine.stored(sid)
            if state is not None:
                if not ctx.write(sessions, key, state, ctx.dump_session, STAGE, event,
                                 dead) and sid in engine.sessions:
                    # Its stale deadline and expiry entries are skipped when they come up.
                    del engine.sessions[sid]
            elif key in sessions:
                del_in_partition(sessions, key, event)
        return dead

    # Changed sessions are written once per commit interval, their messages acknowledged
    # only then (streams.dirty): a busy session is encoded and sent to the changelog once
    # per interval, not once per batch (each commit takes the acks of the flush before it).
    dirty = DirtyStates(settings.state_flush_interval, on_acked=lambda e: app.sensors
                        .on_message_out(e.message.tp, e.message.offset, e.message))

    # Flushes written but not yet acknowledged by the broker: the next batches are applied
    # meanwhile, up to this many flushes behind (each holds its messages' acks).
    in_flight = asyncio.Semaphore(_FLUSHES_IN_FLIGHT)
    # Records up to this write number were waited for by an earlier flush (see flush_dirty).
    waited = ctx.changelogs.mark()
    # A batch (feed and outputs), a slice of a flush's writes and the event-time timer's
    # deadlines never interleave.
    serial = asyncio.Lock()
    # One flush writes at a time; the next batches are applied between its slices.
    writing = asyncio.Lock()
    flusher: asyncio.Future[None] | None = None

    async def flush_dirty(wait: bool = True) -> None:
        """Write the changed states, then acknowledge their messages.

        Outputs are at least once: the outputs a batch produced are delivered before the
        states that record them are written, so a kill in between re-sends them when the
        messages are read again (alerts and chat triggers keep their ids, for consumers to
        drop the copy) and never loses them; the other way round, a state that reached the
        changelog marks its messages as applied, and outputs still in the producer's buffer
        at the kill were lost for good (26 of 1,026 signals in one multi-worker run).

        The order is kept by ``Changelogs``, which flushes the producer (the outputs) before
        it sends the changelog records written since; this flush does not wait for that.

        The states are written a slice at a time (``DirtyStates.write_in_slices``), each
        holding ``serial``: batches are applied between slices, never during one, and each
        sends its outputs before it lets go of ``serial``, so every state written is as its
        outputs were sent. A batch waits for one slice, not for a whole flush: at 22,000
        events/s paced, writing a batch's states took twice as long as applying it, and
        the next batch's alerts waited for all of it (``bench/latency.py``). With ``wait``
        False it returns once the states are written: the next batch is applied while the
        broker acknowledges them, instead of idling a round trip per batch. Their messages
        are acknowledged once every changelog record written since the previous flush (the
        states, and deletions of ended sessions made by batches and timers in between) is
        delivered."""
        nonlocal waited
        await in_flight.acquire()
        t1 = time.perf_counter()
        dead: list[DeadLetter] = []

        def write(partition: int, keys: dict[str, Any]) -> None:
            dead.extend(store_keys(engines[partition], keys))

        try:
            async with writing:
                since = waited
                written = await dirty.write_in_slices(engines.get, write, settled,
                                                      lock=serial)
                upto = waited = ctx.changelogs.mark()
        except BaseException:
            in_flight.release()
            raise
        delivery = asyncio.ensure_future(acknowledge_flush(written, dead, t1, since, upto))
        if wait:
            await asyncio.shield(delivery)

    def flush_soon() -> None:
        """Start a flush beside the agent, unless one is writing: the agent goes on with
        the next batch (``flush_dirty``)."""
        nonlocal flusher
        if not writing.locked() and (flusher is None or flusher.done()):
            flusher = asyncio.ensure_future(flush_beside())

    async def flush_beside() -> None:
        try:
            await flush_dirty(wait=False)
        except Exception:  # noqa: BLE001 - its messages stay unacknowledged: read again
            guard.errors.exception("flush", "state flush failed")

    async def acknowledge_flush(written: list[Pending], dead: list[DeadLetter], t1: float,
                                since: int, upto: int) -> None:
        try:
            await ctx.changelogs.acknowledge_when_delivered(dirty, written, guard.errors,
                                                            "state", since, upto)
            metrics.state_flush_seconds.observe(time.perf_counter() - t1)
            await guard.dead(dead)
        except Exception:  # noqa: BLE001 - its messages stay unacknowledged: read again
            guard.errors.exception("flush", "state flush failed")
        finally:
            in_flight.release()

    async def publish_outputs(out: Outputs, at: Any = None) -> None:
        """Send what the detectors produced; each record on its own, so one that cannot be
        encoded or sent becomes a dead letter and the others still go."""
        for sig in out.signals:
            site = sig.evidence.get("scope") == "site"
            (m_site if site else m_signals).labels(type=sig.type).inc()
            await emit(signal_topic, sig.session_id, sig, "friction signal", at)
        for doc in out.alerts:
            m_alerts.labels(reason=doc["data"]["reason"]).inc()
            inc_finite(m_at_risk.labels(reason=doc["data"]["reason"]),
                       doc["data"]["revenue_at_risk"])
            await emit(alert_topic, doc["subject"], doc, "alert", at)
        for doc in out.chats:
            m_chats.labels(reason=doc["data"]["reason"]).inc()
            await emit(chat_topic, doc["subject"], doc, "chat trigger", at)
        for doc in out.followups:
            metrics.followup_triggers.labels(kind=doc["data"]["kind"]).inc()
            await emit(email_topic, doc["subject"], doc, "follow-up trigger", at)
        for rec in out.experiments:
            if rec["type"] == "exposure":
                metrics.exposures.labels(rec["experiment"], rec["arm"]).inc()
            await emit(experiments_topic, rec["unit"], rec, "holdout record", at)
        for o in out.outcomes:
            label = _outcome_label(o)
            m_outcomes.labels(outcome=label).inc()
            if not o["converted"] and o.get("journey"):
                m_abandoned.labels(o["journey"], o["journey_step"]).inc()
            kpi_counts(o, label)
            await emit(labels_topic, o["session_id"], o, "session outcome", at)
            # Known customers' sessions reach their customer's state (and churn model).
            try:
                summary = session_summary(o)
            except Exception as exc:  # noqa: BLE001 - the outcome went; this one is lost
                ctx.bug(STAGE)
                await guard.dead([guard.letter("processing_error", failed(exc), STAGE,
                                               msgspec.json.encode(o), at)])
                continue
            if summary is not None:
                # A bundle of one entry, its origin this message's own position.
                await emit(support_topic, o["customer_id"],
                           Bundle([Entry(o["customer_id"], None, [summary])]),
                           "session summary", at)

    async def emit(topic: Any, key: str, record: Any, what: str, at: Any) -> None:
        """Encode and send one output record; a failure is a dead letter, not an exception."""
        try:
            value = msgspec.json.encode(record)
        except Exception as exc:  # noqa: BLE001 - one record, not the batch
            ctx.bug(STAGE)
            await guard.dead([guard.letter("processing_error", f"{what} not encodable: "
                                           f"{failed(exc)}", STAGE, repr(record)[:4096]
                                           .encode(), at)])
            return
        await guard.send(topic, key.encode(), value, stage=STAGE, what=what, at=at)

    def kpi_counts(o: dict[str, Any], label: str) -> None:
        """Per journey and device: sessions by outcome, orders, revenue (the KPIs' inputs).
        Only finite amounts are counted: a counter that took +Inf reads +Inf for good."""
        journey = o.get("journey") or "none"
        device = o.get("device")
        device = device if device in _DEVICES else "other" if device else "unknown"
        metrics.session_outcomes.labels(journey, device, label).inc()
        if o["converted"]:
            inc_finite(metrics.session_orders.labels(journey, device), o.get("orders") or 1)
            inc_finite(metrics.session_revenue.labels(journey, device), o["revenue"])
        if segment_kpis is not None and not o.get("customer_id"):
            segment_kpis.count(UNKNOWN, converted=o["converted"],
                               abandoned=label == "abandoned", orders=o.get("orders") or 1,
                               revenue=o["revenue"],
                               friction=sum((o.get("friction") or {}).values()))

    @app.agent(topics["web_events"], name=STAGE)
    async def sessions_agent(stream: faust.StreamT[bytes]) -> None:
        async for batch in take_batches(stream, *ctx.take):
            # One at a time with the event-time timer: a deadline it ran between this
            # batch's feed and its flush could end a session before its state was written.
            async with serial:
                t0 = time.perf_counter()
                # partition -> (outputs, sessions touched and their last event, the events)
                work: dict[int, tuple[Outputs, dict[str, EventT], list[EventT]]] = {}
                dead: list[DeadLetter] = []
                applied = 0
                fed: dict[int, Engine] = {}
                for event in ctx.acks.current(batch):  # streams.acks
                    msg = event.message
                    if msg.partition not in ownership.owned:
                        # Fetched before a rebalance took the partition away: its next owner
                        # re-reads it. Never acknowledged here.
                        msg.incref()
                        continue
                    engine = fed[msg.partition] = engine_for(msg.partition)
                    pending = work.get(msg.partition)
                    if pending is None:
                        pending = work[msg.partition] = (Outputs(), {}, [])
                    out, touched, events = pending
                    events.append(event)
                    entries = decode_entries(event, STAGE, dead)
                    if entries is None:
                        continue
                    for entry in entries:  # one session's events from one ingest message each
                        evs = entry.events
                        sid = evs[0].session_id
                        try:
                            if sid not in engine.sessions:
                                state = ctx.stored(sessions, sid.encode(), decode_state, STAGE,
                                                   event, dead)
                                if state is not None:
                                    engine.adopt(state)
                            engine.feed(evs, entry_origin(entry, msg, "w"), out)
                        except Exception as exc:  # noqa: BLE001 - a detector bug must not stop it
                            ctx.bug(STAGE)
                            dead.append(dead_letter(event, "processing_error", failed(exc), STAGE))
                        applied += len(evs)
                        touched[sid] = event
                m_applied.inc(applied)
                # Held before anything awaits: a rebalance in an await below can take a partition
                # away, and then its messages must stay unacknowledged (its next owner re-reads).
                for partition, (out, touched, events) in work.items():
                    engine, at = fed[partition], At(web_name, partition)
                    for sid in out.ticked:
                        dirty.mark(partition, engine, sid, touched.get(sid, at))
                    for sid, last in touched.items():
                        dirty.mark(partition, engine, sid, last)
                    dirty.hold(partition, engine, events)
                # Outputs before the states that record them (see flush_dirty).
                for out, _, _ in work.values():
                    await publish_outputs(out)
                if any(out.outcomes or out.released for out, _, _ in work.values()):
                    for partition, (out, touched, _) in work.items():
                        engine = fed[partition]
                        if engines.get(partition) is not engine:
                            continue
                        # Ended sessions leave the table now (or stay as their waiting
                        # follow-up, and go with it): the adopt timer must not take a stale
                        # copy back while the deletion waits for the flush.
                        gone = {o["session_id"] for o in out.outcomes} | out.released
                        dead += store_keys(engine, {
                            sid: touched.get(sid, At(web_name, partition))
                            for sid in gone if sid not in engine.sessions})
                await guard.dead(dead)
                await ctx.acks.seek_back(app.consumer)
            if dirty.due() and settled():
                flush_soon()
            ctx.observe_latency(m_latency, batch)
            m_msgs.inc(len(batch))
            m_batch.observe(time.perf_counter() - t0)

    settled = register_rebalance(ctx, ownership, engines, engine_for, partition_of, serial)

    @guard.timer(app, max(dirty.interval, 0.5))
    async def flush_states() -> None:
        """Write what changed since the last flush when no batch came to do it. Not while
        the group rebalances: a partition being taken away must not have its state written
        after its next owner started; its held messages are re-read there instead."""
        if dirty.due() and settled() and not writing.locked() and not in_flight.locked():
            await flush_dirty()

    @guard.timer(app, 1.0)
    async def event_time() -> None:
        """Deadlines and expiries as each partition's event time (its newest event) moves.
        A partition that fails does not hold up the others; the first error is raised at
        the end, for the timer's guard to count and log. Not while the group rebalances:
        an engine may be about to move to another worker (streams.rebalance)."""
        if not settled():
            return
        async with serial:
            await run_deadlines()

    async def run_deadlines() -> None:
        error: Exception | None = None
        for partition, engine in list(engines.items()):
            try:
                out = engine.advance(engine.watermark)
                if (out.signals or out.outcomes or out.ticked or out.followups
                        or out.experiments or out.released):
                    await publish_outputs(out)
                    at = At(web_name, partition)
                    ended = {o["session_id"] for o in out.outcomes}
                    if ended or out.released:
                        # Ended sessions leave the table now (the adopt timer must not take
                        # a stale copy back), or stay as their waiting follow-up and go with
                        # it; their outcomes reach the broker first (streams.tables.Changelogs).
                        await guard.dead(store_keys(engine, dict.fromkeys(
                            ended | (out.released - engine.sessions.keys()), at)))
                    # Ticked ones are written with the next flush, as a batch's are: at
                    # 14,000 events/s a deadline per click made this timer write thousands
                    # of states a second on its own, holding the sessions stage for 1.5 s.
                    for sid in out.ticked - ended:
                        dirty.mark(partition, engine, sid, at)
            except Exception as exc:  # noqa: BLE001 - raised below, once the others ran
                error = error or exc
        if journey_stats is not None and engines:
            await journey_stats.flush(max(e.watermark for e in engines.values()))
        if error is not None:
            raise error

    return engines


# --- rebalances: engines follow the assignment (streams.rebalance) ---------------------------

def register_rebalance(ctx: Context, ownership: Ownership, engines: dict[int, Engine],
                       engine_for: Callable[[int], Engine],
                       partition_of: Callable[[bytes], int], serial: asyncio.Lock
                       ) -> Callable[[], bool]:
    """Drop the engines of partitions that move away, adopt the stored sessions of the
    partitions that come in once their table partitions are recovered. Returns whether the
    worker is settled (no rebalance under way): timers touch engines only then. ``serial``:
    held by the sessions agent over a batch, which the safety-net timer must not split."""
    app, sessions, guard = ctx.app, ctx.sessions, ctx.guard
    # The topics Faust's agents read (not the tables' changelogs, which Faust positions).
    stream_topics = {t.get_topic_name() for t in ctx.topics.values()}

    def settled() -> bool:
        return ownership.settled and not app.rebalancing

    async def adopt_owned(slice_size: int | None = None) -> None:
        """Take over the stored sessions of owned partitions that no engine holds, so they
        still expire (state stays bounded) and their deadlines still run. With
        ``slice_size``, that many stored keys at a time, each slice between two batches
        (``serial``) and the event loop free in between: over 130,000 stored sessions the
        whole scan was a pause of the worker of about 0.3 s (``bench/latency.py``)."""
        dead: list[DeadLetter] = []

        def load(key: bytes) -> Any:
            state = ctx.stored(sessions, key, decode_state, STAGE, None, dead)
            if state is None and key in sessions:  # unreadable: the key starts fresh
                del_in_partition(sessions, key, At(ownership.topic, partition_of(key)))
            return state

        def adopt(keys: Iterable[bytes]) -> None:
            ownership.adopt(keys, partition_of,
                            lambda sid: any(e.stored(sid) is not None
                                            for e in engines.values()),
                            load, lambda p, state: engine_for(p).adopt(state))

        if slice_size is None:
            adopt(sessions.keys())
        else:
            keys = list(sessions.keys())
            for i in range(0, len(keys), slice_size):
                await asyncio.sleep(0)
                async with serial:
                    if not settled():
                        break  # a rebalance adopts what it needs when it completes
                    adopt(keys[i:i + slice_size])
        await guard.dead(dead)

    async def on_revoked(sender: Any, *args: Any, **kw: Any) -> None:
        ownership.on_revoked()  # no flush, timer or slice writes a state from here on
        ctx.acks.revoked()
        # Faust awaits this before the worker rejoins, and the next owners start only
        # once it has: states written before the revocation reach the changelog first, so
        # the recovery of whoever takes their partitions reads them back.
        try:
            # Bounded twice: the send itself waits for room when the broker is unreachable.
            errors = await asyncio.wait_for(ctx.changelogs.delivered(
                timeout=_REVOKE_DELIVERY_WAIT), 2 * _REVOKE_DELIVERY_WAIT)
        except Exception as exc:  # noqa: BLE001 - a signal handler's error ends the worker
            errors = [exc]
        if errors:
            guard.errors.error("rebalance", "rebalance: %d changelog writes not delivered "
                               "before the revocation (%s)", len(errors), errors[0])

    async def on_assigned(sender: Any, *args: Any, **kw: Any) -> None:
        ownership.on_assigned(args[0], engines)  # the new assignment (TopicPartitions)

    async def on_recovered(sender: Any, *args: Any, **kw: Any) -> None:
        # Faust sends this once the tables' active partitions are read back, before the
        # streams resume. The assignment is read again: this may come before on_assigned.
        ownership.on_assigned(app.consumer.assignment(), engines)
        positions: dict[Any, int] = {}
        try:
            await rewind_uncommitted(app.consumer, stream_topics, positions)
        except Exception:  # noqa: BLE001 - a signal handler's error would end the worker
            guard.errors.exception("rebalance", "rebalance: could not rewind partitions "
                                   "without a committed offset")
            positions = {}  # the agents then take whatever comes, as Faust delivers it
        ctx.acks.expect(positions)
        await adopt_owned()

    # Faust's stubs want a keyword-only ``signal`` argument; its senders pass it by keyword.
    app.on_partitions_revoked.connect(cast(Any, on_revoked))
    app.on_partitions_assigned.connect(cast(Any, on_assigned))
    app.on_rebalance_complete.connect(cast(Any, on_recovered))

    @guard.timer(app, 300.0)
    async def adopt_stored_sessions() -> None:
        """A safety net: stored sessions of owned partitions that no engine holds (none,
        unless a rebalance signal was missed) are taken over. Every 5 minutes, not 30 s:
        reading every stored key back from the table takes the worker about 0.3 s of CPU
        with 130,000 sessions, sliced or not, and every 30 s it was the p99 of the latency
        bench (at most 163 ms in its other 5 s windows, 404 ms in the one it fell in)."""
        if settled():
            await adopt_owned(slice_size=5000)

    return settled
