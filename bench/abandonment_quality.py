"""Checkout-abandonment model on simulated traffic: progressive ROC AUC of the live scores.

    python bench/abandonment_quality.py                    # seed 1, 120 simulated minutes
    python bench/abandonment_quality.py --seeds 1 2 --minutes 240 --friction 0.04

The worker's own core (detectors, journeys, alerting) runs with the abandonment scorer. Every
session is scored at each of its checkout events with the features it had then, and the model
learns each snapshot only when the session's outcome arrives (converted, or expired with its
checkout open): each score was made before its label was known (progressive, with the real
delay). ROC AUC and log loss here are exact, over every score; the ``quality()`` figures the
worker exports are the same thing over the latest 1,000.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from river import forest, linear_model, optim, preprocessing  # noqa: E402

from models.abandonment import AbandonmentScorer, abandonment_model  # noqa: E402
from models.progressive import Progressive, binary_report  # noqa: E402
from streams import detection  # noqa: E402
from streams.backtest import run_simulated  # noqa: E402
from streams.settings import Settings  # noqa: E402
from streams.simulator import FRICTION_TYPES, SimConfig, Simulator  # noqa: E402

MODELS = {
    "lr": abandonment_model,
    "arf": lambda: forest.ARFClassifier(n_models=10, seed=1),
    "lr-unscaled": lambda: linear_model.LogisticRegression(optimizer=optim.SGD(0.02), l2=1e-4),
    "lr-adam": lambda: preprocessing.StandardScaler() | linear_model.LogisticRegression(
        optimizer=optim.Adam(0.01)),
    "lr-adagrad": lambda: preprocessing.StandardScaler() | linear_model.LogisticRegression(
        optimizer=optim.AdaGrad(0.1)),
}


def run_seed(seed: int, minutes: float, rate: float, friction: float | None, model: str
             ) -> tuple[AbandonmentScorer, int]:
    rates = dict.fromkeys(FRICTION_TYPES, friction) if friction is not None else {}
    sim = Simulator(SimConfig(seed=seed, events_per_second=rate, duration=minutes * 60,
                              friction=rates))
    scorer = AbandonmentScorer(record=True, model=MODELS[model]())
    engine = detection.engine(Settings(abandonment_model=False), extra=[scorer])
    out = run_simulated(sim.messages(), engine)
    return scorer, len(out.outcomes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1])
    ap.add_argument("--minutes", type=float, default=120)
    ap.add_argument("--rate", type=float, default=150, help="simulated events per second")
    ap.add_argument("--friction", type=float, default=None,
                    help="per-session rate of every friction type (default: the simulator's)")
    ap.add_argument("--model", choices=sorted(MODELS), default="lr")
    args = ap.parse_args()
    for seed in args.seeds:
        t0 = time.perf_counter()
        scorer, sessions = run_seed(seed, args.minutes, args.rate, args.friction, args.model)
        run = Progressive(y_true=[a for _, a in scorer.history],
                          scores=[p for p, _ in scorer.history])
        half = len(run.y_true) // 2
        late = Progressive(y_true=run.y_true[half:], scores=run.scores[half:])
        report = binary_report(run)
        print(f"seed {seed}: {sessions:,} sessions, {len(run.y_true):,} checkout scores "
              f"({report['positives'] / max(report['n'], 1):.0%} from sessions that abandoned), "
              f"progressive ROC AUC {report['roc_auc']:.3f}, log loss {report['log_loss']:.3f}; "
              f"second half of the scores (past the cold start) "
              f"{binary_report(late)['roc_auc']:.3f} [{time.perf_counter() - t0:.0f} s]")


if __name__ == "__main__":
    main()
