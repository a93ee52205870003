"""bench/fuzz.py's offline mode on a few thousand hostile inputs: nothing escapes the
worker's error handling and every input is answered for (issue 13, item 3)."""

from __future__ import annotations

import io
from types import ModuleType

from benchload import load_bench


def _bench() -> ModuleType:
    return load_bench("fuzz")


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
