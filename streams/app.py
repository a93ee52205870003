"""The Faust worker: the app, its topics and tables, and the agents wired onto it, built from
one ``Settings``.

Each agent lives in its own module and registers itself from a shared ``streams.context``:
``streams.ingest`` (payloads to canonical events), ``streams.sessions`` (per-session state and
the detectors), ``streams.customers`` (customer state, triage, churn), ``streams.incidents``,
``streams.experiments``, ``streams.trends`` (rising support topics), ``streams.learning``
(the online models' checkpoints and gauges), ``streams.feedback`` and ``streams.collector``
(the HTTP endpoints). The logic they call is pure and lives in ``detectors/`` and
``models/``.

Throughput design (DEVELOPERS.md, "Measured facts"; README "The fast path"): Faust costs about
150 us per message, so the ingest topic is read in bulk outside Faust (``streams.bulk``), a
canonical message is a bundle of many keys' events (``streams.bundle``), agents take messages
in batches (``stream.take_events``), and each changed session is written to its table once per
commit interval (``streams.dirty``), not once per event.

Exact recovery: a message is acknowledged only once the states it changed are written, Faust
flushes the producer (table changelog included) before it commits offsets, and each state
remembers the offset of the last message applied to it per origin, so messages replayed after a
crash between the changelog flush and the offset commit are skipped instead of applied twice.
"""

from __future__ import annotations

import logging
import os
import signal
import ssl
import time
from dataclasses import dataclass
from typing import Any, cast

import faust
from faust.sensors.prometheus import setup_prometheus_sensors

from detectors.session import SessionProcessor
from streams import checkpoints, detection
from streams.accounts import register_accounts
from streams.acks import TakenAcks
from streams.budgets import state_writers
from streams.clientfixes import cap_fetch_wait, pause_what_faust_pauses
from streams.collector import register_collector
from streams.context import Context
from streams.customers import register_customers
from streams.experiments import register_experiments
from streams.feedback import register_feedback
from streams.guard import Guard
from streams.health import consumer_lag, register_health
from streams.incidents import JourneyStats, register_incidents
from streams.ingest import register_ingest
from streams.learning import register_learning
from streams.memory import FULL_COLLECTION_INTERVAL, collect_cycles, release_free_memory
from streams.metrics import METRICS, Metrics, PartitionGauges
from streams.recoverywatch import RecoveryWatch
from streams.sessions import register_sessions
from streams.settings import Settings
from streams.tables import Changelogs, stored_keys
from streams.topics import TOPICS, topic_name
from streams.trends import register_trends

log = logging.getLogger(__name__)

__all__ = ["Worker", "create_worker", "SESSIONS_TABLE", "CUSTOMERS_TABLE"]

# --- fast path (issue 14; bench/throughput.py) ------------------------------------------------
#: Faust's throughput settings: the producer batches up to 1 MiB and waits up to 5 ms to fill
#: a batch (only outputs now: changelog records go as whole record batches, streams.tables; a
#: batch's flush waits out the linger, so 20 ms cost alerts p99 339 ms at 5,000 events/s on
#: Kafka, 5 ms 157-212 ms, with no loss of throughput measured); the
#: consumer hands over up to 5,000 records per poll and a stream buffers 16k, so a fetch of
#: bundles is one poll; a rebalance does not wait for in-flight batches (they are re-read, and
#: the states skip what they already applied). Measured: 1/msg worker/raw 0.009 -> 0.03 with
#: uvloop, before the bulk ingest stage. A fetch takes up to 16 MiB per partition, not
#: Faust's 1 MiB: a bundle carries a fetch of the ingest stage (tens of KB), and at 1 MiB a
#: sessions stage that fell behind at 18,000 events/s paced stayed 1.5-2.5 s behind for the
#: rest of the run (5 runs of 16, bench/latency.py); 0 of 4 with 16 MiB. It still can, less
#: often (README, "Latency and memory").
FAST_PATH: dict[str, Any] = {
    "producer_max_batch_size": 1 << 20,
    "producer_linger": 0.005,
    "broker_max_poll_records": 5000,
    "consumer_max_fetch_size": 16 << 20,
    "stream_buffer_maxsize": 16384,
    "stream_wait_empty": False,
}


