"""The worker's full garbage collections run on a timer, not when CPython's counts say: a full
collection pauses both stages for as long as it scans every object (streams.memory)."""

from __future__ import annotations

import gc
import weakref

from streams.memory import collect_cycles
from streams.runtime import GC_THRESHOLDS, tune_gc


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def test_collect_cycles_frees_a_cycle_and_says_how_long_it_took() -> None:
    gc.disable()  # no automatic collection between the cycle's making and the check
    try:
        a, b = Node(), Node()
        a.other, b.other = b, a
        ref = weakref.ref(a)
        del a, b
        assert ref() is not None  # reference counting alone never frees a cycle
        took = collect_cycles()
        assert ref() is None and took >= 0.0
    finally:
        gc.enable()


def test_the_worker_leaves_full_collections_to_the_timer() -> None:
    was = gc.get_threshold()
    try:
        tune_gc()
        young, middle, full = gc.get_threshold()
        assert (young, middle) == GC_THRESHOLDS[:2]
        # A worker runs about 20 middle collections a minute: never enough for a full one.
        assert full >= 10**8
    finally:
        gc.unfreeze()
        gc.set_threshold(*was)
