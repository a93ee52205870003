"""The sessions agent: canonical web events fold into per-session state and the detectors run.

The web-events topic is keyed by session id. One engine per input partition: event time (the
watermark that runs deadlines and expiries) is per partition, where Kafka keeps order; across
partitions it does not, and a lagging partition must not see its sessions' deadlines run ahead
of their events. Each batch writes every session it changed once, and sends what the detectors
produced (signals, alerts, chat triggers, holdout records, session outcomes) on their topics.

Timers: ``event_time`` runs deadlines and expiries as each partition's event time moves (and
flushes the journey windows). Rebalances (``register_rebalance``, ``streams.rebalance``): the
engines of partitions that move away are dropped, and the stored sessions of partitions that
come in are taken over once their table partitions are recovered, so they still expire and
their deadlines run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, cast

import faust
import msgspec
from faust.types import EventT

from detectors.customer import session_summary
from detectors.engine import Engine, Outputs
from detectors.events import encode_batch
from detectors.session import decode_state
from streams import detection
from streams.context import Context, dead_letter, decode_events, failed, origin
from streams.deadletter import DeadLetter
from streams.guard import inc_finite
from streams.incidents import JourneyStats
from streams.rebalance import Ownership, rewind_uncommitted
from streams.tables import At, del_in_partition
from streams.topics import partition_for, topic_name

__all__ = ["register_sessions"]

STAGE = "sessions"

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
    experiments_topic, support_topic = topics["experiments"], topics["support_events"]
    m_signals, m_alerts = metrics.signals, metrics.alerts
    m_chats, m_outcomes = metrics.chat_triggers, metrics.sessions_ended
    m_at_risk, m_abandoned = metrics.revenue_at_risk, metrics.step_abandoned
    m_msgs = metrics.messages.labels(topic="web_events")
    m_batch = metrics.batch_seconds.labels(agent=STAGE)
    m_latency = metrics.processing_latency.labels(agent=STAGE)

    def engine_for(partition: int) -> Engine:
        eng = engines.get(partition)
        if eng is None:
            eng = engines[partition] = detection.engine(settings, ctx.processor, ctx.alerting)
        return eng

    def partition_of(key: bytes) -> int:
        n = app.consumer.topic_partitions(web_name) if app.consumer else None
        return partition_for(key, n or settings.partitions)

    def store(engine: Engine, partition: int, out: Outputs,
              touched: dict[str, EventT]) -> list[DeadLetter]:
        """Write back every session the batch or a deadline changed; delete expired ones.
        A session whose state cannot be written (too large for its changelog record) is
        dropped and starts fresh; its dead letters are returned."""
        dead: list[DeadLetter] = []
        ended = {o["session_id"] for o in out.outcomes}
        at = At(web_name, partition)
        for sid in touched.keys() | out.ticked | ended:
            key = sid.encode()
            event = touched.get(sid, at)
            state = engine.sessions.get(sid)
            if state is not None:
                if not ctx.write(sessions, key, state, ctx.dump_session, STAGE, event, dead):
                    # Its stale deadline and expiry entries are skipped when they come up.
                    del engine.sessions[sid]
            elif key in sessions:
                del_in_partition(sessions, key, event)
        return dead

    async def publish_outputs(out: Outputs, at: Any = None) -> None:
        """Send what the detectors produced; each record on its own, so one that cannot be
        encoded or sent becomes a dead letter and the others still go."""
        for sig in out.signals:
            m_signals.labels(type=sig.type).inc()
            await emit(signal_topic, sig.session_id, sig, "friction signal", at)
        for doc in out.alerts:
            m_alerts.labels(reason=doc["data"]["reason"]).inc()
            inc_finite(m_at_risk.labels(reason=doc["data"]["reason"]),
                       doc["data"]["revenue_at_risk"])
            await emit(alert_topic, doc["subject"], doc, "alert", at)
        for doc in out.chats:
            m_chats.labels(reason=doc["data"]["reason"]).inc()
            await emit(chat_topic, doc["subject"], doc, "chat trigger", at)
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
                await emit(support_topic, o["customer_id"], [summary], "session summary", at)

    async def emit(topic: Any, key: str, record: Any, what: str, at: Any) -> None:
        """Encode and send one output record; a failure is a dead letter, not an exception."""
        try:
            value = (encode_batch(record) if isinstance(record, list)
                     else msgspec.json.encode(record))
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

    @app.agent(topics["web_events"], name=STAGE)
    async def sessions_agent(stream: faust.StreamT[bytes]) -> None:
        async for batch in stream.take_events(*ctx.take):  # type: ignore[attr-defined]
            t0 = time.perf_counter()
            # partition -> (outputs, sessions touched and their last event)
            work: dict[int, tuple[Outputs, dict[str, EventT]]] = {}
            dead: list[DeadLetter] = []
            for event in batch:
                msg = event.message
                evs = decode_events(event, STAGE, dead)
                if evs is None:
                    continue
                engine = engine_for(msg.partition)
                pending = work.get(msg.partition)
                if pending is None:
                    pending = work[msg.partition] = (Outputs(), {})
                out, touched = pending
                sid = evs[0].session_id
                try:
                    if sid not in engine.sessions:
                        state = ctx.stored(sessions, sid.encode(), decode_state, STAGE, event,
                                           dead)
                        if state is not None:
                            engine.adopt(state)
                    engine.feed(evs, origin(msg, "w"), out)
                except Exception as exc:  # noqa: BLE001 - a detector bug must not stop the worker
                    ctx.bug(STAGE)
                    dead.append(dead_letter(event, "processing_error", failed(exc), STAGE))
                touched[sid] = event
            t1 = time.perf_counter()
            for partition, (out, touched) in work.items():
                dead += store(engines[partition], partition, out, touched)
            metrics.state_flush_seconds.observe(time.perf_counter() - t1)
            for out, _ in work.values():
                await publish_outputs(out)
            await guard.dead(dead)
            ctx.observe_latency(m_latency, batch)
            m_msgs.inc(len(batch))
            m_batch.observe(time.perf_counter() - t0)

    settled = register_rebalance(ctx, engines, engine_for, partition_of)

    @guard.timer(app, 1.0)
    async def event_time() -> None:
        """Deadlines and expiries as each partition's event time (its newest event) moves.
        A partition that fails does not hold up the others; the first error is raised at
        the end, for the timer's guard to count and log. Not while the group rebalances:
        an engine may be about to move to another worker (streams.rebalance)."""
        if not settled():
            return
        error: Exception | None = None
        for partition, engine in list(engines.items()):
            try:
                out = engine.advance(engine.watermark)
                if out.signals or out.outcomes or out.ticked:
                    await guard.dead(store(engine, partition, out, {}))
                    await publish_outputs(out)
            except Exception as exc:  # noqa: BLE001 - raised below, once the others ran
                error = error or exc
        if journey_stats is not None and engines:
            await journey_stats.flush(max(e.watermark for e in engines.values()))
        if error is not None:
            raise error

    return engines


# --- rebalances: engines follow the assignment (streams.rebalance) ---------------------------

def register_rebalance(ctx: Context, engines: dict[int, Engine],
                       engine_for: Callable[[int], Engine],
                       partition_of: Callable[[bytes], int]) -> Callable[[], bool]:
    """Drop the engines of partitions that move away, adopt the stored sessions of the
    partitions that come in once their table partitions are recovered. Returns whether the
    worker is settled (no rebalance under way): timers touch engines only then."""
    app, sessions, guard = ctx.app, ctx.sessions, ctx.guard
    web_name = topic_name("web_events", ctx.settings.topic_prefix)
    ownership = Ownership(web_name)
    # The topics Faust's agents read (not the tables' changelogs, which Faust positions).
    stream_topics = {t.get_topic_name() for t in ctx.topics.values()}

    def settled() -> bool:
        return ownership.settled and not app.rebalancing

    async def adopt_owned() -> None:
        """Take over the stored sessions of owned partitions that no engine holds, so they
        still expire (state stays bounded) and their deadlines still run."""
        dead: list[DeadLetter] = []

        def load(key: bytes) -> Any:
            state = ctx.stored(sessions, key, decode_state, STAGE, None, dead)
            if state is None and key in sessions:  # unreadable: the key starts fresh
                del_in_partition(sessions, key, At(web_name, partition_of(key)))
            return state

        ownership.adopt(sessions.keys(), partition_of,
                        lambda p, sid: p in engines and sid in engines[p].sessions,
                        load, lambda p, state: engine_for(p).adopt(state))
        await guard.dead(dead)

    async def on_revoked(sender: Any, *args: Any, **kw: Any) -> None:
        ownership.on_revoked()

    async def on_assigned(sender: Any, *args: Any, **kw: Any) -> None:
        ownership.on_assigned(args[0], engines)  # the new assignment (TopicPartitions)

    async def on_recovered(sender: Any, *args: Any, **kw: Any) -> None:
        # Faust sends this once the tables' active partitions are read back, before the
        # streams resume. The assignment is read again: this may come before on_assigned.
        ownership.on_assigned(app.consumer.assignment(), engines)
        try:
            await rewind_uncommitted(app.consumer, stream_topics)
        except Exception:  # noqa: BLE001 - a signal handler's error would end the worker
            guard.errors.exception("rebalance", "could not rewind the partitions that have "
                                   "no committed offset")
        await adopt_owned()

    # Faust's stubs want a keyword-only ``signal`` argument; its senders pass it by keyword.
    app.on_partitions_revoked.connect(cast(Any, on_revoked))
    app.on_partitions_assigned.connect(cast(Any, on_assigned))
    app.on_rebalance_complete.connect(cast(Any, on_recovered))

    @guard.timer(app, 30.0)
    async def adopt_stored_sessions() -> None:
        """A safety net: stored sessions of owned partitions that no engine holds (none,
        unless a rebalance signal was missed) are taken over."""
        if settled():
            await adopt_owned()

    return settled
