"""The bulk ingest stage: raw ingest messages to canonical bundles, many messages at a time.

Faust costs about 150 us per message (DEVELOPERS.md, "Measured facts"), and one event per
message is what most clickstream pipelines put on Kafka. So the ingest topic is read by a plain
aiokafka ``getmany()`` loop in a consumer group of its own (``<app id>-ingest``), not by a
Faust agent, and each fetch becomes at most one message per canonical-topic partition:

1. fetch up to ``Settings.ingest_fetch_max_records`` ingest messages;
2. normalize each (``streams.normalize``: adapters, bounds, dead letters);
3. group the events by the partition their key maps to (murmur2 of the session or customer id,
   as the producer's default partitioner does), one entry per key and ingest message, tagged
   with its origin ``i<partition>:<offset>`` (``streams.bundle``);
4. send one bundle per partition (more when one would pass the producer's limit) and the dead
   letters, wait for every acknowledgement;
5. only then mark the fetched offsets done; they are committed once per
   ``Settings.commit_interval`` (and when partitions are revoked or the stage stops), not per
   fetch: a commit per fetch was a Kafka request per 20 ms of traffic per worker, which the
   worker and the broker both paid for, and a crash now re-sends at most an interval's
   messages, which the states skip.

Exact recovery: a crash anywhere re-reads from the last commit and re-sends those entries,
maybe cut differently; the session and customer states keep the highest ingest
offset applied per ingest partition and skip entries at or below it
(``detectors.session.is_replay``), so each ingest message's events are applied once.

The stage is stateless: any worker's instance can take any ingest partition, and the ingest
group rebalances on its own, apart from the Faust group. A rebalance waits for the fetch in
hand to be sent, and commits what was sent (``_Handoff``): the states skip an entry at or
below the highest offset applied, so two stages sending the same ingest partition at once (the
old owner still sending while the new one re-reads from the last commit) could interleave a
lower offset after a higher one and have it skipped, lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from kafka.partitioner.default import murmur2

from streams.bundle import Entry, encode_entries, encode_entry
from streams.clientfixes import adapt_fetch_wait
from streams.deadletter import DeadLetter, encode_dead_letter, make_dead_letter
from streams.guard import EXCERPT_BYTES, Guard
from streams.metrics import Metrics, PartitionGauges, observe_many
from streams.normalize import normalize
from streams.settings import Settings
from streams.topics import SOURCE_HEADER, topic_name

if TYPE_CHECKING:
    from streams.ingest_process import IngestProcess

__all__ = ["BulkIngest", "Grouped", "Partitioner", "Record", "group_records", "ingest_group",
           "pack", "register_bulk_ingest"]

log = logging.getLogger(__name__)

#: How long a fetch waits for messages when none are there (ms); also how soon a stop is seen.
FETCH_TIMEOUT_MS = 200
#: Keys whose partition is remembered (murmur2 in Python costs a few us per key); the cache is
#: dropped whole when full, so memory stays bounded whatever the number of sessions.
PARTITION_CACHE = 200_000
#: Bytes kept free below the producer's limit for the record's own overhead (the bundle's
#: braces, the batch and record headers): a bundle's entries stay within ``limit - _ROOM``.
_ROOM = 4096


def ingest_group(settings: Settings) -> str:
    """The consumer group of the ingest stage: the app's id with ``-ingest``."""
    return f"{settings.app_id}-ingest"


class _Handoff(ConsumerRebalanceListener):  # type: ignore[misc]
    """Revocation waits for the fetch in hand to be sent and acknowledged (the module docstring
    says why), commits what was sent, and marks any fetch made before it as not to be sent."""

    def __init__(self, stage: BulkIngest) -> None:
        self.stage = stage

    async def on_partitions_revoked(self, revoked: Any) -> None:
        async with self.stage._busy:
            self.stage._generation += 1
            # The next owner starts from here instead of re-sending an interval's messages.
            await self.stage._commit()

    async def on_partitions_assigned(self, assigned: Any) -> None:
        return None


