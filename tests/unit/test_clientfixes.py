"""streams.clientfixes: a failed aiokafka metadata update waits retry_backoff before the next.

Without it, a worker whose broker is down retries metadata in a busy loop (measured: about
2,000 attempts a second, 40 % of a core; with it, 3 %).
"""

from __future__ import annotations

import asyncio
import time

import pytest

from streams.clientfixes import backoff_failed_metadata_updates

aiokafka_client = pytest.importorskip("aiokafka.client")


async def _one_update(backoff_ms: int) -> tuple[bool, float]:
    # No broker known and no bootstrap connection: the update fails at once, as when every
    # broker refuses connections.
    client = aiokafka_client.AIOKafkaClient(bootstrap_servers="127.0.0.1:1",
                                            retry_backoff_ms=backoff_ms)
    t0 = time.monotonic()
    ok = await client._metadata_update(client.cluster, set())
    return ok, time.monotonic() - t0


def test_a_failed_metadata_update_backs_off() -> None:
    assert backoff_failed_metadata_updates() is True
    assert backoff_failed_metadata_updates() is True  # idempotent: wrapped once
    ok, took = asyncio.run(_one_update(backoff_ms=300))
    assert ok is False
    assert took >= 0.29, f"a failed update returned after {took:.3f} s, without backing off"


class _Client:
    """What ``pause_what_faust_pauses`` uses of an ``AIOKafkaConsumer``."""

    def __init__(self, assigned: set[tuple[str, int]]) -> None:
        self.assigned = assigned
        self.paused: set[tuple[str, int]] = set()

    def assignment(self) -> set[tuple[str, int]]:
        return self.assigned

    def pause(self, *tps: tuple[str, int]) -> None:
        self.paused.update(tps)

    def resume(self, *tps: tuple[str, int]) -> None:
        self.paused.difference_update(tps)


def test_what_faust_pauses_its_aiokafka_consumer_stops_fetching() -> None:
    # Faust pauses a table's changelog partitions once recovered, in its own books only: the
    # client went on fetching every state write back (and held other fetches up to 100 ms).
    import faust
    from aiokafka import TopicPartition
    from faust.types import TP

    from streams.clientfixes import pause_what_faust_pauses

    assert pause_what_faust_pauses() is True
    assert pause_what_faust_pauses() is True  # idempotent: wrapped once
    app = faust.App("fw-pause-test", broker="kafka://127.0.0.1:1")
    consumer = app.consumer
    thread = consumer._thread  # type: ignore[attr-defined]
    client = _Client({TopicPartition("changelog", 0), TopicPartition("events", 0)})
    thread._consumer = client
    changelog, revoked = TP("changelog", 0), TP("changelog", 1)
    try:
        consumer.pause_partitions([changelog, revoked])
        # Applied on the consumer thread's loop, where aiokafka's partition states live.
        thread.thread_loop.run_until_complete(asyncio.sleep(0))
        assert client.paused == {TopicPartition("changelog", 0)}  # not one no longer assigned
        assert changelog not in consumer._get_active_partitions()  # Faust's own books too
        consumer.resume_partitions([changelog])
        thread.thread_loop.run_until_complete(asyncio.sleep(0))
        assert client.paused == set()
    finally:
        thread.thread_loop.close()
