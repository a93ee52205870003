"""streams.take.take_batches: a batch is what is queued (no fixed wait), at most ``max_``; a
stage that is behind gathers ``within`` of messages; events are acknowledged once the next
batch is asked for. Against a stand-in for the part of a Faust stream it uses: a passive
drainer that sets the current event and runs the processors, as Faust's does."""

from __future__ import annotations

import asyncio
import contextlib
import time
from types import SimpleNamespace
from typing import Any

from streams.take import BEHIND, take_batches


class FakeChannel:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue()

    def __aiter__(self) -> FakeChannel:
        return self

    async def __anext__(self) -> Any:  # Faust's channel iterator; the drainer reads the queue
        raise StopAsyncIteration


class FakeStream:
    """What ``take_batches`` reads of a ``faust.Stream``."""

    def __init__(self) -> None:
        self.channel = FakeChannel()
        self.current_event: Any = None
        self.should_stop = False
        self.enable_acks = True
        self._processors: list[Any] = []
        self.acked: list[Any] = []
        self.log = SimpleNamespace(exception=lambda *a: None)

    def put(self, value: Any, age: float = 0.0) -> None:
        message = SimpleNamespace(timestamp=time.time() - age)
        self.channel.queue.put_nowait(SimpleNamespace(value=value, message=message))

    def add_processor(self, processor: Any) -> None:
        self._processors.append(processor)

    def _enable_passive(self, channel: Any) -> None:
        self._drainer = asyncio.ensure_future(self._drain())

    async def _drain(self) -> None:
        while True:
            event = await self.channel.queue.get()
            self.current_event = event
            for p in list(self._processors):
                await p(event.value)

    async def ack(self, event: Any) -> bool:
        self.acked.append(event.value)
        return True

    async def wait(self, event: asyncio.Event) -> None:
        await event.wait()

    async def wait_for_stopped(self, event: asyncio.Event, timeout: float | None = None) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)
        return self.should_stop

    async def crash(self, exc: BaseException) -> None:
        raise exc


def test_what_is_queued_comes_at_once_and_a_busy_batch_gathers_the_rest() -> None:
    async def run() -> tuple[float, list[list[int]], list[int]]:
        stream = FakeStream()
        batches: list[list[int]] = []
        batches_it = take_batches(stream, 100, 5.0)
        t0 = time.monotonic()
        stream.put(1)
        first = await batches_it.__anext__()
        waited = time.monotonic() - t0
        batches.append([e.value for e in first])
        for i in range(2, 8):  # arrive while the first batch is being applied
            stream.put(i)
        await asyncio.sleep(0.05)
        batches.append([e.value for e in await batches_it.__anext__()])
        acked = list(stream.acked)
        await batches_it.aclose()
        return waited, batches, acked

    waited, batches, acked = asyncio.run(run())
    assert waited < 2.5  # not the 5 s ``within``: nothing else was queued
    assert batches == [[1], [2, 3, 4, 5, 6, 7]]
    assert acked == [1]  # the first batch's, once the second was asked for


def test_a_batch_holds_at_most_max_messages() -> None:
    async def run() -> list[list[int]]:
        stream = FakeStream()
        for i in range(7):
            stream.put(i)
        it = take_batches(stream, 3, 0.5)
        out = [[e.value for e in await it.__anext__()] for _ in range(3)]
        await it.aclose()
        return out

    assert asyncio.run(run()) == [[0, 1, 2], [3, 4, 5], [6]]


def first_batch(within: float, age: float, second_after: float) -> list[int]:
    """The first batch taken when message 1, ``age`` seconds old, is queued and message 2
    comes ``second_after`` seconds later."""
    async def run() -> list[int]:
        stream = FakeStream()
        it = take_batches(stream, 100, within)
        stream.put(1, age=age)

        async def later() -> None:
            await asyncio.sleep(second_after)
            stream.put(2)

        asyncio.ensure_future(later())
        batch = [e.value for e in await it.__anext__()]
        await it.aclose()
        return batch

    return asyncio.run(run())


def test_a_stage_that_is_behind_gathers_within() -> None:
    """Its first message is older than ``within``: it waits for more, as take_events does,
    so batches grow and the stage catches up."""
    assert first_batch(within=0.3, age=5.0, second_after=0.1) == [1, 2]


def test_a_message_aged_by_its_way_here_is_not_behind() -> None:
    """Older than ``within`` by the upstream linger, broker and fetch, but not ``BEHIND``:
    the batch is what is queued, with no ``within`` wait added to every cycle."""
    assert BEHIND * 0.8 > 0.1
    # not held for message 2, which came within ``within``
    assert first_batch(within=0.1, age=BEHIND * 0.8, second_after=0.03) == [1]


def test_closing_restores_the_stream() -> None:
    async def run() -> FakeStream:
        stream = FakeStream()
        stream.put(1)
        it = take_batches(stream, 10, 0.1)
        await it.__anext__()
        await it.aclose()
        return stream

    stream = asyncio.run(run())
    assert stream.enable_acks is True and stream._processors == []
    assert stream.acked == [1]
