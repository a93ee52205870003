"""Checkout detectors against the simulator's ground truth: a small run of the quality bench
(``bench/checkout_quality.py``, which runs 3 seeds of 30 minutes and prints the table)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType


def _bench() -> ModuleType:
    path = Path(__file__).parents[2] / "bench" / "checkout_quality.py"
    spec = importlib.util.spec_from_file_location("checkout_quality", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_precision_and_recall_on_simulated_traffic() -> None:
    bench = _bench()
    r = bench.run(seed=11, rate=100.0, duration=900.0)
    res = bench.score(r["truth"], r["signals"])
    for kind, m in res.items():
        assert m["truth"] >= 10, kind  # every type is there, in numbers
        assert m["precision"] >= 0.9 and m["recall"] >= 0.9, (kind, m["precision"], m["recall"])
    # Stalls are flagged by deadline during the silence, not when the customer comes back.
    assert res["step_stall"]["ttd"] < 300
