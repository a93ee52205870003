"""bench/session_memory.py on a few hundred sessions: it builds live sessions the worker's way,
and what it counts as a session's memory is what dropping the sessions frees."""

from __future__ import annotations

import importlib.util
import sys
import tracemalloc
from pathlib import Path
from types import ModuleType

from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("session_memory_bench",
                                                  ROOT / "bench" / "session_memory.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


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