class Partitioner:
    """The partition the producer's default partitioner gives a key (murmur2, as Java's client
    and aiokafka do), with a bounded cache.

    >>> p = Partitioner()
    >>> p("s1", 4) == (murmur2(b"s1") & 0x7FFFFFFF) % 4
    True
    """

    def __init__(self, size: int = PARTITION_CACHE) -> None:
        self.size = size
        self._hash: dict[str, int] = {}

    def __call__(self, key: str, partitions: int) -> int:
        h = self._hash.get(key)
        if h is None:
            if len(self._hash) >= self.size:
                self._hash.clear()
            h = self._hash[key] = murmur2(key.encode()) & 0x7FFFFFFF
        return h % partitions


@dataclass(slots=True)
class Record:
    """What the stage needs of one fetched ingest message."""

    partition: int
    offset: int
    value: bytes | None
    source: str | None
    timestamp: float = 0.0  # Kafka timestamp, seconds


@dataclass(slots=True)
class Grouped:
    """One fetch, normalized: encoded entries per canonical partition, dead letters, counts."""

    #: web-events partition -> encoded entries, in fetch order
    web: dict[int, list[bytes]] = field(default_factory=lambda: defaultdict(list))
    #: support-events partition -> encoded entries
    support: dict[int, list[bytes]] = field(default_factory=lambda: defaultdict(list))
    dead: list[DeadLetter] = field(default_factory=list)
    #: (source format, event type) -> events
    counts: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))


def group_records(
    records: Iterable[Record],
    *,
    web_partitions: int,
    support_partitions: int,
    settings: Settings,
    now: float,
    topic: str | None = None,
    partition_of: Callable[[str, int], int] | None = None,
) -> Grouped:
    """Normalize ``records`` and group their events into entries per canonical partition.

    Each entry is one key's events from one ingest message, with that message's origin, so
    an entry is applied whole or skipped whole as a replay, however a re-send cuts the fetch.
    Entries stay in fetch order (per ingest partition, offset order): states see each ingest
    partition's messages in the order Kafka kept them.

    >>> from streams.settings import Settings
    >>> import json
    >>> call = {"type": "page", "messageId": "m1", "anonymousId": "s1",
    ...         "timestamp": "2026-01-01T00:00:00Z", "name": "Home"}
    >>> g = group_records([Record(0, 41, json.dumps(call).encode(), "segment"),
    ...                    Record(0, 42, b"not json", None)],
    ...                   web_partitions=4, support_partitions=4, settings=Settings(),
    ...                   now=1767225600.0)
    >>> [(p, [e[:15] for e in es]) for p, es in g.web.items()], [d.reason for d in g.dead]
    ([(1, [b'["s1","i0:41",['])], ['not_json'])
    """
    part = partition_of or Partitioner()
    out = Grouped()
    web, support, dead, counts = out.web, out.support, out.dead, out.counts
    for r in records:
        n = normalize(r.value, r.source, max_bytes=settings.max_payload_bytes,
                      max_events=settings.max_events_per_message, now=now, topic=topic,
                      partition=r.partition, offset=r.offset, max_age=settings.max_event_age,
                      max_lead=settings.max_event_lead, privacy=settings.privacy)
        origin = f"i{r.partition}:{r.offset}"
        for key, evs in n.web.items():
            web[part(key, web_partitions)].append(encode_entry(Entry(key, origin, evs)))
        for key, evs in n.support.items():
            support[part(key, support_partitions)].append(encode_entry(Entry(key, origin, evs)))
        if n.dead:
            dead += n.dead
        for k, c in n.counts.items():
            counts[k] += c
    return out


