"""Process-wide setup shared by a worker and its ingest process (``streams.ingest_process``):
the event loop (uvloop) and the garbage collector's pace (full collections on a timer,
``streams.memory``)."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable
from typing import Any

__all__ = ["GC_THRESHOLDS", "tune_gc", "use_uvloop", "watch_gc_pauses"]


def use_uvloop() -> bool:
    """Run this process's event loops on uvloop where it is installed (not on Windows): the
    loop's own cost per callback and socket read is about half asyncio's, and a worker runs
    tens of thousands of them a second (issue 14). Before the app exists, so it gets that
    loop."""
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


#: Allocations between young-generation collections (CPython's default is 700), and how many
#: collections of a generation before the next one's: neither older generation ever by count
#: (a timer runs full collections, ``streams.memory.FULL_COLLECTION_INTERVAL``): see
#: ``tune_gc``.
GC_THRESHOLDS = (50_000, 10**9, 10**9)


def tune_gc() -> None:
    """Make the cyclic garbage collector rare and keep the objects made at startup out of it.

    Every decoded event, bundle entry and send future is a tracked allocation, and with the
    defaults the young generations filled every 700 of them: objects alive across a batch's
    awaits were promoted, so full collections ran about twice a second, each a pause of about
    0.2 s over the worker's few hundred thousand objects. At 9,000 events/s paced
    (``bench/latency.py``) that was 10.3 of the worker's 29 CPU seconds; with these thresholds
    0.65 of 21. Reference counting still frees nearly everything at once; only cycles wait.

    A full collection scans every object the worker holds, about 0.3 s with a few tens of
    thousands of sessions, and stops both stages meanwhile: one of them was the whole p99 of
    the latency bench (866 ms in the 5 s it fell in, at most 163 ms in the others) while it
    found 129 objects to free. So they run on a timer, not when the counts say.

    The middle generation is left to that timer too. What survives a young collection is
    nearly all live session state, so a middle collection (every 20 young ones, about once a
    minute at 20,000 events/s) scanned about a million objects to free none: a pause of
    293-416 ms of the sessions stage in 9 of 10 latency-bench runs traced (``gc.callbacks``),
    where a young collection took 30-50 ms. Their time is now the metric
    ``frictionwatch_gc_pause_seconds``."""
    gc.collect()
    gc.freeze()  # modules, settings, the app: never garbage, never scanned again
    gc.set_threshold(*GC_THRESHOLDS)


def watch_gc_pauses(observe: Callable[[int, float], None]) -> Callable[[str, dict[str, Any]], None]:
    """Call ``observe(generation, seconds)`` after each collection of this process's cyclic
    garbage collector: every agent of the process waits for as long. Returns the callback, to
    take out of ``gc.callbacks`` when done.

    >>> seen = []
    >>> on_gc = watch_gc_pauses(lambda gen, seconds: seen.append(gen))
    >>> _ = gc.collect(1)
    >>> gc.callbacks.remove(on_gc)
    >>> seen
    [1]
    """
    started = [0.0]

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        elif started[0]:
            observe(info["generation"], time.perf_counter() - started[0])

    gc.callbacks.append(on_gc)
    return on_gc
