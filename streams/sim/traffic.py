"""Send traffic to Kafka at a pace: the simulator's live loop, shared by ``frictionwatch
simulate``, ``frictionwatch demo`` and replay.

``send_live`` paces simulated messages by their event times: a message ``d`` seconds of event
time after the first is sent ``d / speed`` wall seconds after it, so the wall-clock send rate is
the simulated rate times ``speed`` while event times stay realistic. The clock and sleep are
injectable, so pacing is tested without waiting:

>>> import asyncio
>>> from streams.sim import SimMessage
>>> class Sink:
...     def __init__(self): self.got = []
...     async def send(self, value, key=None, source=None): self.got.append((value, source))
>>> class FakeTime:
...     now = 0.0
...     def clock(self): return self.now
...     async def sleep(self, dt): self.now += dt
>>> ft, sink = FakeTime(), Sink()
>>> msgs = [SimMessage(100.0 + i, "segment", b"s1", {"n": i}) for i in range(3)]
>>> stats = asyncio.run(send_live(msgs, sink, speed=2.0, clock=ft.clock, sleep=ft.sleep))
>>> stats.sent, ft.now, sink.got[2]
(3, 1.0, (b'{"n":2}', 'segment'))
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from streams.sim.run import SimMessage

__all__ = ["Pacer", "SendStats", "Sink", "run_until_signal", "send_live"]

T = TypeVar("T")


class Sink(Protocol):
    """Where messages go: ``streams.kafka_io.IngestProducer`` or a test double."""

    async def send(
        self, value: bytes, key: bytes | None = None, source: str | None = None
    ) -> None: ...


@dataclass
class SendStats:
    """What a send loop did so far (passed to ``on_progress`` and returned at the end)."""

    sent: int = 0
    by_source: dict[str, int] = field(default_factory=dict)
    #: Wall seconds since the first message.
    elapsed: float = 0.0
    #: Event time of the last message sent (Unix seconds), if any.
    event_time: float | None = None
    #: Seconds the loop ran behind its schedule at the last message (0: on time).
    behind: float = 0.0
    #: True when ``stop`` ended the loop before the messages ran out.
    stopped: bool = False

    @property
    def rate(self) -> float:
        """Messages per wall second so far."""
        return self.sent / self.elapsed if self.elapsed > 0 else 0.0


class Pacer:
    """Waits for due times on an injectable clock; long waits are cut into short naps so a
    stop request and progress reports are served while idle."""

    #: Longest single nap (seconds): bounds how late a stop or progress report is seen.
    NAP = 0.25

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        stop: asyncio.Event | None = None,
    ) -> None:
        self.clock = clock
        self.sleep = sleep
        self.stop = stop

    @property
    def stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    async def wait_until(self, due: float, idle: Callable[[], None] | None = None) -> float:
        """Sleep until ``due``; return how far behind it we already were (0 if not)."""
        late = self.clock() - due
        if late >= 0:
            return late
        while not self.stopped:
            left = due - self.clock()
            if left <= 0:
                break
            await self.sleep(min(left, self.NAP))
            if idle is not None:
                idle()
        return 0.0


async def send_live(
    messages: Iterable[SimMessage],
    sink: Sink,
    *,
    speed: float = 1.0,
    on_progress: Callable[[SendStats], None] | None = None,
    stop: asyncio.Event | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    progress_every: float = 0.25,
    headers: bool = True,
) -> SendStats:
    """Send ``messages`` (e.g. ``Simulator(...).messages()``) paced by their event times.

    ``speed`` is event seconds per wall second (2.0: twice real time); 0 or less sends as fast
    as the sink takes them. Each message goes with its session id as key and, unless
    ``headers`` is False, its source as the ``fw-source`` header. ``on_progress`` gets the
    running ``SendStats`` about every ``progress_every`` wall seconds (also while waiting) and
    once at the end. Setting ``stop`` ends the loop: the message in hand is sent (at once) and
    no other is taken from ``messages``.
    """
    stats = SendStats()
    pacer = Pacer(clock, sleep, stop)
    by_source = stats.by_source
    start_wall = clock()
    first_time: float | None = None
    next_report = start_wall + progress_every

    def report(now: float) -> None:
        nonlocal next_report
        stats.elapsed = now - start_wall
        if on_progress is not None:
            on_progress(stats)
        next_report = now + progress_every

    def idle() -> None:
        now = clock()
        if now >= next_report:
            report(now)

    for msg in messages:
        if pacer.stopped:
            stats.stopped = True
            break
        if first_time is None:
            first_time = msg.time
        if speed > 0:
            due = start_wall + (msg.time - first_time) / speed
            stats.behind = await pacer.wait_until(due, idle)
            # Stopped while waiting: the message in hand still goes (a generator's truth
            # already counts it), then the loop ends.
        elif stats.sent % 500 == 499:
            await sleep(0)  # let the producer and signal handlers run
        await sink.send(msg.encode(), msg.key, msg.source if headers else None)
        stats.sent += 1
        by_source[msg.source] = by_source.get(msg.source, 0) + 1
        stats.event_time = msg.time
        now = clock()
        if now >= next_report:
            report(now)
    report(clock())
    return stats


def run_until_signal(main: Callable[[asyncio.Event], Awaitable[T]]) -> T:
    """``asyncio.run(main(stop))`` where SIGINT/SIGTERM set ``stop`` (a graceful end: the
    caller flushes and writes its summary); a second signal cancels ``main``."""

    async def runner() -> T:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        task = asyncio.ensure_future(main(stop))

        def on_signal() -> None:
            if stop.is_set():
                task.cancel()
            stop.set()

        installed = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, on_signal)
                installed.append(sig)
        try:
            return await task
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    return asyncio.run(runner())