def pack(entries: Sequence[bytes], room: int) -> tuple[list[bytes], list[bytes]]:
    """Join encoded entries, in order, into as few bundles as keep their entries within
    ``room`` bytes each; also return the entries too large for any bundle (dead letters).

    >>> pack([b"[1]", b"[2]", b"[3]"], 8)
    ([b'{"entries":[[1],[2]]}', b'{"entries":[[3]]}'], [])
    >>> pack([b"[1]", b"[22222222]"], 8)
    ([b'{"entries":[[1]]}'], [b'[22222222]'])
    """
    bundles: list[bytes] = []
    too_large: list[bytes] = []
    current: list[bytes] = []
    size = 0
    for e in entries:
        if len(e) > room:
            too_large.append(e)
            continue
        if current and size + len(e) > room:
            bundles.append(encode_entries(current))
            current, size = [], 0
        current.append(e)
        size += len(e) + 1  # and its comma
    if current:
        bundles.append(encode_entries(current))
    return bundles, too_large


class BulkIngest:
    """The ingest stage's loop (see the module docstring). ``start``, then ``run`` until
    ``stop``; one instance per worker, the ingest group spreads the partitions."""

    def __init__(self, settings: Settings, bootstrap: str, metrics: Metrics,
                 max_request: int) -> None:
        self.settings = settings
        self.bootstrap = bootstrap
        self.metrics = metrics
        self.limit = max_request
        self.topic = topic_name("ingest", settings.topic_prefix)
        self.web_topic = topic_name("web_events", settings.topic_prefix)
        self.support_topic = topic_name("support_events", settings.topic_prefix)
        self.dead_topic = topic_name("dead_letters", settings.topic_prefix)
        self.partition_of = Partitioner()
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        #: ingest partition -> next offset sent and acknowledged (for the lag reading)
        self.done: dict[int, int] = {}
        #: Offsets sent and acknowledged, not committed yet (``_commit``).
        self._uncommitted: dict[Any, int] = {}
        self._last_commit = time.monotonic()
        #: Why the last fetch failed, None once one succeeds (for /health).
        self.failing: str | None = None
        self._stopping = asyncio.Event()
        #: Held from a fetch to its commit; a revocation waits for it (``_Handoff``).
        self._busy = asyncio.Lock()
        #: Moves at each revocation: a fetch made before one is not sent (``step``).
        self._generation = 0
        self._errors = Guard(max_request).errors
        self._children: dict[tuple[str, str], Any] = {}
        self._m_msgs = metrics.messages.labels(topic="ingest")
        self._m_batch = metrics.batch_seconds.labels(agent="normalize")
        self._m_latency = metrics.processing_latency.labels(agent="normalize")

    async def start(self) -> None:
        kw = self.settings.kafka_client_kwargs()
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=ingest_group(self.settings),
            client_id=f"{self.settings.app_id}-ingest", enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self.settings.ingest_fetch_max_records,
            session_timeout_ms=int(self.settings.broker_session_timeout * 1000),
            heartbeat_interval_ms=int(min(3.0, self.settings.broker_session_timeout / 5) * 1000),
            rebalance_timeout_ms=int(self.settings.broker_rebalance_timeout * 1000),
            max_partition_fetch_bytes=max(self.limit, 1 << 20), **kw)
        adapt_fetch_wait(self.consumer, self.settings.fetch_max_wait)
        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, client_id=f"{self.settings.app_id}-ingest",
            acks="all", max_request_size=self.limit, max_batch_size=min(self.limit, 1 << 20),
            # The stage sends a fetch's bundles at once and waits for them: no linger needed.
            linger_ms=0, **kw)
        await self.producer.start()
        await self.consumer.start()
        self.consumer.subscribe([self.topic], listener=_Handoff(self))

    async def stop(self) -> None:
        self._stopping.set()
        # What was sent is committed, so a restart does not send it again (best effort: a
        # fetch still in hand is re-read).
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._commit_when_free(), 5.0)
        for client in (self.consumer, self.producer):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.stop()

    async def run(self) -> None:
        pace = self.settings.ingest_fetch_interval
        while not self._stopping.is_set():
            try:
                started = time.monotonic()
                n = await self.step()
                self.failing = None
                if 0 < n < self.settings.ingest_fetch_max_records:
                    # Not a backlog: let the next fetch gather ``ingest_fetch_interval`` of
                    # traffic. A fetch per few messages made bundles of 3 events at 2,000
                    # events/s, and a send, an ack wait and a commit each, which the broker paid
                    # for; the sessions stage fell seconds behind (bench/latency.py).
                    await asyncio.sleep(max(0.0, pace - (time.monotonic() - started)))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - re-read from the last commit, go on
                if self._stopping.is_set():
                    return
                self.failing = f"{type(exc).__name__}: {exc}"
                self._errors.exception("bulk", "the ingest stage failed a fetch; it re-reads "
                                       "from the last commit")
                await self._rewind()
                await asyncio.sleep(1.0)

    async def step(self) -> int:
        """One fetch: normalize, send, wait for the acks, commit. Returns messages fetched."""
        assert self.consumer is not None and self.producer is not None
        generation = self._generation
        fetched = await self.consumer.getmany(timeout_ms=FETCH_TIMEOUT_MS,
                                              max_records=self.settings.ingest_fetch_max_records)
        if not fetched:
            if self._uncommitted and self._commit_due():
                await self._commit_when_free()
            return 0
        async with self._busy:
            if generation != self._generation:
                # Partitions were revoked between the fetch and now: these records may be
                # another stage's already. Unsent, they are re-read from the last commit by
                # whoever owns them now.
                await self._rewind()
                return 0
            return await self._process(fetched)

    async def _process(self, fetched: dict[Any, list[Any]]) -> int:
        assert self.consumer is not None and self.producer is not None
        t0 = time.perf_counter()
        parts = [[Record(tp.partition, m.offset, m.value, _source(m.headers), m.timestamp / 1000)
                  for m in msgs] for tp, msgs in fetched.items()]
        # Interleaved by Kafka timestamp, each partition's order kept: a canonical partition
        # then sees its keys' events close to the order they were produced in, as event
        # time (the watermark that runs deadlines) expects; a partition after another, a
        # fetch's worth apart, would run other partitions' deadlines early.
        records = (list(heapq.merge(*parts, key=attrgetter("timestamp"))) if len(parts) > 1
                   else parts[0])
        web_n = await self._partitions(self.web_topic)
        support_n = await self._partitions(self.support_topic)
        g = group_records(records, web_partitions=web_n, support_partitions=support_n,
                          settings=self.settings, now=time.time(), topic=self.topic,
                          partition_of=self.partition_of)
        sends = []
        for topic, groups in ((self.web_topic, g.web), (self.support_topic, g.support)):
            for partition, entries in groups.items():
                bundles, too_large = pack(entries, self.limit - _ROOM)
                for value in bundles:
                    sends.append(await self.producer.send(topic, value, partition=partition))
                for e in too_large:
                    g.dead.append(make_dead_letter(
                        "too_large", f"canonical events of {len(e)} bytes are over the "
                        f"producer's limit {self.limit}: not sent", "normalize", e, time.time(),
                        self.topic, None, None, keep=EXCERPT_BYTES))
        for d in g.dead:
            self.metrics.dead_letters.labels(reason=d.reason, stage=d.stage).inc()
            sends.append(await self.producer.send(self.dead_topic, encode_dead_letter(d)))
        await asyncio.gather(*sends)
        for tp, msgs in fetched.items():
            self._uncommitted[tp] = self.done[tp.partition] = msgs[-1].offset + 1
        if self._commit_due():
            await self._commit()
        self._count(g, records, t0)
        return len(records)

    async def _commit_when_free(self) -> None:
        async with self._busy:
            await self._commit()

    def _commit_due(self) -> bool:
        return time.monotonic() - self._last_commit >= self.settings.commit_interval

    async def _commit(self) -> None:
        """Commit the offsets sent and acknowledged since the last commit (under ``_busy``)."""
        if self.consumer is None or not self._uncommitted:
            return
        offsets, self._uncommitted = self._uncommitted, {}
        self._last_commit = time.monotonic()
        try:
            await self.consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # A rebalance took partitions away: their new owner re-reads from the last
            # commit and the states skip what was already applied.
            log.info("ingest stage: commit after a rebalance refused (%s)", exc)

    def lag(self) -> dict[int, int]:
        """Ingest partition -> messages not yet sent on (from the last fetch's highwater)."""
        out: dict[int, int] = {}
        if self.consumer is None:
            return out
        for tp in self.consumer.assignment():
            high = self.consumer.highwater(tp)
            done = self.done.get(tp.partition)
            if high is not None:
                out[tp.partition] = max(0, high - (done or 0))
        return out

    def assigned(self) -> int:
        return len(self.consumer.assignment()) if self.consumer is not None else 0

    async def _partitions(self, topic: str) -> int:
        assert self.producer is not None
        parts = await self.producer.partitions_for(topic)
        return len(parts) if parts else self.settings.partitions

    async def _rewind(self) -> None:
        """Back to the last committed offsets (nothing since then was committed)."""
        if self.consumer is None:
            return
        with contextlib.suppress(KafkaError, IllegalStateError, AssertionError):
            for tp in self.consumer.assignment():
                committed = await self.consumer.committed(tp)
                if committed is None:
                    await self.consumer.seek_to_beginning(tp)
                else:
                    self.consumer.seek(tp, committed)

    def _count(self, g: Grouped, records: list[Record], t0: float) -> None:
        """Metrics once per fetch: counts added, pre-bound children (no ``labels()`` per
        message)."""
        events = self.metrics.events
        for key, n in g.counts.items():
            child = self._children.get(key)
            if child is None:
                child = self._children[key] = events.labels(source=key[0], type=key[1])
            child.inc(n)
        self._m_msgs.inc(len(records))
        now = time.time()
        observe_many(self._m_latency, [max(0.0, now - r.timestamp) for r in records])
        self._m_batch.observe(time.perf_counter() - t0)


