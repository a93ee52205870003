"""streams.clientfixes.adapt_fetch_wait on a real broker: while records flow a fetch that finds
none is held at most the short wait, and a consumer that had no records for a second goes back
to the long one (so an idle worker does not ask a hundred times a second)."""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams.clientfixes import IDLE_FETCH_WAIT, TRAFFIC_WINDOW, adapt_fetch_wait
from streams.topics import topic_name


async def _run(bootstrap: str, busy: str, quiet: str) -> tuple[int, int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    assert adapt_fetch_wait(consumer, 0.01)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await consumer.start()
    await producer.start()
    try:
        # A busy topic and a quiet one, as the worker reads web events beside support events.
        consumer.assign([TopicPartition(busy, 0), TopicPartition(quiet, 0)])
        await consumer.seek_to_end()
        fetcher = consumer._fetcher
        before = fetcher._fetch_max_wait_ms
        got = 0
        for i in range(20):
            await producer.send_and_wait(busy, b"x%d" % i, partition=0)
            for records in (await consumer.getmany(timeout_ms=200)).values():
                got += len(records)
        assert got > 0
        during = fetcher._fetch_max_wait_ms
        deadline = time.monotonic() + TRAFFIC_WINDOW + 5 * IDLE_FETCH_WAIT
        while fetcher._fetch_max_wait_ms != int(IDLE_FETCH_WAIT * 1000):
            assert time.monotonic() < deadline, "still the short wait with no records"
            await consumer.getmany(timeout_ms=100)
        return before, during, fetcher._fetch_max_wait_ms
    finally:
        await producer.stop()
        await consumer.stop()


def test_a_short_wait_while_records_flow_and_the_long_one_when_idle(fw_settings,  # type: ignore[no-untyped-def]
                                                                     kafka_bootstrap) -> None:
    busy = topic_name("web_events", fw_settings.topic_prefix)
    quiet = topic_name("support_events", fw_settings.topic_prefix)
    before, during, after = asyncio.run(_run(kafka_bootstrap, busy, quiet))
    assert before == int(IDLE_FETCH_WAIT * 1000)  # idle from the start
    assert during == 10
    assert after == int(IDLE_FETCH_WAIT * 1000)
