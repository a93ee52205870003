"""Are the lift intervals honest? Coverage under continuous peeking, false positives when
chat offers do nothing, and power for a +2 percentage-point lift at the simulated traffic.

    python bench/experiment_quality.py                      # 800 experiments of 7 days
    python bench/experiment_quality.py --experiments 1000 --days 14 --e2e-minutes 0

Three parts:

1. **Calibration, through the worker's core.** ``--calibrate-minutes`` of simulated traffic at
   ``--rate`` events/s, with no chat effect, through the same detectors, alert policy and
   holdout as the worker (``streams.detection``) and the ledger of the experiments agent:
   how many eligible units (customers, or anonymous sessions, offered chat or held out) a
   shop with this traffic has per hour, how many of them order, and what their orders bring.
   This run is also an A/A test: its true lift is zero.
2. **Experiments with a known true lift.** ``--experiments`` experiments of ``--days`` days of
   eligible units at that rate, units assigned to the arms with the settings' control share,
   the control arm converting at the calibrated rate and the treatment arm at it plus the true
   lift (0, +2, +5 and -2 percentage points; half of them 0), order values drawn from the
   calibration's. Someone looks after *every* unit (continuous peeking, the worst case): an
   interval *misses* if at any look it excludes the true lift; a *false positive* is an
   interval that at any look excludes 0 when the true lift is 0; a +2 pp lift is *detected*
   when at some look the interval lies above 0. The intervals are ``models.lift.path``,
   which ``models.lift.estimate`` (what the worker and the report show) equals at every look
   (checked at the last).
3. **End to end.** Per ``--chat-effect`` (the chance that a shopper about to leave after a
   checkout blocker stays because of the offer), ``--e2e-minutes`` of simulated traffic,
   control share 0.5, through the core; the estimated conversion lift against the
   simulator's truth (rescued and then converted, per eligible treated shopper).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.experiments import Ledger  # noqa: E402
from models.lift import ArmStats, estimate, path  # noqa: E402
from streams import detection  # noqa: E402
from streams.backtest import run_simulated  # noqa: E402
from streams.settings import Settings, load  # noqa: E402
from streams.sim import SimConfig, Simulator  # noqa: E402

#: True lifts (absolute, in conversion rate) and their share of the experiments.
LIFTS = ((0.0, 0.5), (0.02, 0.25), (0.05, 0.125), (-0.02, 0.125))


@dataclass
class Calibration:
    units_per_hour: float
    conversion: float
    order_values: np.ndarray
    ledger: Ledger
    seconds: float
    events: int


def core_run(settings: Settings, seed: int, rate: float, minutes: float, chat_effect: float
             ) -> tuple[Ledger, Simulator, float]:
    """Simulated traffic through the worker's core and the experiments agent's ledger."""
    engine = detection.engine(settings)
    sim = Simulator(SimConfig(seed=seed, events_per_second=rate, duration=minutes * 60,
                              chat_effect=chat_effect,
                              chat_experiment=detection.experiments(settings)[0]))
    t0 = time.perf_counter()
    out = run_simulated(sim.messages(), engine)
    ledger = detection.ledger(settings)
    for rec in out.experiments:
        ledger.add(rec)
    ledger.close(math.inf)
    return ledger, sim, time.perf_counter() - t0


def calibrate(settings: Settings, seed: int, rate: float, minutes: float) -> Calibration:
    ledger, sim, secs = core_run(settings, seed, rate, minutes, 0.0)
    arms = ledger.totals["chat_offer"]
    units = arms["control"].units + arms["treatment"].units
    conversions = arms["control"].conversions + arms["treatment"].conversions
    # Order values of eligible units that converted (the simulator's, as the core saw them).
    values = [o.revenue for o in sim.outcomes if o.chat_arm and o.converted and o.revenue > 0]
    return Calibration(units / (minutes / 60), conversions / max(units, 1),
                       np.array(values or [50.0]), ledger, secs, sum(sim.counts.values()))


def experiment(rng: np.random.Generator, n: int, p0: float, lift: float, share: float,
               values: np.ndarray, settings: Settings, check: bool) -> dict[str, float]:
    treated = rng.random(n) >= share
    converted = rng.random(n) < np.where(treated, p0 + lift, p0)
    revenue = np.where(converted, rng.choice(values, n), 0.0)
    kw = {"alpha": settings.lift_alpha, "horizon": settings.lift_horizon}
    conv = path(treated, converted, **kw)
    rev = path(treated, revenue, converted, **kw)
    true_rpu = lift * float(values.mean())
    known = ~np.isnan(conv.low)
    miss = bool(np.any(known & ((conv.low > lift) | (conv.high < lift))))
    rev_miss = bool(np.any(known & ((rev.low > true_rpu) | (rev.high < true_rpu))))
    above = np.flatnonzero(known & (conv.low > 0))
    below = np.flatnonzero(known & (conv.high < 0))
    if check:  # the worker's estimate at the last look is the path's last point
        arms = [ArmStats(), ArmStats()]
        for arm, mask in ((0, ~treated), (1, treated)):
            arms[arm] = ArmStats(units=int(mask.sum()), conversions=int(converted[mask].sum()),
                                 revenue=float(revenue[mask].sum()),
                                 revenue_sq=float((revenue[mask] ** 2).sum()))
        e = estimate(arms[0], arms[1], **kw)
        assert math.isclose(e.conversion.low, conv.low[-1], rel_tol=1e-6, abs_tol=1e-9)
        assert math.isclose(e.revenue_per_unit.high, rev.high[-1], rel_tol=1e-6, abs_tol=1e-6)
    return {"miss": miss, "rev_miss": rev_miss, "above": above.size > 0,
            "below": below.size > 0,
            "first_above": float(above[0] + 1) if above.size else math.nan,
            "final_width": float(conv.high[-1] - conv.low[-1])}


def known_lifts(args: argparse.Namespace, cal: Calibration, settings: Settings) -> None:
    share = settings.holdout_control_share
    n = int(round(cal.units_per_hour * 24 * args.days))
    rng = np.random.default_rng(args.seed)
    plan = [lift for lift, part in LIFTS for _ in range(int(round(part * args.experiments)))]
    t0 = time.perf_counter()
    rows = [(lift, experiment(rng, n, cal.conversion, lift, share, cal.order_values, settings,
                              check=i % 50 == 0)) for i, lift in enumerate(plan)]
    secs = time.perf_counter() - t0
    print(f"\n2. {len(rows)} experiments of {args.days:g} days ({n:,} eligible units each, "
          f"control share {share:g}, control conversion {cal.conversion:.3f}), looked at "
          f"after every unit; alpha {settings.lift_alpha:g}, horizon "
          f"{settings.lift_horizon:,.0f} units ({secs:.0f} s)")
    print("   | true lift | experiments | coverage (every look) | revenue/unit coverage | "
          "interval > 0 at some look | interval < 0 at some look | median days to > 0 |")
    print("   |---|---|---|---|---|---|---|")
    per_day = n / args.days
    for lift in sorted({lift for lift, _ in rows}):
        rs = [r for x, r in rows if x == lift]
        first = [r["first_above"] for r in rs if not math.isnan(r["first_above"])]
        days = f"{np.median(first) / per_day:.1f}" if first else "-"
        share_of = {k: float(np.mean([r[k] for r in rs]))
                    for k in ("miss", "rev_miss", "above", "below")}
        print(f"   | {lift * 100:+.0f} pp | {len(rs)} | {1 - share_of['miss']:.3f} "
              f"| {1 - share_of['rev_miss']:.3f} | {share_of['above']:.3f} "
              f"| {share_of['below']:.3f} | {days} |")
    coverage = 1 - np.mean([r["miss"] for _, r in rows])
    null = [r for x, r in rows if x == 0.0]
    fpr = np.mean([r["above"] or r["below"] for r in null])
    power = np.mean([r["above"] for x, r in rows if x == 0.02])
    print(f"   coverage under continuous peeking, all {len(rows)}: {coverage:.3f} "
          f"(target >= 0.95)")
    print(f"   false positive rate, true lift 0 ({len(null)}): {fpr:.3f} (target <= 0.05)")
    print(f"   +2 pp lift detected within {args.days:g} days: {power:.3f}")
    firsts = np.array([r["first_above"] for x, r in rows if x == 0.02]) / per_day
    by_day = ", ".join(f"{d:g} d: {np.mean(firsts <= d):.3f}"
                       for d in (0.5, 1, 2, 3, args.days) if d <= args.days)
    print(f"   +2 pp lift detected by day (stopping when the interval clears 0): {by_day}")



def end_to_end(args: argparse.Namespace, cal: Calibration, settings: Settings) -> None:
    # Planned as a user would: intervals tightest at the units the run is expected to have.
    planned = max(cal.units_per_hour * args.e2e_minutes / 60, 200.0)
    e2e = settings.model_copy(update={"holdout_control_share": 0.5,
                                      "lift_horizon": planned})
    print(f"\n3. end to end: {args.e2e_minutes:g} simulated minutes per run at "
          f"{args.rate:g} events/s, control share 0.5, horizon {planned:,.0f} units, "
          "through the core")
    print("   | chat effect | units control / treatment | conversion control / treatment "
          "| estimated lift [interval] | true lift | truth inside |")
    print("   |---|---|---|---|---|---|")
    for i, effect in enumerate(args.chat_effect):
        ledger, sim, secs = core_run(e2e, args.seed + 1 + i, args.rate, args.e2e_minutes,
                                     effect)
        est = ledger.lift("chat_offer", alpha=e2e.lift_alpha, horizon=e2e.lift_horizon)
        treated = [o for o in sim.outcomes if o.chat_arm == "treatment"]
        truth = sum(o.rescued and o.converted for o in treated) / max(len(treated), 1)
        c = est.conversion
        inside = ("no interval yet" if not c.known
                  else "yes" if c.low <= truth <= c.high else "NO")
        print(f"   | {effect:g} | {est.control.units:,} / {est.treatment.units:,} "
              f"| {est.control.conversion_rate:.3f} / {est.treatment.conversion_rate:.3f} "
              f"| {c.lift:+.4f} [{c.low:+.4f}, {c.high:+.4f}] | {truth:+.4f} | {inside} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=float, default=200.0, help="simulated events per second")
    ap.add_argument("--calibrate-minutes", type=float, default=60.0)
    ap.add_argument("--experiments", type=int, default=800)
    ap.add_argument("--days", type=float, default=7.0, help="length of each experiment")
    ap.add_argument("--e2e-minutes", type=float, default=60.0)
    ap.add_argument("--chat-effect", type=float, nargs="+", default=[0.3, 0.6])
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    settings = load()

    cal = calibrate(settings, args.seed, args.rate, args.calibrate_minutes)
    aa = cal.ledger.lift("chat_offer", alpha=settings.lift_alpha, horizon=settings.lift_horizon)
    print(f"1. calibration: {args.calibrate_minutes:g} simulated minutes at {args.rate:g} "
          f"events/s ({cal.events:,} events, {cal.seconds:.0f} s through the core)")
    print(f"   {cal.units_per_hour:,.0f} eligible units per hour, {cal.conversion:.3f} of them "
          f"order, mean order value {cal.order_values.mean():.2f} (n={cal.order_values.size})")
    print(f"   A/A (no chat effect): lift {aa.conversion.lift:+.4f} "
          f"[{aa.conversion.low:+.4f}, {aa.conversion.high:+.4f}], status {aa.status}")

    if args.experiments > 0:
        known_lifts(args, cal, settings)
    if args.e2e_minutes > 0:
        end_to_end(args, cal, settings)


if __name__ == "__main__":
    main()
