"""streams.tables.Changelogs: a flush's changelog records go to the producer as closed
batches, one run per partition in write order, after a producer flush (the outputs sent
before them first), each table told the offset of its last record; ``delivered`` waits for
the records of its own range of writes, whoever else waits, and reports their failures."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch
from aiokafka.structs import RecordMetadata, TopicPartition

from streams.tables import Changelogs


class FakeProducer:
    """aiokafka's batch API: real record batches, a broker that appends them to a log."""

    def __init__(self, batch_size: int, fail: bool = False, hold: bool = False) -> None:
        self.batch_size = batch_size
        self.fail = fail
        #: Leave each batch's future pending, for the test to complete (``futures``).
        self.hold = hold
        self.futures: list[asyncio.Future[Any]] = []
        self.logs: dict[tuple[str, int], list[tuple[bytes, bytes | None]]] = {}
        self.sends: list[tuple[str, int, int, bool]] = []
        #: What happened, in order: "flush" (Faust's producer flush) or a send's topic.
        self.calls: list[str] = []

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(self.batch_size, 0)

    async def send_batch(self, batch: BatchBuilder, topic: str, *, partition: int) -> Any:
        if self.fail:
            raise ConnectionError("broker gone")
        closed = batch.closed()
        records = list(DefaultRecordBatch(bytearray(batch._build())))
        log = self.logs.setdefault((topic, partition), [])
        base = len(log)
        log.extend((r.key, r.value) for r in records)
        self.sends.append((topic, partition, len(records), closed))
        self.calls.append(topic)
        fut = asyncio.get_running_loop().create_future()
        meta = RecordMetadata(topic, partition, TopicPartition(topic, partition), base, -1, 0, 0)
        if self.hold:
            self.futures.append(fut)
            fut.meta = meta  # type: ignore[attr-defined]
        else:
            fut.set_result(meta)
        return fut


class FakeTable:
    def __init__(self, topic: str) -> None:
        self.changelog_topic = SimpleNamespace(get_topic_name=lambda: topic)
        self.persisted: dict[int, int] = {}

    def send_changelog(self, partition: int | None, key: Any, value: Any = None,
                       key_serializer: Any = None, value_serializer: Any = None) -> Any:
        raise AssertionError("records with bytes and a partition are queued, not sent")

    def _on_changelog_sent(self, fut: Any) -> None:
        res = fut.result()
        self.persisted[res.partition] = max(self.persisted.get(res.partition, -1), res.offset)


def app_with(producer: FakeProducer) -> Any:
    async def flush() -> None:
        producer.calls.append("flush")

    return SimpleNamespace(producer=SimpleNamespace(_ensure_producer=lambda: producer,
                                                    flush=flush))


def test_records_go_in_closed_batches_per_partition_in_write_order() -> None:
    producer = FakeProducer(batch_size=200)  # a few records per batch: runs are split
    sessions, customers = FakeTable("sessions-changelog"), FakeTable("customers-changelog")

    async def run() -> list[BaseException]:
        logs = Changelogs(sessions, customers, app=app_with(producer))
        for i in range(30):
            sessions.send_changelog(i % 3, f"s{i}".encode(), b"x" * 40)
            if i % 10 == 0:
                customers.send_changelog(0, f"c{i}".encode(), None)  # a deletion
        return await logs.delivered()

    assert asyncio.run(run()) == []
    for p in range(3):
        keys = [k for k, _ in producer.logs[("sessions-changelog", p)]]
        assert keys == [f"s{i}".encode() for i in range(p, 30, 3)]
    assert producer.logs[("customers-changelog", 0)] == [(b"c0", None), (b"c10", None),
                                                          (b"c20", None)]
    assert all(closed for *_, closed in producer.sends)
    assert len([s for s in producer.sends if s[0] == "sessions-changelog"]) > 3  # split
    assert sessions.persisted == {0: 9, 1: 9, 2: 9}  # each partition's last offset
    assert customers.persisted == {0: 2}


def test_a_failed_send_is_reported_by_delivered() -> None:
    table = FakeTable("sessions-changelog")

    async def run() -> list[BaseException]:
        logs = Changelogs(table, app=app_with(FakeProducer(1 << 20, fail=True)))
        table.send_changelog(0, b"s1", b"{}")
        return await logs.delivered()

    errors = asyncio.run(run())
    assert [type(e) for e in errors] == [ConnectionError]
    assert table.persisted == {}


def test_each_round_of_sends_follows_a_producer_flush() -> None:
    """Outputs sent before a state was written reach the broker before the state does: a
    state in the changelog marks its events applied, and a restart would not send them
    again."""
    producer = FakeProducer(1 << 20)
    table = FakeTable("sessions-changelog")

    async def run() -> None:
        logs = Changelogs(table, app=app_with(producer))
        table.send_changelog(0, b"s1", b"{}")
        await logs.delivered()
        table.send_changelog(1, b"s2", b"{}")
        await logs.delivered()

    asyncio.run(run())
    assert producer.calls == ["flush", "sessions-changelog", "flush", "sessions-changelog"]


