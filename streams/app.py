"""The Faust worker: topics, tables, agents and web views, built from one ``Settings``.

Read top to bottom: app, topics, tables, agents, web views. Agents stay short; the logic they
call is pure and lives in ``detectors/`` (session and customer state) and
``streams.normalize`` (adapters and dead letters).

Throughput design (DEVELOPERS.md, "Measured facts"): Faust costs about 150 us per message, so
agents take messages in batches (``stream.take_events``), a message may carry many events, and
each session's state is written to its table once per batch, not once per event.

Exact recovery: ``take_events`` acks a batch only after the agent body has run, Faust flushes
the producer (table changelog included) before it commits offsets, and each state remembers the
offset of the last message applied to it, so messages replayed after a crash between the
changelog flush and the offset commit are skipped instead of applied twice.
"""

from __future__ import annotations

import logging
import math
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import faust
import msgspec
from faust.sensors.prometheus import setup_prometheus_sensors
from faust.types import EventT
from kafka.partitioner.default import murmur2

from detectors.customer import (
    CustomerState,
    apply_customer,
    decode_customer,
    session_summary,
)
from detectors.engine import Engine, Outputs
from detectors.events import Ticket, decode_batch, encode_batch
from detectors.session import (
    SessionProcessor,
    decode_state,
    is_replay,
)
from models.feedback import FeedbackTally
from models.triage import TicketTriage
from streams import checkpoints, detection
from streams.budgets import state_writers
from streams.collector import register_collector
from streams.deadletter import DeadLetter, decode_reason, make_dead_letter
from streams.experiments import register_experiments
from streams.feedback import register_feedback
from streams.guard import EXCERPT_BYTES, Guard, inc_finite, set_finite
from streams.health import consumer_lag, register_health
from streams.incidents import JourneyStats, register_incidents
from streams.memory import release_free_memory
from streams.metrics import METRICS, Metrics
from streams.normalize import Normalized, normalize
from streams.settings import Settings
from streams.tables import At, del_in_partition, set_in_partition
from streams.topics import ORIGIN_HEADER, SOURCE_HEADER, topic_name

log = logging.getLogger(__name__)

__all__ = ["Worker", "create_worker", "SESSIONS_TABLE", "CUSTOMERS_TABLE"]

SESSIONS_TABLE = "sessions"
CUSTOMERS_TABLE = "customers"


def _credentials(settings: Settings) -> Any:
    kw = settings.kafka_client_kwargs()
    if settings.sasl_mechanism:
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password,
            mechanism=settings.sasl_mechanism,
            ssl_context=cast(ssl.SSLContext | None, kw.get("ssl_context")),
        )
    if "ssl_context" in kw:
        return faust.SSLCredentials(cast(ssl.SSLContext, kw["ssl_context"]))
    return None


def _header(headers: Any, name: str) -> str | None:
    if not headers:
        return None
    items = headers.items() if isinstance(headers, dict) else headers
    for k, v in items:
        if k == name:
            return v.decode() if isinstance(v, bytes | bytearray) else str(v)
    return None


def _origin(msg: Any, own: str) -> tuple[str, int]:
    """Where a canonical message's events came from: the ingest position in its header when
    the normalize agent sent it, else this message's own partition and offset."""
    raw = _header(msg.headers, ORIGIN_HEADER)
    if raw:
        name, _, offset = raw.rpartition(":")
        if name and offset.isdigit():
            return name, int(offset)
    return f"{own}{msg.partition}", msg.offset


def _dead_letter(event: EventT, reason: Any, detail: str, stage: str) -> DeadLetter:
    msg = event.message
    # An excerpt, not the whole message: a dead letter must never be too large to send.
    return make_dead_letter(reason, detail, stage, event.value or b"", time.time(),
                            msg.topic, msg.partition, msg.offset, keep=EXCERPT_BYTES)


