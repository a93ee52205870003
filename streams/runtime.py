"""Process-wide setup shared by a worker and its ingest process (``streams.ingest_process``):
the event loop (uvloop) and the garbage collector's pace (full collections on a timer,
``streams.memory``)."""

from __future__ import annotations

import asyncio
import gc

__all__ = ["GC_THRESHOLDS", "tune_gc", "use_uvloop"]


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
#: collections of a generation before the next one's (the oldest: never by count; a timer
#: runs full collections, ``streams.memory.FULL_COLLECTION_INTERVAL``): see ``tune_gc``.
GC_THRESHOLDS = (50_000, 20, 10**9)


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
    found 129 objects to free. So they run on a timer, not when the counts say."""
    gc.collect()
    gc.freeze()  # modules, settings, the app: never garbage, never scanned again
    gc.set_threshold(*GC_THRESHOLDS)
