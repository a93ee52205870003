"""Writing Faust tables from a batch or a timer, in the partition of the input the state
belongs to (Faust would pick the partition of whatever event is current)."""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from functools import partial
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, NamedTuple

from faust.streams import _current_event

if TYPE_CHECKING:
    from streams.dirty import DirtyStates, Pending

__all__ = ["At", "Changelogs", "del_in_partition", "set_in_partition", "stored_keys"]


class _Record:
    """A changelog record ``Changelogs`` sends: what Faust's ``on_key_set`` reads of the
    ``FutureMessage`` that ``send_changelog`` returns (``message.partition``)."""

    __slots__ = ("table", "topic", "partition", "key", "value", "seq")

    def __init__(self, table: Any, topic: str, partition: int, key: bytes,
                 value: bytes | None, seq: int) -> None:
        self.table, self.topic, self.partition = table, topic, partition
        self.key, self.value, self.seq = key, value, seq

    @property
    def message(self) -> _Record:
        return self


class _Sent(NamedTuple):
    """The future of records ``first`` to ``last`` (write numbers), or of their failure."""

    first: int
    last: int
    fut: asyncio.Future[Any]


class Changelogs:
    """The changelog records of ``tables``, sent in bulk after the outputs written before
    them, kept until ``delivered`` has waited for them.

    A table write hands its changelog record to Faust's producer buffer, which sends one
    record per turn of the event loop through Faust's per-message machinery: with a few
    thousand changed sessions per flush, on a busy worker, a flush took seconds (0 events
    applied for 2 s at a time at 14,000 events/s, ``bench/latency.py``). So with the ``app``
    given, a write's record (bytes, a known partition) is queued here instead, and the queue
    goes to the producer soon after the write and again in ``delivered``, as aiokafka record
    batches built here (one per partition and 1 MiB): per record, the client's own ``send``
    (a future, a metadata wait, an append) was still a sixth of the worker's time at 9,000
    events/s paced, one state write per event.

    **Outputs first.** A state in the changelog marks its events applied: at a restart they
    are skipped, so outputs they produced that never reached the broker would be lost. So
    each round of sends first flushes the producer: every record (an alert, a signal) sent
    before the states now queued were written is delivered before those states are sent. The
    agents need not wait for that flush themselves (it was 20% of the sessions stage's time
    at 14,000 events/s paced, time in which no batch was applied).

    And ``app.producer.flush()`` is no proof a changelog record was sent: the buffer's flush
    gives up when no record left it for 0.1 s (on a loaded machine a send waiting for room in
    the client's batch takes longer), and a record its drainer holds is not counted.
    Acknowledging messages after that flush let Faust commit past states that never reached
    the changelog: a SIGKILL then lost their events (the crash test on Apache Kafka beside a
    CPU hog). So the futures of the records are kept and awaited: each completes when the
    broker has the record. Each table then learns the record's offset as from Faust's own send
    (``_on_changelog_sent``: RocksDB keeps it, to know at a restart what it already holds).

    Writes are numbered: ``mark()`` is the number of the last one, and ``delivered(since,
    upto)`` waits for the records written in between, whoever else waits for others: several
    flushes (and agents) can wait at once, each for its own.

    >>> import asyncio
    >>> class Table:
    ...     def send_changelog(self, *args, **kw):
    ...         return asyncio.get_running_loop().create_future()
    >>> async def demo():
    ...     t = Table(); logs = Changelogs(t)
    ...     fut = t.send_changelog(0, b"k", b"v")
    ...     fut.set_result("sent")
    ...     return logs.mark(), await logs.delivered(), len(logs.pending)
    >>> asyncio.run(demo())
    (1, [], 0)
    """

    #: Failures kept for ``delivered`` to report (a failing broker fails every round).
    MAX_FAILURES = 1000

    def __init__(self, *tables: Any, app: Any = None) -> None:
        self.app = app
        #: Sent, not yet known to be delivered.
        self.pending: list[_Sent] = []
        #: Records (first, last) that failed or were not sent, and why.
        self._failed: deque[tuple[int, int, BaseException]] = deque(maxlen=self.MAX_FAILURES)
        #: Written, not yet handed to the producer; sent in write order (one lock).
        self._queued: list[_Record] = []
        self._seq = 0
        self._sending = asyncio.Lock()
        self._soon: asyncio.Task[Any] | None = None
        #: tracked tables (with an app) -> their changelog topic
        self._topics: dict[Any, str] = {}
        for table in tables:
            self._track(table)

    def mark(self) -> int:
        """The number of the last record written so far (0: none)."""
        return self._seq

    def _track(self, table: Any) -> None:
        send = table.send_changelog
        topic = table.changelog_topic.get_topic_name() if self.app is not None else ""
        if self.app is not None:
            self._topics[table] = topic

        def send_changelog(partition: int | None, key: Any, value: Any = None,
                           key_serializer: Any = None, value_serializer: Any = None) -> Any:
            if (self.app is None or partition is None or type(key) is not bytes
                    or (value is not None and type(value) is not bytes)):
                self._seq += 1
                fut = send(partition, key, value, key_serializer=key_serializer,
                           value_serializer=value_serializer)
                self.pending.append(_Sent(self._seq, self._seq, fut))
                return fut
            return self._queue(table, topic, partition, key, value)

        table.send_changelog = send_changelog

    def _queue(self, table: Any, topic: str, partition: int, key: bytes,
               value: bytes | None) -> _Record:
        self._seq += 1
        record = _Record(table, topic, partition, key, value, self._seq)
        self._queued.append(record)
        if self._soon is None or self._soon.done():
            self._soon = asyncio.ensure_future(self._send())
        return record

    def put(self, table: Any, partition: int, key: bytes, value: bytes) -> bool:
        """``table[key] = value`` in ``partition``, as ``set_in_partition`` does, without
        Faust's per-write machinery: its changelog record queued here and the value put in
        the table's store. At one state write per event that machinery (a context variable
        set and reset, the current event looked up twice, the table's hooks) was 45% of a
        write's cost (py-spy at 22,000 events/s paced). False, and nothing written, unless
        ``table`` is tracked here with an app (bytes keys and values, raw serializers)."""
        topic = self._topics.get(table)
        if topic is None or type(key) is not bytes or type(value) is not bytes:
            return False
        self._queue(table, topic, partition, key, value)
        _store_put(table.data, partition, key, value)
        return True

    async def _send(self) -> None:
        """Flush the producer (outputs first), then hand every queued record to it: one
        closed batch per partition (and more when one is full), so a flush of thousands of
        states costs a few sends, not a send, a future and a metadata lookup per record."""
        async with self._sending:
            # Records written while a send awaits the producer go in the next round: a
            # timer's writes must not wait for the next batch's ``delivered``.
            while self._queued:
                queued, self._queued = self._queued, []
                by_partition: dict[tuple[str, int], list[_Record]] = {}
                for record in queued:  # write order kept within each partition
                    by_partition.setdefault((record.topic, record.partition), []).append(record)
                try:
                    # Whatever was sent before these records were written is delivered first.
                    await self.app.producer.flush()
                    # Only our records queue, so the app (and its producer) is set.
                    producer = self.app.producer._ensure_producer()
                    for (topic, partition), records in by_partition.items():
                        while records:
                            batch = producer.create_batch()
                            n = 0
                            for record in records:  # the first always fits
                                if batch.append(key=record.key, value=record.value,
                                                timestamp=None) is None:
                                    break
                                n += 1
                            # Closed: sent at once, no linger (a flush waits for it).
                            batch.close()
                            fut = await producer.send_batch(batch, topic, partition=partition)
                            # As Faust's own send does, the table learns the offset. One
                            # changelog partition: one table.
                            fut.add_done_callback(partial(_on_batch_sent, records[0].table, n))
                            self.pending.append(_Sent(records[0].seq, records[n - 1].seq, fut))
                            records = records[n:]
                except BaseException as exc:  # delivered() reports it
                    # The round's records count as failed, those sent too: a later state must
                    # not go on without an earlier one of its key, so their messages stay
                    # unacknowledged. So do those queued meanwhile.
                    last = self._queued[-1].seq if self._queued else queued[-1].seq
                    self._failed.append((queued[0].seq, last, exc))
                    self._queued = []
                    if not isinstance(exc, Exception):
                        raise  # cancelled: the worker stops
                    return

    def _settle(self) -> None:
        """Forget the sends that completed, keeping their failures."""
        still: list[_Sent] = []
        for sent in self.pending:
            if not sent.fut.done():
                still.append(sent)
            elif sent.fut.cancelled():
                self._failed.append((sent.first, sent.last, asyncio.CancelledError()))
            elif (exc := sent.fut.exception()) is not None:
                self._failed.append((sent.first, sent.last, exc))
        self.pending = still

    async def delivered(self, since: int = 0, upto: int | None = None,
                        timeout: float = 120.0) -> list[BaseException]:
        """Wait until the records written after write ``since`` up to ``upto`` (by default:
        all so far) are acknowledged by the broker; the errors of those that failed or did
        not complete in ``timeout`` seconds (the messages whose states they carry must not be
        acknowledged)."""
        upto = self._seq if upto is None else upto
        await self._send()  # what is queued, after any send under way
        self._settle()
        waits = [s.fut for s in self.pending if s.first <= upto and s.last > since]
        errors: list[BaseException] = []
        if waits:
            _, late = await asyncio.wait(waits, timeout=timeout)
            if late:
                errors.append(TimeoutError(f"{len(late)} changelog record batches not "
                                           f"acknowledged in {timeout} s"))
            self._settle()
        errors.extend(exc for first, last, exc in self._failed
                      if first <= upto and last > since)
        return errors

    async def hold_unless_delivered(self, batch: Any, log: Any, what: str,
                                    since: int = 0) -> None:
        """``delivered`` (the records written after write ``since``), for a batch Faust
        acknowledges when it ends: if a record failed, log it (``log``: the guard's
        rate-limited log) and hold the batch's messages for good, so their partitions are
        read again after a restart or rebalance."""
        errors = await self.delivered(since)
        if errors:
            log.error("changelog", "%d %s writes not delivered (%s); their messages stay "
                      "unacknowledged", len(errors), what, errors[0])
            for event in batch:
                event.message.incref()

    async def acknowledge_when_delivered(self, dirty: DirtyStates, written: list[Pending],
                                         log: Any, what: str, since: int = 0,
                                         upto: int | None = None) -> None:
        """``delivered``, for the changes ``dirty.write_all`` wrote (records ``since`` to
        ``upto``): their held messages are acknowledged once every record is in the
        changelog (a commit past a state that never got there loses its events at a crash,
        and a producer flush is no proof of delivery). If a record failed, it is logged and
        they stay unacknowledged, so their partitions are read again after a restart or
        rebalance."""
        errors = await self.delivered(since, upto)
        if errors:
            log.error("changelog", "%d %s writes not delivered (%s); their messages stay "
                      "unacknowledged", len(errors), what, errors[0])
        else:
            dirty.acknowledge(written)


