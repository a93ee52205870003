"""Offline backtest throughput: events/s through the detection core on one core.

    python bench/backtest_throughput.py            # 20 simulated minutes at 300 events/s

Simulates traffic to a JSONL file, backtests it once in the format users send (Segment, GA4
and help-desk payloads: adapters included) while saving the canonical events, then backtests
the saved canonical file (the detection core alone) ``--repeat`` times, each with a fresh
engine. Prints the rates; for the canonical file the best and the median run, since on a
shared machine other tenants only ever slow a run down (as ``timeit`` reports its best).
The engine is the worker's (``streams.detection``: every detector, the journeys, alerting).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, BinaryIO

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prometheus_client import CollectorRegistry  # noqa: E402

from detectors.customer import CustomerState, apply_customer, session_summary  # noqa: E402
from models.segments import Segmenter  # noqa: E402
from streams import detection  # noqa: E402
from streams.backtest import BacktestResult, run  # noqa: E402
from streams.metrics import Metrics  # noqa: E402
from streams.segments import CustomerSegments, SegmentKpis  # noqa: E402
from streams.settings import Settings  # noqa: E402
from streams.sim import SimConfig, Simulator  # noqa: E402


def backtest(f: BinaryIO, models: bool = False, **kwargs: Any) -> BacktestResult:
    """What ``frictionwatch backtest`` runs: the worker's detection core and its journey
    incidents; with ``models``, the online abandonment scorer too."""
    settings = Settings(abandonment_model=models)
    eng = detection.engine(settings)
    return run(f, eng, incidents=detection.incidents(settings, eng), **kwargs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=20)
    ap.add_argument("--rate", type=float, default=300)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        raw, canonical = Path(tmp) / "traffic.jsonl", Path(tmp) / "canonical.jsonl"
        sim = Simulator(SimConfig(seed=args.seed, events_per_second=args.rate,
                                  duration=args.minutes * 60))
        with open(raw, "w") as f:
            for m in sim.messages():
                f.write(json.dumps(m.envelope(), separators=(",", ":")) + "\n")
        with open(raw, "rb") as f, open(canonical, "wb") as c:
            a = backtest(f, canonical_out=c)
        rates = []
        for _ in range(max(1, args.repeat)):
            with open(canonical, "rb") as f:
                b = backtest(f)
            rates.append(b.events_per_second)
        rates.sort()
        with open(canonical, "rb") as f:
            m = backtest(f, models=True)
        same = a.outputs.signals == b.outputs.signals and a.outputs.alerts == b.outputs.alerts
        print(f"{a.events:,} events, {len(a.outputs.signals):,} signals, "
              f"{len(a.outputs.alerts):,} alerts, {len(a.outputs.outcomes):,} sessions "
              f"({'the same' if same else 'NOT the same'} from both files)")
        print(f"backtest, raw formats (adapters + core): {a.events_per_second:12,.0f} events/s")
        print(f"backtest, canonical file (core only):    {rates[-1]:12,.0f} events/s best, "
              f"{rates[len(rates) // 2]:,.0f} median of {len(rates)}")
        print(f"the same with the abandonment model:     {m.events_per_second:12,.0f} events/s")
        # Customer segments: what they add to the worker's customers agent, which folds each
        # known customer's session summary into the customer's state anyway. Timed here over
        # the run's outcomes in the order they ended: the fold alone, then the fold with the
        # segments' steps (streams.segments.CustomerSegments); best of the repeats.
        summaries = [x for x in map(session_summary, b.outputs.outcomes) if x is not None]
        plain, segmented = [], []
        for _ in range(max(1, args.repeat)):
            plain.append(_fold(summaries, None))
            segmented.append(_fold(summaries, CustomerSegments(
                Segmenter(), SegmentKpis(Metrics(CollectorRegistry()), 4))))
        added = min(segmented) - min(plain)
        print(f"customer segments: +{added:.3f} s over {len(summaries):,} known customers' "
              f"session ends ({added / max(len(summaries), 1) * 1e6:,.0f} us each; "
              f"{added / max(b.events, 1) * 1e6:.2f} us per event of the run; the fold "
              f"alone {min(plain) / max(len(summaries), 1) * 1e6:,.0f} us each)")


def _fold(summaries: list[Any], segments: CustomerSegments | None) -> float:
    """Seconds to fold ``summaries`` into their customers' states, as the customers agent
    does, with ``segments``' steps around each fold if given."""
    states: dict[str, CustomerState] = {}
    t0 = time.perf_counter()
    for e in summaries:
        state = states.get(e.customer_id)
        ended = segments.before(state, [e]) if segments is not None else []
        states[e.customer_id] = state = apply_customer(state, [e])
        if segments is not None:
            segments.after(state, ended)
    return time.perf_counter() - t0

if __name__ == "__main__":
    main()