def register_bulk_ingest(app: Any, settings: Settings, bootstrap: str, metrics: Metrics,
                         max_request: int) -> BulkIngest | IngestProcess:
    """Run a ``BulkIngest`` with the Faust app, in a process of its own
    (``settings.ingest_process``: ``streams.ingest_process.IngestProcess``) or in the app's
    loop: started once the app has started (tables recovered), stopped with it (its consumer
    leaves the ingest group at once), its lag in
    ``frictionwatch_consumer_lag_messages{topic="ingest"}``."""
    import mode

    from streams.ingest_process import IngestProcess

    stage: BulkIngest | IngestProcess
    if settings.ingest_process:
        stage = IngestProcess(settings, bootstrap, metrics, max_request)
    else:
        stage = BulkIngest(settings, bootstrap, metrics, max_request)

    class IngestStage(mode.Service):  # type: ignore[misc]
        async def on_start(self) -> None:
            await stage.start()

        @mode.Service.task
        async def _run(self) -> None:
            await stage.run()

        async def on_stop(self) -> None:
            await stage.stop()

    app.service(IngestStage)

    ingest_lag = PartitionGauges(metrics.consumer_lag)

    @app.timer(10.0)
    async def gauge_ingest_lag() -> None:
        ingest_lag.update({("ingest", str(p)): value for p, value in stage.lag().items()})

    return stage


def _source(headers: Sequence[tuple[str, bytes]] | None) -> str | None:
    for k, v in headers or ():
        if k == SOURCE_HEADER:
            return v.decode(errors="replace") if v is not None else None
    return None

