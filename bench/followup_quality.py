"""Does the follow-ups' holdout find their true effect? Simulated traffic in which followed-up
abandoned shoppers come back to order at a known rate, through the worker's core, per seed.

    python bench/followup_quality.py                        # 4 seeds, 2 h at 100 events/s
    python bench/followup_quality.py --seeds 10 --hours 2 --effect 0.1 --base 0.05

Per seed: ``--hours`` of simulated traffic at ``--rate`` events/s with follow-ups on
(``FRICTIONWATCH_FOLLOWUPS``, control share 0.5, intervals planned for the units a run has),
through the same detectors, engine and holdout as the worker (``streams.detection``, offline
``streams.backtest.run_simulated``), and the experiments agent's ledger. In the simulation a
reachable shopper who left a cart or a checkout comes back within the hour after the follow-up
is due and orders that cart with chance ``--base`` on their own (both arms), plus ``--effect``
because of the follow-up (treatment arm only, by the worker's hash): the ground truth.

The truth per seed, as the lift is defined (per exposed unit): among the treatment arm's
followed-up shoppers whose follow-up fell within the data, the share who came back *because of
it* and whose order the data holds (a return after the end of the data is seen by neither),
and their revenue per unit. The customer base is large (``--customers``), so a unit (a
customer) is one abandoned session, as in the truth. Coverage: the share of seeds whose 95%
always-valid interval (``models.lift``, what the report shows) holds the truth.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streams import detection  # noqa: E402
from streams.backtest import run_simulated  # noqa: E402
from streams.settings import load  # noqa: E402
from streams.sim import SimConfig, Simulator  # noqa: E402
from streams.sim.truth import followup_truth  # noqa: E402


def one(seed: int, args: argparse.Namespace) -> dict[str, float]:
    # Planned as a user would: intervals tightest at about the units a run has (measured:
    # about 3.7 followed-up customers per hour per event/s of traffic).
    planned = max(3.7 * args.rate * args.hours, 200.0)
    settings = load(followups=True, followup_delay=args.delay, holdout_control_share=0.5,
                    lift_horizon=planned)
    exps = detection.experiments(settings)
    fexp = exps[1]
    sim = Simulator(SimConfig(
        seed=seed, events_per_second=args.rate, duration=args.hours * 3600,
        customers=args.customers, followup_base=args.base, followup_effect=args.effect,
        followup_delay=max(args.delay, settings.session_gap), chat_experiment=exps[0],
        followup_experiment=fexp))
    t0 = time.perf_counter()
    out = run_simulated(sim.messages(), detection.engine(settings))
    secs = time.perf_counter() - t0
    led = detection.ledger(settings)
    for rec in out.experiments:
        led.add(rec)
    led.close(math.inf)
    est = led.lift("followup", alpha=settings.lift_alpha, horizon=settings.lift_horizon)
    truth, rpu_truth, _ = followup_truth(sim.outcomes, sim.clock)
    return {"secs": secs, "events": sum(sim.counts.values()), "sent": len(out.followups),
            "control": est.control.units, "treatment": est.treatment.units,
            "p0": est.control.conversion_rate, "p1": est.treatment.conversion_rate,
            "lift": est.conversion.lift, "low": est.conversion.low, "high": est.conversion.high,
            "truth": truth, "rpu": est.revenue_per_unit.lift,
            "rpu_low": est.revenue_per_unit.low, "rpu_high": est.revenue_per_unit.high,
            "rpu_truth": rpu_truth}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument("--hours", type=float, default=2.0, help="simulated hours per seed")
    ap.add_argument("--rate", type=float, default=100.0, help="simulated events per second")
    ap.add_argument("--effect", type=float, default=0.15,
                    help="true extra chance to come back and order after a follow-up")
    ap.add_argument("--base", type=float, default=0.1,
                    help="chance to come back and order on one's own (both arms)")
    ap.add_argument("--delay", type=float, default=1800.0, help="FRICTIONWATCH_FOLLOWUP_DELAY "
                    "(the session gap: so that most returns fall within the data)")
    ap.add_argument("--customers", type=int, default=10**8)
    args = ap.parse_args()
    print(f"{args.seeds} seeds x {args.hours:g} simulated hours at {args.rate:g} events/s; "
          f"true follow-up effect {args.effect:g} over a base return rate {args.base:g}, "
          f"delay {args.delay:g} s, control share 0.5, 95% always-valid intervals")
    print("| seed | units control / treatment | conversion control / treatment | conversion "
          "lift [interval] | truth | inside | revenue/unit lift [interval] | truth | inside "
          "| s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        r = one(seed, args)
        rows.append(r)
        ok = r["low"] <= r["truth"] <= r["high"]
        rev_ok = r["rpu_low"] <= r["rpu_truth"] <= r["rpu_high"]
        has = not math.isnan(r["low"])
        print(f"| {seed} | {r['control']:,} / {r['treatment']:,} | {r['p0']:.3f} / "
              f"{r['p1']:.3f} | {r['lift']:+.4f} [{r['low']:+.4f}, {r['high']:+.4f}] "
              f"| {r['truth']:+.4f} | {'yes' if ok else 'NO' if has else '-'} "
              f"| {r['rpu']:+.2f} [{r['rpu_low']:+.2f}, {r['rpu_high']:+.2f}] "
              f"| {r['rpu_truth']:+.2f} | {'yes' if rev_ok else 'NO' if has else '-'} "
              f"| {r['secs']:.0f} |", flush=True)
    summary(rows)


def summary(rows: list[dict[str, float]]) -> None:
    """Coverage with its exact (Clopper-Pearson) 95% interval over the seeds with an
    interval; the intervals' mean width; the point estimate's mean error against the truth
    (with its standard error over seeds); how many seeds claimed a lift either way."""
    from scipy.stats import binomtest  # a bench-only need (installed with scikit-learn)

    known = [r for r in rows if not math.isnan(r["low"])]
    print(f"seeds: {len(rows)}, with an interval: {len(known)} (the others had fewer than "
          f"10 conversions or non-conversions in an arm: no interval is shown for them)")
    if not known:
        return
    for name, lift, low, high, truth in (
            ("conversion", "lift", "low", "high", "truth"),
            ("revenue per unit", "rpu", "rpu_low", "rpu_high", "rpu_truth")):
        k = sum(r[low] <= r[truth] <= r[high] for r in known)
        ci = binomtest(k, len(known)).proportion_ci(0.95, method="exact")
        width = sum(r[high] - r[low] for r in known) / len(known)
        errors = [r[lift] - r[truth] for r in known]
        bias = sum(errors) / len(errors)
        se = (sum((e - bias) ** 2 for e in errors) / max(len(errors) - 1, 1)
              / len(errors)) ** 0.5
        above = sum(r[low] > 0 for r in known)
        below = sum(r[high] < 0 for r in known)
        print(f"{name}: truth covered in {k}/{len(known)} = {k / len(known):.1%} "
              f"[{ci.low:.1%}, {ci.high:.1%}] (exact 95%); mean interval width {width:.4g}; "
              f"point estimate minus truth {bias:+.4g} (s.e. {se:.2g}); interval above 0 in "
              f"{above}, below 0 in {below}; mean truth "
              f"{sum(r[truth] for r in known) / len(known):+.4g}")


if __name__ == "__main__":
    main()