def _fast_path_sensors(app: faust.App) -> None:
    """Faust's Prometheus sensor counts every table get and set through a ``labels()`` call
    (py-spy: 7% of the worker at one event per message); the state flush metrics
    (``frictionwatch_state_flush_seconds``) cover table writes, so ``faust_table_operations``
    stays at 0. And Faust's producer buffer logs a warning whenever more than 100 records wait,
    which every flush of changed sessions does by design: its threshold is raised."""
    def ignore(*args: Any) -> None:
        return None

    app.monitor.on_table_get = ignore  # type: ignore[method-assign,assignment]
    app.monitor.on_table_set = ignore  # type: ignore[method-assign,assignment]

    @app.task
    async def quiet_producer_buffer() -> None:
        # The buffer still drains at once; only the "producer buffer full" warning is moved.
        app.producer.buffer.max_messages = 20_000
# ------------------------------------------------------------------------------------------

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
        table_standby_replicas=settings.standby_replicas,
        topic_replication_factor=settings.replication_factor,
        producer_max_request_size=max_request,
        consumer_auto_offset_reset="earliest",
        autodiscover=False,
        # Our own JSON is encoded by msgspec; Faust only moves bytes.
        key_serializer="raw",
        value_serializer="raw",
        **FAST_PATH,
    )
    cap_fetch_wait(app, settings.fetch_max_wait)
    pause_what_faust_pauses()
    # Faust's own sensor under "faust_", ours under "frictionwatch_": one /metrics, no clashes.
    setup_prometheus_sensors(
        app, pattern="/metrics", registry=metrics.registry, name_prefix="faust"
    )
    _fast_path_sensors(app)

    def _topic(logical: str) -> faust.TopicT:
        return app.topic(
            topic_name(logical, settings.topic_prefix),
            key_type=bytes,
            value_type=bytes,
            partitions=settings.partitions,
            # Should Faust create it before ensure_topics does: compacted as declared.
            compacting=True if TOPICS[logical].compacted else None,
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
            "email_triggers",
            "labels",
            "triage",
            "trend_events",
            "support_trends",
            "journey_stats",
            "experiments",
            "feedback",
            "dead_letters",
            "checkpoints",
            "account_events",
            "account_scores",
        )
    }
    sessions = app.Table(SESSIONS_TABLE, partitions=settings.partitions, key_type=bytes,
                         value_type=bytes)
    customers = app.Table(CUSTOMERS_TABLE, partitions=settings.partitions, key_type=bytes,
                          value_type=bytes)
    # Every send and table write is measured against the producer's limit first, and every
    # timer's errors are counted and logged (streams.guard): nothing ends the worker.
    guard = Guard(max_request, topics["dead_letters"], metrics.dead_letters, metrics.timer_errors)
    # State budgets (detectors.budget): stored states stay small, what that drops is counted.
    dump_session, dump_customer = state_writers(settings, metrics)
    # Offsets are committed only past messages an agent applied (streams.acks).
    acks = TakenAcks(app, metrics.acks_refused)
    acks.install()
    ctx = Context(app, settings, metrics, guard, topics, processor, alerting, sessions,
                  customers, dump_session, dump_customer, acks,
                  Changelogs(sessions, customers, app=app))

    # The agents, each in its own module.
    publish, ingest = register_ingest(ctx, bootstrap)
    funnel = detection.funnel(processor)
    journey_stats = JourneyStats(funnel, topics["journey_stats"], metrics,
                                 settings.incident_lateness, guard) if funnel is not None else None
    engines = register_sessions(ctx, journey_stats)
    customer_models = register_customers(ctx)
    # What workers learned, shared through the compacted checkpoints topic (README "Scaling
    # out"): a worker that starts or takes over partitions starts from it.
    shared = checkpoints.Shared(topics["checkpoints"], guard, bootstrap,
                                settings.kafka_client_kwargs())
    if settings.b2b_accounts:
        register_accounts(ctx, shared)
    if settings.incident_detection:
        register_incidents(app, settings, topics["journey_stats"], topics["alerts"], guard,
                           metrics, shared)
    trends = register_trends(app, settings, topics, guard) if settings.support_trends else None
    if settings.holdout:
        register_experiments(app, settings, topics["experiments"], guard, metrics, acks)
    tally, reweigh = register_learning(ctx, shared, triage=customer_models.triage,
                                       churn=customer_models.churn,
                                       segments=customer_models.segments,
                                       trends=trends.model if trends is not None else None)
    register_feedback(app, topics["feedback"], topics["labels"], guard, metrics, tally,
                      on_verdict=reweigh if settings.learn_from_feedback else None,
                      tokens=tuple(settings.collector_tokens))
    register_collector(app, settings, publish, guard.dead, metrics)
    # /health (readiness) and /health/live
    register_health(app, settings, bootstrap, ingest=ingest)
    _register_gauges(app, settings, metrics, guard, engines, customers)
    return Worker(app, settings, processor, topics, sessions, customers)


