"""Data-driven attribution candidates against simulated journeys with known channel effects:
which one ranks the channels in the true order? The evidence behind the choice of
``models.attribution``'s data-driven model (``counterfactual``: touch effects).

    python bench/attribution_candidates.py                    # seeds 0-9, 1k to 100k journeys
    python bench/attribution_candidates.py --seeds 0 1 --sizes 20000 --scenario even

Candidates (the ones not shipped are written here in a few lines, for this comparison only):

- ``markov1``: the shipped first-order Markov removal effect (``Attribution``'s ``markov``);
- ``markov2``, ``markov3``: the same over chains whose states are the last 2 or 3 channels
  (the ``order`` of the R package ``ChannelAttribution``); removing a channel sends every
  state that holds it to ``null``;
- ``logit_counts``, ``logit_presence``: journey-level counterfactuals with a logistic
  regression (Shao & Li, KDD 2011) of conversion on touch counts, or on which channels were
  touched; a channel's credit is the predicted conversions lost without its touches;
- ``touch_effects``: the shipped data-driven model (``counterfactual``): the same
  counterfactual with every touch an independent chance to convert;
- ``shapley``: Shapley values over channel sets (the idea behind Google's data-driven
  attribution; Zhao et al., "Shapley value methods for attribution modeling in online
  advertising", 2018): the value of a set is the conversion rate of journeys that touched
  exactly that set; each set's conversions are shared by its channels' Shapley values.

Journeys and scenarios as in ``bench/attribution_quality.py``. For each candidate: seeds with
exactly the true order, the mean Kendall tau, and the credit per channel over the truth (mean
over seeds; a model whose credits are in the truth's proportions has all ratios equal, so the
ratios show bias apart from noise). Nothing here is timed.
"""

from __future__ import annotations

import itertools
import math
import statistics
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from scipy.stats import kendalltau  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

from models.attribution import Attribution, Journey  # noqa: E402
from streams.sim.journeys import FIRST_TOUCH, JourneyConfig, simulate_journeys  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
import attribution_quality  # noqa: E402

SCENARIOS = attribution_quality.SCENARIOS
CHANNELS = sorted(FIRST_TOUCH)


def markov(journeys: Sequence[Journey], order: int) -> dict[str, float]:
    """Removal effects (P - P_c) of a Markov chain whose states are the last ``order``
    channels."""
    counts: dict[tuple[str, ...] | str, dict[tuple[str, ...] | str, int]] = {}
    for j in journeys:
        path = ["(start)"] * order + [c for c, _ in j.touches]
        states: list[tuple[str, ...] | str] = [tuple(path[i:i + order])
                                               for i in range(len(path) - order + 1)]
        states.append("(conversion)" if j.converted else "(null)")
        for a, b in itertools.pairwise(states):
            row = counts.setdefault(a, {})
            row[b] = row.get(b, 0) + 1

    def reach(removed: str | None) -> float:
        kept = [s for s in counts if removed is None or removed not in s]
        index = {s: i for i, s in enumerate(kept)}
        q, r = np.zeros((len(kept), len(kept))), np.zeros(len(kept))
        for s in kept:
            total = sum(counts[s].values())
            for to, k in counts[s].items():
                if to == "(conversion)":
                    r[index[s]] += k / total
                elif to in index:
                    q[index[s], index[to]] += k / total
        x = np.linalg.lstsq(np.eye(len(kept)) - q, r, rcond=None)[0]
        return float(x[index[("(start)",) * order]])

    base = reach(None)
    return {c: base - reach(c) for c in CHANNELS}


def logistic(journeys: Sequence[Journey], presence: bool) -> dict[str, float]:
    col = {c: i for i, c in enumerate(CHANNELS)}
    x = np.zeros((len(journeys), len(CHANNELS)))
    for i, j in enumerate(journeys):
        for c, _ in j.touches:
            x[i, col[c]] += 1
    if presence:
        x = (x > 0).astype(float)
    y = np.array([j.converted for j in journeys], dtype=float)
    model = LogisticRegression(C=1e4, max_iter=2000).fit(x, y)
    p = model.predict_proba(x)[:, 1]
    out = {}
    for c, i in col.items():
        without = x.copy()
        without[:, i] = 0.0
        out[c] = float((p - model.predict_proba(without)[:, 1]).sum())
    return out


