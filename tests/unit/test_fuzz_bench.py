"""bench/fuzz.py's offline mode on a few thousand hostile inputs: nothing escapes the
worker's error handling and every input is answered for (issue 13, item 3)."""

from __future__ import annotations

import importlib.util
import io
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fuzz_bench", ROOT / "bench" / "fuzz.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


def test_offline_fuzz_nothing_escapes_nothing_unaccounted() -> None:
    bench = _bench()
    # One process, the reproducers first, then 3,000 generated inputs.
    fig = bench.run_offline(3000, seed=7, jobs=1)
    report = io.StringIO()
    bench.print_offline(fig, report)
    assert fig.inputs == 3000
    assert fig.accepted > 0 and sum(fig.dead.values()) > 0  # both paths were exercised
    assert dict(fig.escaped) == {}, report.getvalue()
    assert fig.unaccounted == 0, report.getvalue()
