"""Detection quality on simulated traffic: precision, recall, F1 and time-to-detect per
friction type, for several seeds, through the same core the worker runs.

    python bench/detection_quality.py                 # seeds 1 2 3, 30 simulated minutes each
    python bench/detection_quality.py --seeds 1 2 3 4 5 --minutes 60

Every friction type is injected (per session, at raised rates so each type has a few hundred
cases) and every incident kind is scheduled once. A signal counts as correct when the same
session has injected friction of the same type and the signal falls within [start - 1 s,
end + 5 s] of it. Time to detect is from the friction's onset, the moment it exists by its
definition (the 2nd failure of a loop, the 3rd rage click, a stall passing 3x the step's
typical time; see ``streams.sim.FrictionTruth.onset``); the time from its first
evidence is printed beside it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402

from detectors.engine import Outputs  # noqa: E402
from detectors.quality import Quality, evaluate, split_truth  # noqa: E402
from streams import detection  # noqa: E402
from streams.backtest import run_simulated  # noqa: E402
from streams.commands.backtest import quality_table  # noqa: E402
from streams.settings import Settings  # noqa: E402
from streams.sim import FRICTION_TYPES, Incident, SimConfig, Simulator  # noqa: E402

INCIDENTS = ("payment_outage@5m+2m", "broken_field@10m+3m", "slow_step@15m+2m",
             "api_outage@20m+2m", "promo_broken@24m+3m")


def run_seed(seed: int, minutes: float, rate: float) -> tuple[dict[str, Quality], Outputs]:
    sim = Simulator(SimConfig(
        seed=seed, events_per_second=rate, duration=minutes * 60,
        friction=dict.fromkeys(FRICTION_TYPES, 0.08),
        incidents=tuple(Incident.parse(s) for s in INCIDENTS),
    ))
    out = run_simulated(sim.messages(), detection.engine(Settings(abandonment_model=False)))
    truth, ignore = split_truth(sim.truth)
    return evaluate(out.signals, truth, ignore=ignore), out


def merge(rows: list[dict[str, Quality]]) -> dict[str, Quality]:
    total: dict[str, Quality] = {}
    for r in rows:
        for k, q in r.items():
            t = total.setdefault(k, Quality())
            t.signals += q.signals
            t.matched_signals += q.matched_signals
            t.truths += q.truths
            t.detected += q.detected
            t.ttd += q.ttd
            t.ttd_start += q.ttd_start
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--rate", type=float, default=150, help="simulated events per second")
    args = ap.parse_args()
    console = Console()
    rows = []
    for seed in args.seeds:
        q, out = run_seed(seed, args.minutes, args.rate)
        rows.append(q)
        console.print(quality_table(q, title=f"seed {seed}: {len(out.signals):,} signals, "
                                             f"{len(out.alerts):,} alerts, "
                                             f"{len(out.chats):,} chat triggers"))
    total = merge(rows)
    console.print(quality_table(total, title=f"all seeds {args.seeds}"))
    worst = [k for k, q in total.items() if q.precision < 0.9 or q.recall < 0.9
             or (q.median_ttd is not None and abs(q.median_ttd) > 5)]
    console.print("targets (precision and recall >= 0.9, median TTD <= 5 s): "
                  + ("met for every type" if not worst else f"NOT met for {', '.join(worst)}"))


if __name__ == "__main__":
    main()
