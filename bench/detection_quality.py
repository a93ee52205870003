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

Sources: every format the product reads, GA4 20%, Snowplow 10%, PostHog 10% and Segment the
rest (half of Segment sessions send "Page Left" beacons). Frictions a format has no event for
(Snowplow's dead clicks, error pages, field errors, coupon results and failed API calls:
``streams.sim.BLIND``) are not scored in its sessions.

Presence: the traffic holds shoppers who leave a checkout step on sight, without acting (their
leave beacon lost for a few percent), beside the injected stalls. ``step_stall`` is scored
again among the sessions whose source sends presence signals, all of them and apart by kind:
leave beacons (GA4, PostHog, Segment with "Page Left") and heartbeats (Snowplow's
``page_ping``). The bench counts chat offers sent to sessions that had already left (by the
simulator's truth) and alert-level precision: the share of session alerts that went to a
session with injected friction of any kind.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from datetime import datetime
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
from streams.sim import BLIND, FRICTION_TYPES, Incident, SimConfig, Simulator  # noqa: E402

INCIDENTS = ("payment_outage@5m+2m", "broken_field@10m+3m", "slow_step@15m+2m",
             "api_outage@20m+2m", "promo_broken@24m+3m")


#: The bench's source mix (the rest is Segment).
SHARES = {"ga4_share": 0.2, "snowplow_share": 0.1, "posthog_share": 0.1}
#: Formats whose presence signals are heartbeats, not leave beacons.
HEARTBEATS = frozenset({"snowplow"})


@dataclass
class Presence:
    """``step_stall`` among presence-sending sessions (all, by leave beacons, by heartbeats),
    alert precision and chats to leavers."""

    stall: Quality
    beacons: Quality
    heartbeats: Quality
    alerts: int = 0
    alerts_on_friction: int = 0
    chats: int = 0
    chats_to_left: int = 0

    @property
    def alert_precision(self) -> float:
        return self.alerts_on_friction / self.alerts if self.alerts else 1.0


def _seconds(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def run_seed(seed: int, minutes: float, rate: float
             ) -> tuple[dict[str, Quality], Outputs, Presence]:
    sim = Simulator(SimConfig(
        seed=seed, events_per_second=rate, duration=minutes * 60,
        friction=dict.fromkeys(FRICTION_TYPES, 0.08),
        incidents=tuple(Incident.parse(s) for s in INCIDENTS), **SHARES,
    ))
    out = run_simulated(sim.messages(), detection.engine(Settings(abandonment_model=False)))
    truth, ignore = split_truth(sim.truth)
    outcomes = {o.session_id: o for o in sim.outcomes}
    # A friction the session's format has no event for is not scored there (``BLIND``).
    blind = [t for t in truth
             if t.friction in BLIND.get(getattr(outcomes.get(t.session_id), "source", ""), ())]
    if blind:
        unseen = set(map(id, blind))
        truth = [t for t in truth if id(t) not in unseen]
        ignore = [*ignore, *blind]

    def stalls(sessions: set[str]) -> Quality:
        return evaluate([s for s in out.signals if s.session_id in sessions],
                        [t for t in truth if t.session_id in sessions],
                        ignore=[t for t in ignore if t.session_id in sessions]
                        ).get("step_stall", Quality())

    present = {sid for sid, o in outcomes.items() if o.presence}
    beats = {sid for sid in present if outcomes[sid].source in HEARTBEATS}
    injected = {t.session_id for t in (*truth, *ignore)}
    pres = Presence(stalls(present), stalls(present - beats), stalls(beats),
                    alerts=len(out.alerts), chats=len(out.chats))
    pres.alerts_on_friction = sum(a["data"]["session_id"] in injected for a in out.alerts)
    for c in out.chats:
        o = outcomes.get(c["data"]["session_id"])
        if o is not None and o.left is not None and o.left < _seconds(c["time"]):
            pres.chats_to_left += 1
    return evaluate(out.signals, truth, ignore=ignore), out, pres


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
    presence: list[Presence] = []
    for seed in args.seeds:
        q, out, pres = run_seed(seed, args.minutes, args.rate)
        rows.append(q)
        presence.append(pres)
        console.print(quality_table(q, title=f"seed {seed}: {len(out.signals):,} signals, "
                                             f"{len(out.alerts):,} alerts, "
                                             f"{len(out.chats):,} chat triggers"))
        console.print(f"seed {seed}: step_stall among presence-sending sessions: precision "
                      f"{pres.stall.precision:.3f}, recall {pres.stall.recall:.3f} "
                      f"({pres.stall.truths} stalls); alert-level precision "
                      f"{pres.alert_precision:.3f} ({pres.alerts_on_friction:,} of "
                      f"{pres.alerts:,}); chats to sessions that had left: "
                      f"{pres.chats_to_left} of {pres.chats:,}")
    total = merge(rows)
    console.print(quality_table(total, title=f"all seeds {args.seeds}"))
    stall = merge([{"s": p.stall} for p in presence])["s"]
    by_kind = merge([{"leave beacons": p.beacons, "heartbeats": p.heartbeats}
                     for p in presence])
    alerts = sum(p.alerts for p in presence)
    on_friction = sum(p.alerts_on_friction for p in presence)
    ttd = stall.median_ttd
    console.print(f"all seeds: step_stall among presence-sending sessions: precision "
                  f"{stall.precision:.3f}, recall {stall.recall:.3f} ({stall.truths} stalls, "
                  f"{stall.signals} signals, median TTD "
                  f"{'-' if ttd is None else f'{ttd:.1f}'} s); alert-level precision "
                  f"{on_friction / alerts if alerts else 1.0:.3f} ({on_friction:,} of "
                  f"{alerts:,} session alerts); chats to sessions that had left: "
                  f"{sum(p.chats_to_left for p in presence)} of "
                  f"{sum(p.chats for p in presence):,}")
    for kind, q in by_kind.items():
        console.print(f"all seeds: step_stall among sessions sending {kind}: precision "
                      f"{q.precision:.3f}, recall {q.recall:.3f} ({q.truths} stalls, "
                      f"{q.signals} signals)")
    # A stall known only from silence (a source without presence signals) is a signal that
    # neither alerts nor offers chat: its type is judged where presence is known.
    judged = {**total, "step_stall": stall}
    worst = [k for k, q in judged.items() if q.precision < 0.9 or q.recall < 0.9
             or (q.median_ttd is not None and abs(q.median_ttd) > 5)]
    console.print("targets (precision and recall >= 0.9, median TTD <= 5 s; step_stall among "
                  "presence-sending sessions): "
                  + ("met for every type" if not worst else f"NOT met for {', '.join(worst)}"))
    met = stall.precision >= 0.95 and stall.recall >= 0.95 and alerts and \
        on_friction / alerts >= 0.95 and not sum(p.chats_to_left for p in presence)
    console.print("presence targets (step_stall precision and recall >= 0.95 where presence "
                  "is sent, alert-level precision >= 0.95, no chat to a session that had "
                  f"left): {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
