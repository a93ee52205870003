"""The bulk ingest stage's pure part and the bundle format: grouping by partition as the
producer does, bundles within the producer's limit, and exact results whatever the cuts of a
re-sent fetch (the states skip replays per ingest origin)."""

from __future__ import annotations

import json
import random

import msgspec
import pytest
from aiokafka.partitioner import DefaultPartitioner

from detectors.events import PageView, encode_batch
from detectors.session import encode_state
from streams import detection
from streams.bulk import Partitioner, Record, group_records, pack
from streams.bundle import Entry, decode_bundle, encode_bundle, events_of, parse_origin
from streams.settings import Settings

SETTINGS = Settings(abandonment_model=False, churn_model=False, ticket_triage=False)
T0 = 1_767_225_600.0


def segment_messages(n: int, seed: int = 3) -> list[Record]:
    """``n`` ingest messages of one to three Segment calls of one of five sessions each."""
    rng = random.Random(seed)
    records = []
    made = 0
    for offset in range(n):
        sid = f"anon-{rng.randrange(5)}"
        calls = []
        for _ in range(rng.randint(1, 3)):
            made += 1
            ts = f"2026-01-01T00:{made // 60:02d}:{made % 60:02d}Z"
            calls.append({"type": "track", "event": "Element Clicked", "messageId": f"m{made}",
                          "anonymousId": sid, "timestamp": ts,
                          "properties": {"x": rng.randrange(100), "y": 5, "target": "#b"}})
        records.append(Record(offset % 2, offset, json.dumps({"batch": calls}).encode(),
                              "segment"))
    return records


def bundles_of(records: list[Record], partitions: int = 4) -> list[tuple[int, bytes]]:
    g = group_records(records, web_partitions=partitions, support_partitions=partitions,
                      settings=SETTINGS, now=T0 + 100)
    return [(p, b) for p, entries in g.web.items() for b in pack(entries, 1 << 20)[0]]


def apply(engines: dict[int, object], bundles: list[tuple[int, bytes]]) -> None:
    for partition, value in bundles:
        engine = engines.setdefault(partition, detection.engine(SETTINGS))
        for entry in decode_bundle(value):
            engine.feed(entry.events, parse_origin(entry.origin))  # type: ignore[attr-defined]


def states(engines: dict[int, object]) -> dict[str, bytes]:
    return {sid: encode_state(s) for e in engines.values()
            for sid, s in e.sessions.items()}  # type: ignore[attr-defined]


def test_partition_is_the_producers_default_partitioner() -> None:
    ours, theirs = Partitioner(size=10), DefaultPartitioner()
    parts = list(range(7))
    for i in range(50):  # more keys than the cache holds: it is cleared, not wrong
        key = f"session-{i}"
        assert ours(key, 7) == theirs(key.encode(), parts, parts)


def test_one_entry_per_key_and_ingest_message_with_its_origin() -> None:
    records = segment_messages(40)
    g = group_records(records, web_partitions=4, support_partitions=4, settings=SETTINGS,
                      now=T0 + 100)
    part = Partitioner()
    seen = []
    for partition, entries in g.web.items():
        for e in decode_bundle(pack(entries, 1 << 20)[0][0]):
            assert part(e.key, 4) == partition
            assert {ev.session_id for ev in e.events} == {e.key}
            seen.append(e.origin)
    assert sorted(seen) == sorted(f"i{r.partition}:{r.offset}" for r in records)
    assert sum(g.counts.values()) == sum(len(json.loads(r.value or b"")["batch"])
                                         for r in records)


def test_a_re_sent_fetch_cut_differently_applies_each_message_once() -> None:
    records = segment_messages(60)
    once: dict[int, object] = {}
    apply(once, bundles_of(records))
    # Crash after sending the first fetch (0..37) but before its commit, which stood at 20:
    # the stage re-reads from 20 in other cuts and re-sends.
    crashed: dict[int, object] = {}
    apply(crashed, bundles_of(records[:38]))
    for lo, hi in ((20, 29), (29, 51), (51, 60)):
        apply(crashed, bundles_of(records[lo:hi]))
    assert states(crashed) == states(once)
    # Without the origins (the check the states make) the re-sent events count twice.
    twice: dict[int, object] = {}
    for partition, value in bundles_of(records[:38]) + bundles_of(records[20:]):
        engine = twice.setdefault(partition, detection.engine(SETTINGS))
        for entry in decode_bundle(value):
            engine.feed(entry.events, None)  # type: ignore[attr-defined]
    assert states(twice) != states(once)


