"""Attribution models against simulated journeys with known channel effects: does each model
rank the channels in the true order?

    python bench/attribution_quality.py                        # seeds 0-9, 1k to 100k journeys
    python bench/attribution_quality.py --seeds 0 1 --sizes 2000 20000 --scenario even

Journeys come from ``streams.sim.journeys``: each touch raises the chance of an order by its
channel's known effect, the order happens in the last visit, and the truth for a channel is
its expected incremental conversions (what would be lost without its touches). Two scenarios:

- ``default``: journeys start on discovery channels (search, social) and come back through
  direct and email, as shoppers do;
- ``even``: every channel equally likely in every visit, so volume and position say nothing
  and only the per-touch effect separates the channels.

For each model and journey count: how many seeds gave exactly the true order, the mean Kendall
tau and Spearman rho between the model's ranking and the truth, and where the model puts
``direct`` (1 = top) against its true place. Nothing here is timed. ``counterfactual`` is the
data-driven model (touch effects); other data-driven candidates tried (Markov chains of order
2 and 3, logistic regressions, Shapley values) are in ``bench/attribution_candidates.py``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scipy.stats import kendalltau, spearmanr  # noqa: E402

from models.attribution import MODELS, Attribution, rank  # noqa: E402
from streams.sim.journeys import FIRST_TOUCH, JourneyConfig, simulate_journeys  # noqa: E402

SCENARIOS = {
    "default": {},
    "even": {"first": dict.fromkeys(FIRST_TOUCH, 1.0),
             "returning": dict.fromkeys(FIRST_TOUCH, 1.0)},
}


def evaluate(scenario: str, sizes: list[int], seeds: list[int]) -> None:
    print(f"\nscenario {scenario}")
    for n in sizes:
        stats: dict[str, dict[str, list[float]]] = {
            m: {"exact": [], "tau": [], "rho": [], "direct": []} for m in MODELS}
        truths = []
        for seed in seeds:
            sim = simulate_journeys(JourneyConfig(journeys=n, seed=seed, **SCENARIOS[scenario]))
            truth = sim.true_order()
            truths.append(truth)
            att = Attribution()
            att.learn_many(sim.journeys)
            credits = att.credits()
            for m in MODELS:
                order = rank(credits[m])
                pos = [order.index(ch) for ch in truth]
                s = stats[m]
                s["exact"].append(float(order == truth))
                s["tau"].append(float(kendalltau(range(len(truth)), pos)[0]))
                s["rho"].append(float(spearmanr(range(len(truth)), pos)[0]))
                s["direct"].append(order.index("direct") + 1.0)
        true_direct = statistics.mean(t.index("direct") + 1 for t in truths)
        same = all(t == truths[0] for t in truths)
        print(f"  {n:,} journeys x {len(seeds)} seeds; true order "
              f"{' > '.join(truths[0]) if same else '(varies by seed)'}; "
              f"direct truly #{true_direct:g}")
        print(f"    {'model':<14} {'exact order':>11} {'Kendall tau':>12} {'Spearman':>9} "
              f"{'direct at':>10}")
        for m in MODELS:
            s = stats[m]
            print(f"    {m:<14} {int(sum(s['exact'])):>5}/{len(seeds):<5} "
                  f"{statistics.mean(s['tau']):>12.2f} {statistics.mean(s['rho']):>9.2f} "
                  f"{statistics.mean(s['direct']):>10.1f}")


def main(evaluate: Callable[[str, list[int], list[int]], None] = evaluate,
         doc: str = __doc__) -> None:
    """Parse the options shared with ``attribution_candidates`` and run ``evaluate``."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 20000, 100000])
    p.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all")
    a = p.parse_args()
    for scenario in SCENARIOS if a.scenario == "all" else [a.scenario]:
        evaluate(scenario, a.sizes, a.seeds)


if __name__ == "__main__":
    main()
