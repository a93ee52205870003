"""Checkout detectors against the simulator's ground truth: a small run of the quality bench
(``bench/checkout_quality.py``, which runs 3 seeds of 30 minutes and prints the table)."""

from __future__ import annotations

from types import ModuleType

from benchload import load_bench


def _bench() -> ModuleType:
    return load_bench("checkout_quality")


def test_precision_and_recall_on_simulated_traffic() -> None:
    bench = _bench()
    r = bench.run(seed=11, rate=100.0, duration=900.0)
    res = bench.score(r["truth"], r["signals"], r["presence"])
    for kind, m in res.items():
        assert m["truth"] >= 10, kind  # every type is there, in numbers
        assert m["precision"] >= 0.9 and m["recall"] >= 0.9, (kind, m["precision"], m["recall"])
    # Stalls are flagged by deadline during the silence, not when the customer comes back.
    assert res["step_stall"]["ttd"] < 300
    # Where presence is not sent, a stall is silence only: shoppers who left on sight of a
    # step make it too, so it is flagged but scores worse (and does not alert).
    silent = bench.score(r["truth"], r["signals"])["step_stall"]
    assert silent["precision"] < res["step_stall"]["precision"]
