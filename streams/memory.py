"""Give freed heap memory back to the operating system, and collect reference cycles on a
timer.

A worker that decodes a 512 KB request builds many objects at once and frees them a moment
later. CPython returns its own small-object arenas when they empty, but glibc's ``malloc``
keeps the pages of freed larger blocks in its heap, so a burst of big payloads leaves RSS high
long after the data is gone. ``malloc_trim(0)`` hands those free pages back; it is cheap (it
walks the free lists, not the live objects) and safe to call at any time.

>>> isinstance(release_free_memory(), bool)
True
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import time
from collections.abc import Callable

__all__ = ["FULL_COLLECTION_INTERVAL", "collect_cycles", "release_free_memory"]

#: Seconds between the worker's full garbage collections (``collect_cycles``); CPython's own
#: count never triggers one (``streams.runtime.GC_THRESHOLDS``). Each is a pause of
#: the whole worker (about 0.3 s with a few tens of thousands of sessions): every 5 minutes
#: it delays about 0.1% of events, where CPython's counts ran one about every minute; the
#: cycles it frees are few (129 objects in one that took 322 ms).
FULL_COLLECTION_INTERVAL = 300.0


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        fn = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim this way
        return None
    fn.argtypes, fn.restype = [ctypes.c_size_t], ctypes.c_int
    return fn  # type: ignore[no-any-return]


def release_free_memory() -> bool:
    """Return free heap pages to the OS where the C library can (glibc); True if it did."""
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False


def collect_cycles() -> float:
    """A full collection of reference cycles; the seconds it took."""
    t = time.perf_counter()
    gc.collect()
    return time.perf_counter() - t