def _failed(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _decode_events(event: EventT, stage: str, dead: list[DeadLetter]) -> list[Any] | None:
    """A canonical message's events, or None after adding its dead letter to ``dead``."""
    try:
        evs = decode_batch(event.value)
        if not event.message.key or not evs:
            raise ValueError("message without a key or events")
    except (msgspec.DecodeError, UnicodeDecodeError, ValueError) as exc:
        dead.append(_dead_letter(event, decode_reason(exc), str(exc), stage))
        return None
    except Exception as exc:  # noqa: BLE001 - e.g. RecursionError: the message, not the agent
        dead.append(_dead_letter(event, "processing_error", _failed(exc), stage))
        return None
    return evs


#: Device labels kept as they are; any other value counts as "other" (bounded labels).
_DEVICES = frozenset({"desktop", "mobile", "tablet"})


def _outcome_label(o: dict[str, Any]) -> str:
    if o["converted"]:
        return "converted"
    return "abandoned" if o["abandoned_step"] is not None else "browsed"


@dataclass
class Worker:
    """The app and what tests and commands need to reach inside it."""

    app: faust.App
    settings: Settings
    processor: SessionProcessor
    topics: dict[str, faust.TopicT]
    sessions: Any
    customers: Any


def create_worker(
    settings: Settings,
    bootstrap: str,
    processor: SessionProcessor | None = None,
    metrics: Metrics = METRICS,
) -> Worker:
    """Build the Faust app for ``bootstrap`` (``host:port,...``)."""
    if settings.store == "rocksdb://":
        try:
            import rocksdict  # noqa: F401
        except ImportError as exc:
            raise RuntimeError("FRICTIONWATCH_STORE=rocksdb:// needs rocksdict: "
                               "pip install 'frictionwatch[rocksdb]'") from exc
    processor = processor or detection.processor(settings)
    alerting = detection.alerting(settings, processor)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    max_request = max(settings.max_payload_bytes * 2, 1_048_576)
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{h.strip()}" for h in bootstrap.split(",") if h.strip()],
        broker_credentials=_credentials(settings),
        store=settings.store,
        datadir=str(settings.data_dir),
        web_host=settings.web_host,
        # Faust listens on web_bind (0.0.0.0 unless told): bind where web_host says, and let
        # aiohttp refuse bodies over the limit for views that read them whole.
        web_bind=settings.web_host,
        web_port=settings.web_port,
        web_application_options={"client_max_size": settings.max_payload_bytes},
        web_in_thread=False,
        broker_commit_interval=settings.commit_interval,
        broker_rebalance_timeout=settings.broker_rebalance_timeout,
        broker_session_timeout=settings.broker_session_timeout,
        # Heartbeats well inside the session timeout, so a busy batch never costs membership.
        broker_heartbeat_interval=min(3.0, settings.broker_session_timeout / 5),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        producer_max_request_size=max_request,
        consumer_auto_offset_reset="earliest",
        autodiscover=False,
        # Our own JSON is encoded by msgspec; Faust only moves bytes.
        key_serializer="raw",
        value_serializer="raw",
    )
    # Faust's own sensor under "faust_", ours under "frictionwatch_": one /metrics, no clashes.
    setup_prometheus_sensors(
        app, pattern="/metrics", registry=metrics.registry, name_prefix="faust"
    )

    def _topic(logical: str) -> faust.TopicT:
        return app.topic(
            topic_name(logical, settings.topic_prefix),
            key_type=bytes,
            value_type=bytes,
            partitions=settings.partitions,
        )

    topics = {
        name: _topic(name)
        for name in (
            "ingest",
            "web_events",
            "support_events",
            "friction_signals",
            "alerts",
            "chat_triggers",
            "labels",
            "triage",
            "journey_stats",
            "experiments",
            "feedback",
            "dead_letters",
        )
    }
    sessions = app.Table(SESSIONS_TABLE, partitions=settings.partitions, key_type=bytes,
                         value_type=bytes)
    customers = app.Table(CUSTOMERS_TABLE, partitions=settings.partitions, key_type=bytes,
                          value_type=bytes)
    web_topic, support_topic = topics["web_events"], topics["support_events"]
    dead_topic, signal_topic = topics["dead_letters"], topics["friction_signals"]
    alert_topic, chat_topic = topics["alerts"], topics["chat_triggers"]
    labels_topic = topics["labels"]
    take = (settings.batch_max_messages, settings.batch_within)
    # Every send and table write is measured against the producer's limit first, and every
    # timer's errors are counted and logged (streams.guard): nothing ends the worker.
    guard = Guard(max_request, dead_topic, metrics.dead_letters, metrics.timer_errors)
    send, send_dead, timer = guard.send, guard.dead, guard.timer

    def bug(stage: str) -> None:
        """Log the exception being handled (with its traceback, rate limited): a bug to fix."""
        guard.errors.exception(f"agent:{stage}", "%s: a message failed; dead-lettered", stage)
    # State budgets (detectors.budget): stored states stay small, what that drops is counted.
    dump_session, dump_customer = state_writers(settings, metrics)

    m_events = metrics.events
    m_msgs = {k: metrics.messages.labels(topic=k) for k in topics}
    m_batch = {k: metrics.batch_seconds.labels(agent=k) for k in ("normalize", "sessions",
                                                                 "customers")}
    m_latency = {k: metrics.processing_latency.labels(agent=k) for k in m_batch}

    def observe_latency(agent: str, batch: Sequence[EventT]) -> None:
        """Kafka timestamp to now, for each message of a processed batch."""
        now, observe = time.time(), m_latency[agent].observe
        for event in batch:
            observe(max(0.0, now - event.message.timestamp))

    async def publish(out: Normalized, origin: bytes | None = None, at: Any = None,
                      stage: str = "collector") -> None:
        """Send normalized events on by key, and dead letters with their reason."""
        headers = [(ORIGIN_HEADER, origin)] if origin else None
        for topic, groups in ((web_topic, out.web), (support_topic, out.support)):
            for key, evs in groups.items():
                await send(topic, key.encode(), encode_batch(evs), headers=headers,
                           stage=stage, what="canonical events", at=at)
        await send_dead(out.dead)
        for (fmt, etype), n in out.counts.items():
            m_events.labels(source=fmt, type=etype).inc(n)

    @app.agent(topics["ingest"], name="normalize")
    async def normalize_agent(stream: faust.StreamT[bytes]) -> None:
        async for batch in stream.take_events(*take):  # type: ignore[attr-defined]
            t0 = time.perf_counter()
            now = time.time()
            for event in batch:
                msg = event.message
                # Whatever this message does (RecursionError from JSON nested 1,000 deep, a
                # bug in an adapter), it becomes a dead letter and the batch goes on.
                try:
                    # One output message per input message and key, tagged with its origin,
                    # so the session agent can tell a re-send after a crash from new events.
                    out = normalize(
                        event.value,
                        _header(msg.headers, SOURCE_HEADER),
                        max_bytes=settings.max_payload_bytes,
                        max_events=settings.max_events_per_message,
                        now=now,
                        topic=msg.topic,
                        partition=msg.partition,
                        offset=msg.offset,
                        max_age=settings.max_event_age,  # bounds: the event-time window
                        max_lead=settings.max_event_lead,
                    )
                    await publish(out, b"i%d:%d" % (msg.partition, msg.offset), event,
                                  "normalize")
                except Exception as exc:  # noqa: BLE001 - one message, not the batch
                    bug("normalize")
                    await send_dead([_dead_letter(event, "processing_error", _failed(exc),
                                                  "normalize")])
            observe_latency("normalize", batch)
            m_msgs["ingest"].inc(len(batch))
            m_batch["normalize"].observe(time.perf_counter() - t0)

    async def fold_batch(
        batch: Sequence[EventT],
        table: Any,
        stage: str,
        load: Callable[[bytes], Any],
        apply: Callable[[bytes, Any, list[Any], Any], Awaitable[Any]],
        dump: Callable[[Any], bytes],
    ) -> None:
        """Apply each message's events to its key's state: read each state once, write it
        once per batch (DEVELOPERS.md: no changelog record per event)."""
        touched: dict[bytes, tuple[Any, EventT]] = {}
        dead: list[DeadLetter] = []
        for event in batch:
            msg = event.message
            evs = _decode_events(event, stage, dead)
            if evs is None:
                continue
            key = cast(bytes, msg.key)  # _decode_events refused messages without one
            try:
                prev = touched.get(key)
                state = prev[0] if prev is not None else stored(table, key, load, stage,
                                                                event, dead)
                state = await apply(key, state, evs, msg)
            except Exception as exc:  # noqa: BLE001 - a detector bug must not stop the worker
                bug(stage)
                dead.append(_dead_letter(event, "processing_error", _failed(exc), stage))
                continue
            touched[key] = (state, event)
        t1 = time.perf_counter()
        for k, (state, event) in touched.items():
            write(table, k, state, dump, stage, event, dead)
        metrics.state_flush_seconds.observe(time.perf_counter() - t1)
        await send_dead(dead)

    def stored(table: Any, key: bytes, load: Callable[[bytes], Any], stage: str, at: Any,
               dead: list[DeadLetter]) -> Any:
        """The state stored under ``key``, or None: none stored, or unreadable (a value
        poisoned before it could be refused, e.g. ``null`` where a float belongs). An
        unreadable one is dead-lettered and the key starts fresh, instead of failing every
        later message of that key, restarts included."""
        raw = table.get(key)
        if not raw:
            return None
        try:
            return load(raw)
        except Exception as exc:  # noqa: BLE001 - whatever is wrong with it, start fresh
            dead.append(guard.letter("processing_error", f"stored {stage} state unreadable, "
                                     f"the key starts fresh: {_failed(exc)}", stage, raw, at))
            return None

    def write(table: Any, key: bytes, state: Any, dump: Callable[[Any], bytes], stage: str,
              at: Any, dead: list[DeadLetter]) -> bool:
        """Write ``state`` to ``table``, unless it cannot be encoded or is too large for its
        changelog record (Faust's producer buffer would end the app): then the key is
        deleted, starts fresh, and a dead letter says why. False: not written."""
        try:
            value = dump(state)
        except Exception as exc:  # noqa: BLE001 - a state we cannot write: start fresh
            value, detail = b"", f"{stage} state not encodable: {_failed(exc)}"
            reason = "processing_error"
        else:
            if guard.fits(key, value):
                set_in_partition(table, key, value, at)
                return True
            detail = (f"{stage} state of {len(value)} bytes is over the producer's limit "
                      f"{guard.limit}: the key starts fresh")
            reason = "too_large"
        dead.append(guard.letter(reason, detail, stage, value, at))
        if key in table:
            del_in_partition(table, key, at)
        return False

    triage = TicketTriage(queues=settings.triage_queues,
                          default_queue=settings.triage_default_queue) \
        if settings.ticket_triage else None
    triage_topic = topics["triage"]

    churn = detection.churn(settings)
    m_churn_alerts = metrics.alerts.labels(reason="churn_risk")
    m_churn_risk = metrics.churn_risk

    async def apply_support(key: bytes, state: CustomerState | None, evs: list[Any],
                            msg: Any) -> CustomerState:
        origin = _origin(msg, "s")
        if state is not None and is_replay(state.positions, origin):
            return state
        if triage is not None:
            for e in evs:
                if type(e) is Ticket:
                    record = triage.on_ticket(e)
                    if record is not None:
                        await send(triage_topic, key, msgspec.json.encode(record),
                                   stage="customers", what="triage record", at=msg)
        was_churned = state is not None and state.churned_at is not None
        state = apply_customer(state, evs, origin)
        if state.churned_at is not None and not was_churned:
            metrics.customers_churned.inc()
        if churn is not None:
            doc = churn.update(state)
            if state.churn_risk is not None and math.isfinite(state.churn_risk):
                m_churn_risk.observe(state.churn_risk)
            if doc is not None:
                m_churn_alerts.inc()
                await send(alert_topic, doc["subject"].encode(), msgspec.json.encode(doc),
                           stage="customers", what="churn alert", at=msg)
        return state

    web_name = topic_name("web_events", settings.topic_prefix)
    # One engine per input partition: event time (the watermark that runs deadlines and
    # expiries) is per partition, where Kafka keeps order; across partitions it does not, and
    # a lagging partition must not see its sessions' deadlines run ahead of their events.
    engines: dict[int, Engine] = {}
    m_signals, m_alerts = metrics.signals, metrics.alerts
    m_chats, m_outcomes = metrics.chat_triggers, metrics.sessions_ended
    m_at_risk, m_abandoned = metrics.revenue_at_risk, metrics.step_abandoned
    experiments_topic = topics["experiments"]

    def engine_for(partition: int) -> Engine:
        eng = engines.get(partition)
        if eng is None:
            eng = engines[partition] = detection.engine(settings, processor, alerting)
        return eng

    def partition_of(key: bytes) -> int:
        n = app.consumer.topic_partitions(web_name) if app.consumer else None
        # The producer's default partitioner (murmur2, as Java and aiokafka use for keys).
        return (murmur2(key) & 0x7FFFFFFF) % (n or settings.partitions)

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
                if not write(sessions, key, state, dump_session, "sessions", event, dead):
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
                bug("sessions")
                await send_dead([guard.letter("processing_error", _failed(exc), "sessions",
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
            bug("sessions")
            await send_dead([guard.letter("processing_error", f"{what} not encodable: "
                                          f"{_failed(exc)}", "sessions", repr(record)[:4096]
                                          .encode(), at)])
            return
        await send(topic, key.encode(), value, stage="sessions", what=what, at=at)

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

    @app.agent(web_topic, name="sessions")
    async def sessions_agent(stream: faust.StreamT[bytes]) -> None:
        async for batch in stream.take_events(*take):  # type: ignore[attr-defined]
            t0 = time.perf_counter()
            # partition -> (outputs, sessions touched and their last event)
            work: dict[int, tuple[Outputs, dict[str, EventT]]] = {}
            dead: list[DeadLetter] = []
            for event in batch:
                msg = event.message
                evs = _decode_events(event, "sessions", dead)
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
                        state = stored(sessions, sid.encode(), decode_state, "sessions", event,
                                       dead)
                        if state is not None:
                            engine.adopt(state)
                    engine.feed(evs, _origin(msg, "w"), out)
                except Exception as exc:  # noqa: BLE001 - a detector bug must not stop the worker
                    bug("sessions")
                    dead.append(_dead_letter(event, "processing_error", _failed(exc),
                                             "sessions"))
                touched[sid] = event
            t1 = time.perf_counter()
            for partition, (out, touched) in work.items():
                dead += store(engines[partition], partition, out, touched)
            metrics.state_flush_seconds.observe(time.perf_counter() - t1)
            for out, _ in work.values():
                await publish_outputs(out)
            await send_dead(dead)
            observe_latency("sessions", batch)
            m_msgs["web_events"].inc(len(batch))
            m_batch["sessions"].observe(time.perf_counter() - t0)

    @timer(app, 1.0)
    async def event_time() -> None:
        """Deadlines and expiries as each partition's event time (its newest event) moves.
        A partition that fails does not hold up the others; the first error is raised at
        the end, for the timer's guard to count and log."""
        failed: Exception | None = None
        for partition, engine in list(engines.items()):
            try:
                out = engine.advance(engine.watermark)
                if out.signals or out.outcomes or out.ticked:
                    await send_dead(store(engine, partition, out, {}))
                    await publish_outputs(out)
            except Exception as exc:  # noqa: BLE001 - raised below, once the others ran
                failed = failed or exc
        if journey_stats is not None and engines:
            await journey_stats.flush(max(e.watermark for e in engines.values()))
        if failed is not None:
            raise failed

    @timer(app, 30.0)
    async def adopt_stored_sessions() -> None:
        """After a restart or a rebalance, take over stored sessions that get no events, so
        they still expire (state stays bounded) and their deadlines still run."""
        dead: list[DeadLetter] = []
        for key in list(sessions.keys()):
            partition = partition_of(key)
            engine = engine_for(partition)
            if key.decode(errors="replace") not in engine.sessions:
                state = stored(sessions, key, decode_state, "sessions", None, dead)
                if state is not None:
                    engine.adopt(state)
                elif key in sessions:  # unreadable: the key starts fresh
                    del_in_partition(sessions, key, At(web_name, partition))
        await send_dead(dead)

    @app.agent(support_topic, name="customers")
    async def customers_agent(stream: faust.StreamT[bytes]) -> None:
        async for batch in stream.take_events(*take):  # type: ignore[attr-defined]
            t0 = time.perf_counter()
            await fold_batch(batch, customers, "customers", decode_customer, apply_support,
                             dump_customer)
            observe_latency("customers", batch)
            m_msgs["support_events"].inc(len(batch))
            m_batch["customers"].observe(time.perf_counter() - t0)

    @timer(app, 30.0)
    async def trim_memory() -> None:
        """Hand the heap pages that bursts of large payloads leave free back to the OS
        (streams.memory), so RSS follows what the worker holds."""
        release_free_memory()

    @timer(app, 5.0)
    async def gauge_sessions() -> None:
        metrics.sessions_active.set(len(sessions))
        metrics.customers_known.set(len(customers))

    # Consumer lag of the agents' input topics: the broker's end offsets minus what this
    # worker committed (tables' changelogs, which Faust reads to recover, are left out).
    inputs = {topic_name(k, settings.topic_prefix): k for k in
              ("ingest", "web_events", "support_events", "journey_stats", "experiments",
               "feedback")}

    @timer(app, 10.0)
    async def gauge_lag() -> None:
        # What a reader sees: the highwater of the consumer's last fetch minus what it has
        # committed (streams.health.consumer_lag); no broker round trip, so an unreachable
        # broker neither stalls nor fails this timer.
        consumer = app.consumer
        tps = [tp for tp in consumer.assignment() if tp.topic in inputs]
        for tp, value in consumer_lag(consumer, tps).items():
            metrics.consumer_lag.labels(inputs[tp.topic], str(tp.partition)).set(value)

    funnel = detection.funnel(processor)
    journey_stats = JourneyStats(funnel, topics["journey_stats"], metrics,
                                 settings.incident_lateness, guard) if funnel is not None else None
    if settings.incident_detection:
        register_incidents(app, settings, topics["journey_stats"], alert_topic, guard, metrics)

    # People's verdicts on alerts, counted per reason; they re-weigh the alert policy. The
    # feedback topic is keyed by session like the web events, so each worker learns from the
    # verdicts on its own sessions' alerts.
    tally = FeedbackTally(known={d.name for d in processor.detectors})
    base_weights = dict(alerting.weights)

    def reweigh() -> None:
        alerting.weights = tally.weights(base_weights)
        for reason, weight in alerting.weights.items():
            metrics.alert_weight.labels(reason=reason).set(weight)

    # The online models: restored from their checkpoints, saved on a timer, measured.
    models: dict[str, Any] = {"abandonment": detection.scorer(processor), "triage": triage,
                              "churn": churn,
                              "feedback": tally if settings.learn_from_feedback else None}
    models = {k: m for k, m in models.items() if m is not None}
    saved_at = {name: settings.data_dir / "models" / f"{name}.ckpt" for name in models}
    learned = dict.fromkeys(models, 0)
    for name, model in models.items():
        checkpoints.restore(model, saved_at[name])
        learned[name] = model.learned
    if settings.learn_from_feedback:
        reweigh()

    rejected = dict.fromkeys(models, 0)

    if models:
        @timer(app, settings.model_checkpoint_interval)
        async def checkpoint_models() -> None:
            failed: Exception | None = None
            for name, model in models.items():
                try:  # one model's failure does not keep the others from their checkpoint
                    checkpoints.save(model, saved_at[name])
                except Exception as exc:  # noqa: BLE001 - raised below, once the others ran
                    failed = failed or exc
            if failed is not None:
                raise failed

        @timer(app, 5.0)
        async def gauge_models() -> None:
            for name, model in models.items():
                for metric, value in model.quality().items():
                    # NaN: no outcome yet. Never a non-finite value on /metrics.
                    set_finite(metrics.model_quality.labels(name, metric), value)
                inc_finite(metrics.model_examples_learned.labels(name),
                           model.learned - learned[name])
                learned[name] = model.learned
                n = getattr(model, "rejected", 0)
                inc_finite(metrics.model_inputs_rejected.labels(name), n - rejected[name])
                rejected[name] = n

    register_health(app, settings, bootstrap)  # /health (readiness) and /health/live

    if settings.holdout:
        register_experiments(app, settings, experiments_topic, guard, metrics)
    register_collector(app, settings, publish, send_dead, metrics)
    register_feedback(app, topics["feedback"], labels_topic, guard, metrics, tally,
                      on_verdict=reweigh if settings.learn_from_feedback else None,
                      tokens=tuple(settings.collector_tokens))
    return Worker(app, settings, processor, topics, sessions, customers)
