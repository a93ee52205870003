"""Churn model on simulated customers: progressive ROC AUC of the live risk scores.

    python bench/churn_quality.py                       # seed 1: 2,000 customers, 365 days
    python bench/churn_quality.py --seeds 1 2 --customers 5000 --days 540

The first ``--backfill-days`` (90) stand for what a deployment replays before it goes live
(``frictionwatch replay`` of the support history): the simulated customers start without
history, so until the 90-day windows fill, their features are not what a live system sees.
The model learns from them like from the rest; the live figure scores what came after.

Customers come from ``streams.sim.lifecycle`` (churn driven by web friction and support history,
plus a hidden loyalty term). Each event is folded into the customer's state as the worker's
customer agent does (``apply_customer``), then ``ChurnScorer.update`` scores the customer and
learns whatever predictions the observation window (30 days) has labelled: each score is
made before its label exists (progressive, with the real delay). Beside it, scikit-learn
batch models trained on the first 70% of the same labelled snapshots (in time) and scored on
the rest.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from detectors.customer import CustomerState, apply_customer  # noqa: E402
from models.baseline import Recording, time_split_baselines  # noqa: E402
from models.churn import ChurnScorer, churn_model  # noqa: E402
from models.progressive import Progressive, binary_report  # noqa: E402
from streams.sim.lifecycle import DAY, EPOCH, LifecycleConfig, simulate_customers  # noqa: E402


def run(config: LifecycleConfig) -> tuple[ChurnScorer, Recording, dict[str, CustomerState],
                                         list[tuple[str, float]]]:
    model = Recording(churn_model())
    scorer = ChurnScorer(model=model, record=True)
    states: dict[str, CustomerState] = {}
    alerts = []
    for event in simulate_customers(config):
        state = states[event.customer_id] = apply_customer(states.get(event.customer_id),
                                                           [event])
        if scorer.update(state) is not None:
            alerts.append((state.customer_id, state.last_time))
    return scorer, model, states, alerts


def alert_precision(alerts: list[tuple[str, float]], states: dict[str, CustomerState],
                    until: float) -> tuple[float, int]:
    """Share of the alerts (old enough to tell) whose customer churned within 30 days."""
    judged = [(c, t) for c, t in alerts if t + 30 * DAY <= until]
    hits = 0
    for c, t in judged:
        churned = states[c].churned_at
        hits += churned is not None and churned - t <= 30 * DAY
    return hits / max(len(judged), 1), len(judged)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1])
    ap.add_argument("--customers", type=int, default=2000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--backfill-days", type=int, default=90,
                    help="the first days stand for a replay of history before going live: "
                         "the model learns from them, the live figure leaves them out")
    args = ap.parse_args()
    for seed in args.seeds:
        t0 = time.perf_counter()
        scorer, model, states, alerts = run(LifecycleConfig(customers=args.customers,
                                                            days=args.days, seed=seed))
        precision, judged = alert_precision(alerts, states, EPOCH + args.days * DAY)
        prog = Progressive(y_true=[c for _, c, _ in scorer.history],
                           scores=[p for p, _, _ in scorer.history])
        live_from = EPOCH + args.backfill_days * DAY
        live = [(p, c) for p, c, t in scorer.history if t >= live_from]
        live_report = binary_report(Progressive(y_true=[c for _, c in live],
                                                scores=[p for p, _ in live]))
        report = binary_report(prog)
        batch = time_split_baselines(model.examples)
        print(f"seed {seed}: {len(states):,} customers, {len(prog.y_true):,} labelled scores "
              f"({report['positives'] / max(report['n'], 1):.1%} churned within 30 days), "
              f"{len(alerts):,} churn alerts, {precision:.0%} of {judged:,} followed by a churn "
              f"within 30 days [{time.perf_counter() - t0:.0f} s]")
        print(f"  progressive ROC AUC, live (scores from day {args.backfill_days} on, "
              f"{len(live):,}): {live_report['roc_auc']:.3f}, log loss "
              f"{live_report['log_loss']:.3f}; all scores, backfill included: "
              f"{report['roc_auc']:.3f}, log loss {report['log_loss']:.3f}")
        print("  batch, trained on the first 70% in time, scored on the rest: "
              + ", ".join(f"{k} {v:.3f}" for k, v in batch.items()))


if __name__ == "__main__":
    main()
