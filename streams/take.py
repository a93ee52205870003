"""Batches of a Faust stream sized by the traffic, not by a fixed wait.

Faust's ``Stream.take_events(max_, within)`` waits ``within`` seconds before every batch
unless ``max_`` messages came first. Our stages receive bundles (``streams.bundle``), a few
messages per fetch of the ingest stage, so ``max_`` is never reached and every batch waited
the full ``within`` after the previous one, even with messages already queued: at 20,000
events/s paced, 20 ms of every sessions-stage cycle of 50-90 ms went to that wait
(``bench/latency.py``), and an idle worker woke every 20 ms per agent.

``take_batches`` takes what is already queued at once: a batch is everything that arrived
while the previous one was applied (up to ``max_`` messages), so batches grow with the load
and shrink to one message when it is light; with nothing queued it sleeps until a message
comes. A stage that is behind (its batch's first message older than ``BEHIND``) gathers
``within`` of messages, as ``take_events`` does: taking only what was queued kept its batches
small (the consumer fetches between batches) and it stayed seconds behind. ``within`` also
bounds how long it keeps gathering a queue that never empties. It keeps ``take_events``'
contract otherwise: the stream's acks are disabled, and each batch's events are acknowledged
(Faust's own ack) once the consumer asks for the next batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator
from typing import Any

from faust.types import EventT

__all__ = ["BEHIND", "take_batches"]

#: How old (seconds, by its Kafka timestamp) a batch's first message must be for the stage to
#: count as behind and gather ``within`` more. Not ``within`` itself: a message's age includes
#: the upstream producer's linger, the broker and the fetch (20-100 ms at 20,000 events/s paced),
#: so at 20 ms nearly every batch of the sessions stage waited 20 ms more, which lengthened each
#: cycle and so the next batch: the stage's median latency was 49-163 ms, 23-71 ms at 0.25 s
#: (``bench/latency.py``; the p99 is set by machine-wide stalls either way, README "Latency and
#: memory"). A backlog's messages are seconds old: it still gathers.
BEHIND = 0.25


def take_batches(stream: Any, max_: int, within: float
                 ) -> AsyncGenerator[list[EventT], None]:
    """Batches of ``stream``'s events: those queued now (at least one), at most ``max_``,
    gathered for at most ``within`` seconds."""
    agen = _take(stream, max_, within)
    # As Faust does for its own: Stream.on_stop closes them (acks, processor removed).
    with contextlib.suppress(AttributeError):
        stream._active_agens.add(agen)
    return agen


async def _take(stream: Any, max_: int, within: float) -> AsyncGenerator[list[EventT], None]:
    events: list[EventT] = []
    ready = asyncio.Event()  # at least one event buffered
    full = asyncio.Event()
    consumed = asyncio.Event()
    # Set while a batch is out: the drainer holds at most one more event until it is back.
    consuming: asyncio.Future[None] | None = None
    queue = stream.channel.queue
    loop = asyncio.get_running_loop()

    async def add(value: Any) -> Any:
        nonlocal consuming
        try:
            if consuming is not None:
                try:
                    await consuming
                finally:
                    consuming = None
            event = stream.current_event
            if event is None:
                raise RuntimeError("take_batches found no current event")
            events.append(event)
            ready.set()
            if len(events) >= max_:
                full.set()
                consumed.clear()
                await stream.wait(consumed)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # as Faust's take_events: the stream crashes
            stream.log.exception("Error adding to take buffer: %r", exc)
            await stream.crash(exc)
        return value

    enable_acks = stream.enable_acks
    stream.enable_acks = False  # acknowledged here, once the consumer is done with a batch
    stream.add_processor(add)
    stream._enable_passive(aiter(stream.channel))
    try:
        while not stream.should_stop:
            if not events and await stream.wait_for_stopped(ready):
                break
            if time.time() - events[0].message.timestamp > max(within, BEHIND):
                # Behind: gather ``within`` of messages, as take_events does, so batches grow
                # and the stage catches up; what is queued is only what the consumer fetched
                # during the last batch.
                await stream.wait_for_stopped(full, timeout=within)
            else:
                until = loop.time() + within
                # The rest of what is queued: the drainer moves it into the buffer meanwhile.
                while not full.is_set() and not queue.empty() and loop.time() < until:
                    await asyncio.sleep(0)
            out = consuming = loop.create_future()
            try:
                yield list(events)
            finally:
                for event in events:
                    await stream.ack(event)
                events.clear()
                ready.clear()
                if not out.done():
                    out.set_result(None)
                full.clear()
                consumed.set()
    finally:
        stream.enable_acks = enable_acks
        stream._processors.remove(add)
