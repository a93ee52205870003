"""bench/session_memory.py on a few hundred sessions: it builds live sessions the worker's way,
and what it counts as a session's memory is what dropping the sessions frees."""

from __future__ import annotations

import tracemalloc
from types import ModuleType

from benchload import load_bench

from streams.settings import Settings


def _bench() -> ModuleType:
    return load_bench("session_memory")


def test_engine_bytes_counts_what_the_sessions_hold() -> None:
    bench = _bench()
    tracemalloc.start()
    try:
        eng, events = bench.build(Settings(), n_sessions=300, rate=200, seed=1)
        n = len(eng.sessions)
        assert n == 300 and events > n
        assert any(s.detector_state for s in eng.sessions.values())  # detectors ran
        freed, _, _ = bench.engine_bytes(eng)
    finally:
        tracemalloc.stop()
    assert eng.sessions == {} and eng._expiry == []  # noqa: SLF001
    # A state is a struct with a few dicts and strings: hundreds of bytes at least, and far
    # below the encoded-JSON-times-ten a leak or a shared-object miscount would show.
    assert 200 * n < freed < 20_000 * n