def _register_gauges(app: faust.App, settings: Settings, metrics: Metrics, guard: Guard,
                     engines: dict[int, Any], customers: Any) -> None:
    """The worker-wide timers: table sizes, consumer lag, handing free memory back, and full
    garbage collections."""

    @guard.timer(app, 30.0)
    async def trim_memory() -> None:
        """Hand the heap pages that bursts of large payloads leave free back to the OS
        (streams.memory), so RSS follows what the worker holds."""
        release_free_memory()

    @guard.timer(app, FULL_COLLECTION_INTERVAL)
    async def collect_garbage_cycles() -> None:
        """The garbage collector's full collections, at a set pace (streams.memory)."""
        collect_cycles()

    # Not on TableManagerT, but on the TableManager every app has.
    watch = RecoveryWatch(getattr(app.tables, "recovery", None),
                          stall=settings.recovery_stall_timeout)

    @guard.timer(app, 5.0)
    async def watch_recovery() -> None:
        """A table recovery that stalls is started again; after too many in a row the
        worker stops, for its partitions to go to the others (streams.recoverywatch)."""
        what = watch.check(time.monotonic())  # Faust's recovery times are monotonic
        if what == "ok":
            return
        metrics.recovery_stalls.inc()
        if what == "restart":
            watch.restart()
            return
        guard.errors.error("recovery", "table recovery stalled %d times in a row: stopping "
                           "the worker, so its partitions go to the others",
                           watch.restarts + 1)
        os.kill(os.getpid(), signal.SIGTERM)  # a graceful stop: its group learns at once

    @guard.timer(app, 5.0)
    async def gauge_sessions() -> None:
        # Not len(table): on rocksdb:// Faust counts a table by reading every key (100,000
        # keys: 122 ms), a pause of the worker every 5 s. The engines hold every live session
        # of the partitions this worker owns; RocksDB estimates its own key count.
        metrics.sessions_active.set(sum(len(e.sessions) for e in engines.values()))
        metrics.customers_known.set(stored_keys(customers))

    # Consumer lag of the agents' input topics: the broker's end offsets minus what this
    # worker committed (tables' changelogs, which Faust reads to recover, are left out).
    inputs = {topic_name(k, settings.topic_prefix): k for k in
              ("ingest", "web_events", "support_events", "journey_stats", "experiments",
               "feedback", "trend_events", "account_events")}

    agents_lag = PartitionGauges(metrics.consumer_lag)

    @guard.timer(app, 10.0)
    async def gauge_lag() -> None:
        # What a reader sees: the highwater of the consumer's last fetch minus what it has
        # committed (streams.health.consumer_lag); no broker round trip, so an unreachable
        # broker neither stalls nor fails this timer. Only the partitions assigned now.
        consumer = app.consumer
        tps = [tp for tp in consumer.assignment() if tp.topic in inputs]
        agents_lag.update({(inputs[tp.topic], str(tp.partition)): value
                           for tp, value in consumer_lag(consumer, tps).items()})
