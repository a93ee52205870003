"""Offline backtest throughput: events/s through the detection core on one core.

    python bench/backtest_throughput.py            # 20 simulated minutes at 300 events/s

Simulates traffic to a JSONL file, backtests it once in the format users send (Segment, GA4
and help-desk payloads: adapters included) while saving the canonical events, then backtests
the saved canonical file (the detection core alone). Prints both rates.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from detectors.engine import Engine  # noqa: E402
from streams import detection  # noqa: E402
from streams.backtest import run  # noqa: E402
from streams.settings import Settings  # noqa: E402
from streams.simulator import SimConfig, Simulator  # noqa: E402


def engine() -> Engine:
    return detection.engine(Settings())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=20)
    ap.add_argument("--rate", type=float, default=300)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        raw, canonical = Path(tmp) / "traffic.jsonl", Path(tmp) / "canonical.jsonl"
        sim = Simulator(SimConfig(seed=args.seed, events_per_second=args.rate,
                                  duration=args.minutes * 60))
        with open(raw, "w") as f:
            for m in sim.messages():
                f.write(json.dumps(m.envelope(), separators=(",", ":")) + "\n")
        with open(raw, "rb") as f, open(canonical, "wb") as c:
            a = run(f, engine(), canonical_out=c)
        with open(canonical, "rb") as f:
            b = run(f, engine())
        print(f"{a.events:,} events, {len(b.outputs.signals):,} signals, "
              f"{len(b.outputs.alerts):,} alerts, {len(b.outputs.outcomes):,} sessions")
        print(f"backtest, raw formats (adapters + core): {a.events_per_second:12,.0f} events/s")
        print(f"backtest, canonical file (core only):    {b.events_per_second:12,.0f} events/s")


if __name__ == "__main__":
    main()