def shapley(journeys: Sequence[Journey]) -> dict[str, float]:
    seen: Counter[frozenset[str]] = Counter()
    conv: Counter[frozenset[str]] = Counter()
    for j in journeys:
        s = frozenset(c for c, _ in j.touches)
        seen[s] += 1
        conv[s] += j.converted
    rate = {s: conv[s] / seen[s] for s in seen}
    out = dict.fromkeys(CHANNELS, 0.0)
    for whole in seen:
        if not conv[whole]:
            continue
        t = len(whole)
        phi = {}
        for c in whole:
            others = sorted(whole - {c})
            phi[c] = sum(
                math.factorial(r) * math.factorial(t - r - 1) / math.factorial(t)
                * (rate.get(frozenset(s) | {c}, 0.0) - rate.get(frozenset(s), 0.0))
                for r in range(t) for s in itertools.combinations(others, r))
        total = sum(phi.values())
        if total > 0:
            for c in whole:
                out[c] += conv[whole] * phi[c] / total
    return out


def _shipped(model: str) -> Callable[[Sequence[Journey]], dict[str, float]]:
    def credit(journeys: Sequence[Journey]) -> dict[str, float]:
        a = Attribution()
        a.learn_many(journeys)
        return {c: v.conversions for c, v in a.credits()[model].items()}
    return credit


CANDIDATES: dict[str, Callable[[Sequence[Journey]], dict[str, float]]] = {
    "markov1": _shipped("markov"),
    "markov2": lambda js: markov(js, 2),
    "markov3": lambda js: markov(js, 3),
    "logit_counts": lambda js: logistic(js, presence=False),
    "logit_presence": lambda js: logistic(js, presence=True),
    "touch_effects": _shipped("counterfactual"),
    "shapley": shapley,
}


def evaluate(scenario: str, sizes: list[int], seeds: list[int]) -> None:
    print(f"\nscenario {scenario}")
    for n in sizes:
        exact: Counter[str] = Counter()
        tau: dict[str, list[float]] = {m: [] for m in CANDIDATES}
        ratio: dict[str, dict[str, list[float]]] = {m: {c: [] for c in CHANNELS}
                                                    for m in CANDIDATES}
        truth: list[str] = []
        for seed in seeds:
            sim = simulate_journeys(JourneyConfig(journeys=n, seed=seed, **SCENARIOS[scenario]))
            truth = sim.true_order()
            for m, fit in CANDIDATES.items():
                credit = fit(sim.journeys)
                order = sorted(credit, key=lambda c, cr=credit: (-cr[c], c))  # type: ignore[misc]
                exact[m] += order == truth
                tau[m].append(float(kendalltau(range(len(truth)),
                                               [order.index(c) for c in truth])[0]))
                total = sum(credit.values()) or 1.0
                for c in CHANNELS:  # shares over true shares: 1.0 everywhere is unbiased
                    ratio[m][c].append(credit[c] / total * sum(sim.incremental.values())
                                       / sim.incremental[c])
        print(f"  {n:,} journeys x {len(seeds)} seeds; credit / truth per channel in the "
              f"true order of the last seed ({' > '.join(truth)})")
        print(f"    {'candidate':<15} {'exact order':>11} {'Kendall tau':>12}  credit / truth")
        for m in CANDIDATES:
            ratios = " ".join(f"{statistics.mean(ratio[m][c]):.2f}" for c in truth)
            print(f"    {m:<15} {exact[m]:>5}/{len(seeds):<5} {statistics.mean(tau[m]):>12.2f}"
                  f"  {ratios}")


if __name__ == "__main__":
    attribution_quality.main(evaluate, __doc__)
