"""Customer segments on simulated customers: each segment's size, description and churn rate.

    python bench/segments.py                      # seed 1: 2,000 customers, 180 days, k=4
    python bench/segments.py --k 5 --days 365

Customers come from ``streams.sim.lifecycle``; every event is folded into the customer's state
(``apply_customer``) and the segmenter learns the customer's features then
(``models.segments``). At the end each customer still subscribed or churned is assigned its
segment; the churn share per segment shows whether the segments mean something.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from detectors.customer import CustomerState, apply_customer  # noqa: E402
from models.segments import Segmenter, segment_features  # noqa: E402
from streams.sim.lifecycle import LifecycleConfig, simulate_customers  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--customers", type=int, default=2000)
    ap.add_argument("--days", type=int, default=180)
    ap.add_argument("--k", type=int, default=4)
    args = ap.parse_args()
    t0 = time.perf_counter()
    seg = Segmenter(k=args.k, seed=args.seed)
    states: dict[str, CustomerState] = {}
    for event in simulate_customers(LifecycleConfig(customers=args.customers, days=args.days,
                                                    seed=args.seed)):
        state = states[event.customer_id] = apply_customer(states.get(event.customer_id),
                                                           [event])
        seg.learn_one(segment_features(state, state.last_time))
    end = max(s.last_time for s in states.values())
    sizes: Counter[str] = Counter()
    churned: Counter[str] = Counter()
    for state in states.values():
        label = seg.predict_one(segment_features(state, end))
        sizes[label] += 1
        churned[label] += state.churned_at is not None
    print(f"seed {args.seed}: {len(states):,} customers, {args.days} days, k={args.k} "
          f"[{time.perf_counter() - t0:.0f} s]")
    for label, words in seg.segments().items():
        n = sizes[label]
        print(f"  {label}: {n:5,} customers, {churned[label] / max(n, 1):6.1%} churned: {words}")


if __name__ == "__main__":
    main()