def _on_batch_sent(table: Any, count: int, fut: asyncio.Future[Any]) -> None:
    """A batch of ``count`` changelog records of ``table`` (one changelog partition) reached
    the broker: Faust's ``_on_changelog_sent`` keeps the offset of its last record (RocksDB's
    note of what it holds)."""
    if fut.cancelled() or fut.exception() is not None:
        return
    base = fut.result()  # the batch's metadata: its first record's offset
    done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    done.set_result(base._replace(offset=base.offset + count - 1))
    table._on_changelog_sent(done)


def _store_put(store: Any, partition: int, key: bytes, value: bytes) -> None:
    """``store[key] = value`` in ``partition``'s part of a Faust store, which Faust would
    take from the current event."""
    db_for = getattr(store, "_db_for_partition", None)
    if db_for is None:
        store[key] = value  # memory://: one dict for every partition
    else:  # rocksdb://: a database per partition, as faust.stores.rocksdb.Store._set does
        store._key_index[key] = partition
        db_for(partition).put(key, value)


def stored_keys(table: Any) -> int:
    """How many keys ``table`` holds in the partitions this worker owns: exact on memory://;
    on rocksdb://, RocksDB's own estimate (``rocksdb.estimate-num-keys``, deletions counted
    until compaction), where Faust's ``len()`` reads every key."""
    actives = getattr(table.data, "_dbs_for_actives", None)
    if actives is not None:
        dbs = list(actives())
        if all(hasattr(db, "property_int_value") for db in dbs):  # rocksdict's Rdict
            return sum(int(db.property_int_value("rocksdb.estimate-num-keys") or 0)
                       for db in dbs)
    return len(table)  # memory://, or another RocksDB binding: Faust's own count


def set_in_partition(table: Any, key: bytes, value: bytes, event: Any) -> None:
    """``table[key] = value`` with ``event`` as Faust's current event.

    Faust picks the changelog (and RocksDB) partition from the current event. In a
    ``take_events`` batch that is the batch's last message, which may be in another
    partition than this key; setting it per write keeps state co-partitioned with its input.
    """
    token = _current_event.set(weakref.ref(event))
    try:
        table[key] = value
    finally:
        _current_event.reset(token)


class At:
    """Stands in for Faust's current event when a timer writes a table: Faust reads only the
    source topic and partition from it, to pick the changelog partition."""

    __slots__ = ("message", "__weakref__")

    def __init__(self, topic: str, partition: int) -> None:
        self.message = SimpleNamespace(topic=topic, partition=partition)


def del_in_partition(table: Any, key: bytes, event: Any) -> None:
    """``del table[key]`` in ``event``'s partition (see ``set_in_partition``)."""
    token = _current_event.set(weakref.ref(event))
    try:
        del table[key]
    finally:
        _current_event.reset(token)
