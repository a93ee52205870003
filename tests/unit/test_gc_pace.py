"""The worker's older garbage-collector generations are collected on a timer, not when
CPython's counts say: such a collection pauses both stages for as long as it scans every
object it holds (streams.memory, streams.runtime), and each pause is measured."""

from __future__ import annotations

import gc
import weakref

from prometheus_client import CollectorRegistry

from streams.memory import collect_cycles
from streams.metrics import Metrics, watch_gc
from streams.runtime import GC_THRESHOLDS, tune_gc, watch_gc_pauses


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


def test_what_outlives_young_collections_is_never_collected_by_count() -> None:
    # Live session state is most of what survives a young collection: CPython's middle
    # collection (every 20 young ones) scanned all of it to free nothing, a pause of 0.3-0.4 s.
    was = gc.get_threshold()
    generations: list[int] = []
    tune_gc()
    on_gc = watch_gc_pauses(lambda generation, seconds: generations.append(generation))
    try:
        young = GC_THRESHOLDS[0]
        kept = [[] for _ in range(young * 25)]  # type: ignore[var-annotated]
        assert generations.count(0) > 20
        assert set(generations) == {0}
        del kept
    finally:
        gc.callbacks.remove(on_gc)
        gc.unfreeze()
        gc.set_threshold(*was)


def test_each_collection_is_a_pause_observed_by_process_and_generation() -> None:
    metrics = Metrics(CollectorRegistry())
    on_gc = watch_gc(metrics, "ingest")
    try:
        gc.collect(0)
        gc.collect(2)
    finally:
        gc.callbacks.remove(on_gc)

    def count(generation: str) -> float | None:
        return metrics.registry.get_sample_value(
            "frictionwatch_gc_pause_seconds_count",
            {"process": "ingest", "generation": generation})

    assert count("0") is not None and count("0") >= 1  # type: ignore[operator]
    assert count("2") is not None and count("2") >= 1  # type: ignore[operator]
    assert count("1") in (None, 0.0)