def test_delivered_waits_for_its_own_writes_and_reports_only_their_failures() -> None:
    producer = FakeProducer(1 << 20, hold=True)
    table = FakeTable("sessions-changelog")

    async def run() -> tuple[list[BaseException], list[BaseException], bool, bool]:
        logs = Changelogs(table, app=app_with(producer))
        table.send_changelog(0, b"a", b"{}")
        a = logs.mark()
        table.send_changelog(1, b"b", b"{}")
        b = logs.mark()
        first = asyncio.ensure_future(logs.delivered(0, a))
        second = asyncio.ensure_future(logs.delivered(a, b))
        everything = asyncio.ensure_future(logs.delivered())  # another agent's wait
        for _ in range(5):
            await asyncio.sleep(0)
        fa, fb = producer.futures
        fb.set_result(fb.meta)  # type: ignore[attr-defined]
        b_errors = await second
        waiting = not first.done() and not everything.done()
        fa.set_exception(ConnectionError("broker gone"))
        a_errors = await first
        return a_errors, b_errors, waiting, bool(await everything)

    a_errors, b_errors, waiting, everything_failed = asyncio.run(run())
    assert b_errors == []
    assert waiting  # the other waits were not cut short by the first to finish
    assert [type(e) for e in a_errors] == [ConnectionError]
    assert everything_failed
    assert table.persisted == {1: 0}


def test_two_waits_for_the_same_records_both_wait() -> None:
    """One agent waiting for everything written so far must not take the others' records
    from them: each returns only once the broker has them."""
    producer = FakeProducer(1 << 20, hold=True)
    table = FakeTable("sessions-changelog")

    async def run() -> tuple[bool, list[BaseException], list[BaseException]]:
        logs = Changelogs(table, app=app_with(producer))
        table.send_changelog(0, b"a", b"{}")
        one = asyncio.ensure_future(logs.delivered())
        two = asyncio.ensure_future(logs.delivered())
        for _ in range(5):
            await asyncio.sleep(0)
        early = one.done() or two.done()
        (fut,) = producer.futures
        fut.set_result(fut.meta)  # type: ignore[attr-defined]
        return early, await one, await two

    assert asyncio.run(run()) == (False, [], [])


class RocksLike:
    """A RocksDB store's shape: a database per partition (faust.stores.rocksdb.Store)."""

    def __init__(self) -> None:
        self.dbs: dict[int, dict[bytes, bytes]] = {}
        self._key_index: dict[bytes, int] = {}

    def _db_for_partition(self, partition: int) -> Any:
        db = self.dbs.setdefault(partition, {})
        return SimpleNamespace(put=db.__setitem__)


def test_put_writes_the_store_and_queues_the_record_in_the_partition_given() -> None:
    producer = FakeProducer(batch_size=1 << 16)
    memory, rocks = FakeTable("sessions-changelog"), FakeTable("customers-changelog")
    memory.data = {}  # type: ignore[attr-defined]
    rocks.data = RocksLike()  # type: ignore[attr-defined]

    async def run() -> tuple[list[BaseException], bool, int]:
        logs = Changelogs(memory, rocks, app=app_with(producer))
        assert logs.put(memory, 2, b"s1", b"v1") and logs.put(rocks, 1, b"c1", b"w1")
        refused = logs.put(FakeTable("other-changelog"), 0, b"k", b"v")  # not tracked
        return await logs.delivered(), refused, logs.mark()

    errors, refused, marked = asyncio.run(run())
    assert errors == [] and refused is False and marked == 2
    assert memory.data == {b"s1": b"v1"}  # type: ignore[attr-defined]
    assert rocks.data.dbs == {1: {b"c1": b"w1"}} and rocks.data._key_index == {b"c1": 1}  # type: ignore[attr-defined]
    assert producer.logs == {("sessions-changelog", 2): [(b"s1", b"v1")],
                             ("customers-changelog", 1): [(b"c1", b"w1")]}
    assert memory.persisted == {2: 0} and rocks.persisted == {1: 0}


def test_stored_keys_counts_a_memory_table_and_asks_rocksdb_for_its_estimate() -> None:
    from streams.tables import stored_keys

    class Memory(dict[bytes, bytes]):
        data: dict[bytes, bytes] = {}

    memory = Memory({b"a": b"1", b"b": b"2"})
    assert stored_keys(memory) == 2

    class Rdict:
        def __init__(self, n: int) -> None:
            self.n = n

        def property_int_value(self, name: str) -> int:
            assert name == "rocksdb.estimate-num-keys"
            return self.n

    class Rocks:
        data = SimpleNamespace(_dbs_for_actives=lambda: iter([Rdict(3), Rdict(4)]))

        def __len__(self) -> int:
            raise AssertionError("Faust's len() reads every key")

    assert stored_keys(Rocks()) == 7
