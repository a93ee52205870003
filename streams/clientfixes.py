"""Fixes to the Kafka clients' behaviour under Faust: a backoff for aiokafka's metadata
retries while no broker answers, a shorter fetch wait for Faust's consumer, and partitions
Faust pauses no longer fetched.

**Metadata retries.**
When every broker is unreachable, aiokafka (0.14, the version requirements.lock pins) fails a
metadata update at once (connection refused) and its producer's sender and consumer's fetcher
force the next one as soon as they hear of the failure: a busy loop. Measured on the worker
under load with its Apache Kafka broker stopped: about 2,000 connection attempts a second and
40 % of a core, against 24 % for processing the load itself. The Java client and kafka-python
wait ``retry.backoff.ms`` between failed metadata updates (kafka-python PR #733, "Avoid busy
poll during metadata refresh failure"); this adds that wait to aiokafka: a failed update
returns only after the client's own ``retry_backoff_ms`` (100 ms by default). A successful
update is not delayed, so recovery after the broker returns is as quick as before.

Applied once by ``frictionwatch worker``; a no-op if aiokafka's internals change shape.

**Fetch wait.** Faust builds its worker consumer with ``fetch_max_wait_ms=1500``, fixed in its
aiokafka driver. aiokafka keeps one fetch request in flight per broker, and a partition whose
fetched records are not all consumed yet is left out of the next request: so when a request
goes out while the busy partitions (web events) still have records buffered, it asks only for
quiet ones (support events, experiments) and the broker holds it up to 1.5 s, and the busy
partitions wait behind it. At 11,500-13,000 events/s paced on Apache Kafka, the sessions stage
then ran 1.6 s behind for whole runs (3 of 3) with 0.3 of a core busy: its batches' first
messages 0.3-0.5 s old with nothing queued in the worker (``bench/latency.py``).
So while records flow, a fetch may wait only ``Settings.fetch_max_wait`` (50 ms): the sessions
stage's batches then came with first messages 70 ms old on average (22 ms at a 10 ms wait),
not 0.3-0.5 s. A short wait costs a fetch request per wait: at 10 ms an idle worker and its
ingest stage used 0.14 of a core (0.02 with Faust's 1.5 s), and three workers cost 1.19-1.34
times one per event (``bench/scale.py``), against 1.06-1.19 at 50 ms. A consumer that had no
records for a second waits ``IDLE_FETCH_WAIT``, Kafka's own default: an idle consumer asks for
every partition at once, and the broker answers as soon as any has records.

**Paused partitions.** Faust pauses a partition in its own books only (``pause_partitions``
leaves it out of the partitions it asks its consumer for); its aiokafka consumer goes on
fetching it. Once a table is recovered, Faust pauses the table's changelog partitions, so the
worker fetched every state it wrote straight back: in a latency-bench run, a sessions
changelog of 506 MB against 155 MB of web events read, about 600 bytes per event. Nobody took
those records, so each fetch's changelog records sat in aiokafka's buffer for its
``prefetch_backoff`` (0.1 s), during which it sends no fetch to that broker at all: the
web-events records waited behind them (the fetcher found changelog records over 50 ms old
in its buffer 1,865-3,515 times in each 30 s run traced, and 0 times with this fix). Now
Faust's pause and resume of a partition are made in aiokafka too, on the consumer's thread.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
import weakref
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["adapt_fetch_wait", "backoff_failed_metadata_updates", "cap_fetch_wait",
           "pause_what_faust_pauses"]

_PATCHED = "_frictionwatch_backoff"
_PATCHED_WAIT = "_frictionwatch_fetch_wait"
_PATCHED_PAUSE = "_frictionwatch_pause"

#: Seconds a consumer with no records for ``TRAFFIC_WINDOW`` lets the broker hold a fetch
#: (Kafka's default ``fetch.max.wait.ms``).
IDLE_FETCH_WAIT = 0.5
#: Seconds after a fetch that brought records during which fetches use the short wait.
TRAFFIC_WINDOW = 1.0

#: app -> the longest a broker may hold its worker consumer's fetch (seconds)
_FETCH_WAIT: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()


def _unpatched(cls: type, name: str, marker: str, changed: str) -> Any:
    """The coroutine method ``cls.name`` to wrap; True if it is wrapped already (``marker``);
    None, with ``changed`` logged, if the library no longer has it as a coroutine."""
    original = getattr(cls, name, None)
    if original is None or not inspect.iscoroutinefunction(original):
        log.warning(changed)
        return None
    return True if getattr(original, marker, False) else original


def backoff_failed_metadata_updates() -> bool:
    """Make ``AIOKafkaClient._metadata_update`` wait ``retry_backoff`` after a failure.
    True if applied (or already), False if aiokafka does not look as expected."""
    try:
        from aiokafka.client import AIOKafkaClient
    except ImportError:
        return False
    original = _unpatched(AIOKafkaClient, "_metadata_update", _PATCHED,
                          "aiokafka changed: metadata retries are not backed off")
    if original is None or original is True:
        return original is True

    @functools.wraps(original)
    async def _metadata_update(self: Any, cluster_metadata: Any, topics: Any) -> bool:
        ok = await original(self, cluster_metadata, topics)
        if not ok:
            await asyncio.sleep(getattr(self, "_retry_backoff", 0.1))
        return bool(ok)

    setattr(_metadata_update, _PATCHED, True)
    AIOKafkaClient._metadata_update = _metadata_update  # type: ignore[method-assign]
    return True


def adapt_fetch_wait(consumer: Any, busy_wait: float) -> bool:
    """Let ``consumer`` (an ``AIOKafkaConsumer``, before it starts) have its fetches held by
    the broker at most ``busy_wait`` seconds while records flow, ``IDLE_FETCH_WAIT`` once none
    came for ``TRAFFIC_WINDOW`` (module docstring). True if applied."""
    if not _patch_fetcher() or not hasattr(consumer, "_fetch_max_wait_ms"):
        return False
    consumer._fetch_max_wait_ms = int(IDLE_FETCH_WAIT * 1000)
    start = consumer.start

    async def start_adapting() -> None:
        await start()
        fetcher = getattr(consumer, "_fetcher", None)  # built by start()
        if fetcher is not None:
            fetcher._fw_waits = (max(1, int(busy_wait * 1000)), int(IDLE_FETCH_WAIT * 1000))
            fetcher._fw_last_records = 0.0

    consumer.start = start_adapting
    return True


def _patch_fetcher() -> bool:
    """aiokafka's ``Fetcher._proc_fetch_request`` (one fetch; True when it brought records)
    sets the wait of the next fetch, for fetchers ``adapt_fetch_wait`` marked."""
    try:
        from aiokafka.consumer.fetcher import Fetcher
    except ImportError:
        return False
    original = _unpatched(Fetcher, "_proc_fetch_request", _PATCHED_WAIT,
                          "aiokafka changed: consumers keep their fetch wait")
    if original is None or original is True:
        return original is True

    @functools.wraps(original)
    async def _proc_fetch_request(self: Any, *args: Any, **kwargs: Any) -> Any:
        got = await original(self, *args, **kwargs)
        waits = getattr(self, "_fw_waits", None)
        if waits is not None:
            now = time.monotonic()
            if got:
                self._fw_last_records = now
            busy = now - self._fw_last_records < TRAFFIC_WINDOW
            self._fetch_max_wait_ms = waits[0] if busy else waits[1]
        return got

    setattr(_proc_fetch_request, _PATCHED_WAIT, True)
    Fetcher._proc_fetch_request = _proc_fetch_request
    return True


def cap_fetch_wait(app: Any, busy_wait: float) -> bool:
    """``adapt_fetch_wait`` for ``app``'s Faust worker consumer, which Faust builds with a
    fixed 1.5 s wait (module docstring). True if applied; False if Faust's aiokafka driver
    does not look as expected (the consumer then keeps Faust's wait)."""
    try:
        from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
    except ImportError:
        return False
    original = getattr(AIOKafkaConsumerThread, "_create_worker_consumer", None)
    if original is None:
        log.warning("faust changed: its consumer keeps its own fetch wait")
        return False
    _FETCH_WAIT[app] = busy_wait
    if getattr(original, _PATCHED_WAIT, False):
        return True

    @functools.wraps(original)
    def _create_worker_consumer(self: Any, transport: Any) -> Any:
        consumer = original(self, transport)
        wait = _FETCH_WAIT.get(self.app)
        if wait is not None:
            adapt_fetch_wait(consumer, wait)
        return consumer

    setattr(_create_worker_consumer, _PATCHED_WAIT, True)
    AIOKafkaConsumerThread._create_worker_consumer = (  # type: ignore[method-assign]
        _create_worker_consumer)
    return True


def pause_what_faust_pauses() -> bool:
    """Make Faust's ``pause_partitions``/``resume_partitions`` pause and resume the partitions
    in its aiokafka consumer too (module docstring, "Paused partitions"). True if applied (or
    already), False if Faust's aiokafka driver does not look as expected."""
    try:
        from aiokafka import TopicPartition
        from faust.transport.drivers.aiokafka import Consumer
    except ImportError:
        return False
    pause, resume = (getattr(Consumer, n, None) for n in ("pause_partitions",
                                                           "resume_partitions"))
    if pause is None or resume is None:
        log.warning("faust changed: paused partitions are still fetched")
        return False
    if getattr(pause, _PATCHED_PAUSE, False):
        return True

    def forward(consumer: Any, tps: list[Any], paused: bool) -> None:
        # aiokafka's partition states belong to the consumer thread's loop (each pause makes
        # a future there), so the change is made there, for those still assigned by then.
        thread = getattr(consumer, "_thread", None)
        client = getattr(thread, "_consumer", None)
        loop = getattr(thread, "thread_loop", None)
        if client is None or loop is None or loop.is_closed() or not tps:
            return

        def apply() -> None:
            assigned = client.assignment()
            mine = [TopicPartition(tp.topic, tp.partition) for tp in tps if tp in assigned]
            if mine:
                (client.pause if paused else client.resume)(*mine)

        loop.call_soon_threadsafe(apply)

    def forwarding(original: Any, paused: bool) -> Any:
        @functools.wraps(original)
        def wrapper(self: Any, tps: Any) -> None:
            tps = list(tps)  # an iterable may be read once
            original(self, tps)
            forward(self, tps, paused)

        setattr(wrapper, _PATCHED_PAUSE, True)
        return wrapper

    Consumer.pause_partitions = forwarding(pause, True)  # type: ignore[method-assign]
    Consumer.resume_partitions = forwarding(resume, False)  # type: ignore[method-assign]
    return True