def test_pack_keeps_order_and_every_bundle_within_the_room() -> None:
    entries = [msgspec.json.encode(["s", f"i0:{i}", ["x" * (i % 50)]]) for i in range(300)]
    bundles, too_large = pack(entries, 1000)
    assert not too_large and len(bundles) > 1
    assert all(len(b) <= 1000 + len(b'{"entries":[]}') for b in bundles)
    assert [e for b in bundles for e in msgspec.json.decode(b)["entries"]] == \
        [msgspec.json.decode(e) for e in entries]


def test_bundle_decode_refuses_what_no_state_should_see() -> None:
    good = PageView(id="e1", session_id="s1", time=T0, url="/")
    assert [e.id for e in events_of(encode_bundle([Entry("s1", None, [good])]))] == ["e1"]
    # The older one-key value still reads, its key from the Kafka key.
    assert events_of(encode_batch([good]), b"s1") == [good]
    for bad in (b'{"entries": []}', b'{"entries": [["s1", null, []]]}',
                b'{"entries": [["s1", "nowhere", [{"type": "page_view", "id": "e", '
                b'"session_id": "s1", "time": 1, "url": "/"}]]]}',
                b'{"entries": [["s1", "i0:1", [{"type": "page_view", "id": "e", '
                b'"session_id": "s1", "time": -5, "url": "/"}]]]}',
                b'[{"type": "click", "id": "1"}]', b"[]"):
        with pytest.raises((msgspec.DecodeError, ValueError)):
            decode_bundle(bad, b"s1")
    with pytest.raises(ValueError):
        decode_bundle(encode_batch([good]))  # an older value needs its key


class _Consumer:
    """The part of AIOKafkaConsumer the stage uses: fetches handed out in turn, commits kept."""

    def __init__(self, fetches: list[dict[object, list[object]]]) -> None:
        self.fetches = fetches
        self.commits: list[dict[object, int]] = []

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[object, list[object]]:
        return self.fetches.pop(0) if self.fetches else {}

    async def commit(self, offsets: dict[object, int]) -> None:
        self.commits.append(dict(offsets))

    def assignment(self) -> set[object]:
        return set()

    async def stop(self) -> None:
        return None


class _Producer:
    def __init__(self) -> None:
        self.sent = 0

    async def send(self, topic: str, value: bytes, partition: int | None = None) -> object:
        import asyncio

        self.sent += 1
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def partitions_for(self, topic: str) -> set[int]:
        return {0, 1, 2, 3}

    async def stop(self) -> None:
        return None


def _fetch(partition: int, first: int, n: int) -> dict[object, list[object]]:
    from types import SimpleNamespace

    from aiokafka import TopicPartition

    records = segment_messages(n)
    return {TopicPartition("ingest", partition): [
        SimpleNamespace(offset=first + i, value=r.value, headers=[("fw-source", b"segment")],
                        timestamp=1_767_225_600_000 + i) for i, r in enumerate(records)]}


@pytest.mark.parametrize("interval", [3600.0, 0.0])
def test_the_stage_commits_what_was_sent_once_per_interval_and_on_revocation(
        interval: float) -> None:
    """Offsets are committed once per commit interval, not per fetch, and always before the
    partitions go to another stage (or the stage stops); only sent, acknowledged fetches."""
    import asyncio

    from aiokafka import TopicPartition
    from prometheus_client import CollectorRegistry

    from streams.bulk import BulkIngest, _Handoff
    from streams.metrics import Metrics

    async def run() -> tuple[list[dict[object, int]], int]:
        stage = BulkIngest(Settings(commit_interval=interval or 1e-9), "unused:9092",
                           Metrics(CollectorRegistry()), 1 << 20)
        consumer = _Consumer([_fetch(0, 0, 30), _fetch(1, 0, 20), _fetch(0, 30, 10)])
        stage.consumer, stage.producer = consumer, _Producer()  # type: ignore[assignment]
        for _ in range(3):
            assert await stage.step() > 0
        commits_before = len(consumer.commits)
        await _Handoff(stage).on_partitions_revoked(set())
        await stage.stop()
        return consumer.commits, commits_before

    commits, before = asyncio.run(run())
    p0, p1 = TopicPartition("ingest", 0), TopicPartition("ingest", 1)
    if interval:
        assert before == 0  # three fetches within the interval: no commit yet
        assert commits == [{p0: 40, p1: 20}]  # at the revocation; nothing left at the stop
    else:
        assert commits == [{p0: 30}, {p1: 20}, {p0: 40}]  # a commit per fetch
