"""Journey incidents on simulated traffic: does every injected step outage open exactly one
incident, soon, and resolve after it ends; and does normal traffic open none?

    python bench/incident_quality.py                         # seeds 1 2 3 4
    python bench/incident_quality.py --seeds 4 5 --rate 80

Per seed, two runs of the worker's own core (detectors, journeys, the funnel's per-minute
counts, closed as event time passes with the worker's lateness, then the minute merger and the
incident detector, as the incidents agent runs them):

1. outages: ``--warmup`` minutes of normal traffic, then each kind of step outage the
   simulator has (payment provider failing, a form field broken, a slow step, an API down, a
   promotion code refused, the place-order button broken), ``--outage`` minutes each,
   ``--gap`` minutes apart. An outage is caught when exactly one step incident opens on its
   step within 2 minutes of its start and resolves after it ends; a broken button must also
   open an element-level incident on it (listed, with its times); any other incident, step or
   element, is a false one.
2. normal: ``--warmup`` minutes, then ``--normal`` minutes (default an hour) of traffic without
   outages, in which no incident may open.

Times are event time. An incident opens at the end of the minute whose counts crossed the
threshold, so "within 2 minutes" includes waiting for that minute to end.
"""

from __future__ import annotations

import argparse
import calendar
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streams import detection  # noqa: E402
from streams.normalize import normalize  # noqa: E402
from streams.settings import Settings  # noqa: E402
from streams.sim import Incident, SimConfig, Simulator  # noqa: E402

#: Outage kinds and the journey step where each shows (the simulator pays at the review step,
#: after the order summary, and takes coupons there).
OUTAGES = {"payment_outage": "review", "broken_field": "shipping", "slow_step": "payment",
           "api_outage": "shipping", "promo_broken": "review", "broken_button": "review"}
#: Outages that break one element: they must open an element-level incident on it too.
ELEMENTS = {"broken_button": "button#place-order"}
CATCH_WITHIN_S = 120.0


@dataclass
class Outage:
    kind: str
    step: str
    start: float
    end: float


def run(seed: int, rate: float, minutes: float, incidents: tuple[Incident, ...]
        ) -> tuple[list[dict[str, Any]], SimConfig]:
    """The incident documents a worker with the default settings would send for this
    simulated traffic."""
    settings = Settings(abandonment_model=False)
    sim_config = SimConfig(seed=seed, events_per_second=rate, duration=minutes * 60,
                           incidents=incidents)
    engine = detection.engine(settings)
    pipeline = detection.incidents(settings, engine)
    assert pipeline is not None
    docs: list[dict[str, Any]] = []
    for msg in Simulator(sim_config).messages():
        norm = normalize(msg.encode(), msg.source, max_bytes=1 << 20, max_events=1000, now=0.0)
        for evs in norm.web.values():
            engine.feed(evs)
        docs += pipeline.advance(engine.watermark)
    docs += pipeline.finish()
    return docs, sim_config


def judge(docs: list[dict[str, Any]], outages: list[Outage]) -> tuple[list[str], int]:
    """Per outage a verdict line; and the number of incidents no outage explains."""
    every = [d["data"] for d in docs if d["data"]["status"] == "opened"]
    opened = [i for i in every if i.get("element") is None]
    resolved = {d["data"]["incident_id"]: d["data"] for d in docs
                if d["data"]["status"] == "resolved"}
    explained: set[str] = set()
    lines = []
    for o in outages:
        element = ELEMENTS.get(o.kind)
        if element is not None:
            hit = [i for i in every if i.get("element") == element and i["step"] == o.step
                   and o.start - 60 <= _t(i["opened"]) <= o.end + 60]
            explained |= {i["incident_id"] for i in hit}
            for i in hit:
                end = resolved.get(i["incident_id"])
                lines.append(f"  {o.kind:15s} {o.step:9s} element {element}: opened "
                             f"{_t(i['opened']) - o.start:+4.0f} s after the start, resolved "
                             + (f"{_t(end['resolved']) - o.end:+4.0f} s after the end"
                                if end else "never")
                             + f"; {(end or i)['sessions_affected']} sessions")
            if not hit:
                lines.append(f"  {o.kind:15s} {o.step:9s} element {element}: MISSED")
        mine = [i for i in opened if i["step"] == o.step
                and o.start - 60 <= _t(i["opened"]) <= o.end + 60]
        explained |= {i["incident_id"] for i in mine}
        if len(mine) != 1:
            lines.append(f"  {o.kind:15s} {o.step:9s} MISSED: {len(mine)} incidents")
            continue
        inc = mine[0]
        after = _t(inc["opened"]) - o.start
        end = resolved.get(inc["incident_id"])
        res = _t(end["resolved"]) - o.end if end else None
        ok = after <= CATCH_WITHIN_S and res is not None and res >= 0
        kinds = ", ".join(k["kind"] for k in inc["kinds"])
        where = ", ".join(f"{g['dimension']}={g['value']} ({g['share']:.0%} of it, usually "
                          f"{g['baseline_share']:.0%})" for g in (end or inc)["segments"]) \
            or "every segment alike"
        lines.append(
            f"  {o.kind:15s} {o.step:9s} {'caught' if ok else 'LATE'}: opened {after:+4.0f} s "
            f"after the start, resolved "
            f"{'never' if res is None else f'{res:+4.0f} s after the end'}; {kinds}; "
            f"{where}; "
            f"{(end or inc)['sessions_affected']} sessions, "
            f"{(end or inc)['revenue_lost_per_hour']:,.0f}/h lost")
    false = [i for i in every if i["incident_id"] not in explained]
    for i in false:
        what = f" element {i['element']}" if i.get("element") else ""
        lines.append(f"  FALSE incident: {i['journey']}/{i['step']}{what} at {i['opened']} "
                     f"({', '.join(k['kind'] for k in i['kinds'])})")
    return lines, len(false)


def _t(iso: str) -> float:
    return float(calendar.timegm(time.strptime(iso, "%Y-%m-%dT%H:%M:%SZ")))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4])
    ap.add_argument("--rate", type=float, default=150, help="simulated events per second")
    ap.add_argument("--warmup", type=float, default=30, help="minutes before the first outage")
    ap.add_argument("--outage", type=float, default=10, help="minutes each outage lasts")
    ap.add_argument("--gap", type=float, default=30, help="minutes between outage starts")
    ap.add_argument("--normal", type=float, default=60, help="minutes of the normal run")
    args = ap.parse_args()
    caught = total = false_total = normal_false = 0
    for seed in args.seeds:
        t0 = time.perf_counter()
        outages, incs = [], []
        for i, (kind, step) in enumerate(OUTAGES.items()):
            # Off the minute boundaries: an outage may start any time in a minute.
            start = (args.warmup + i * args.gap) * 60 + 13 + 11 * i
            incs.append(Incident(kind, start, args.outage * 60))
            outages.append(Outage(kind, step, start, start + args.outage * 60))
        minutes = args.warmup + len(OUTAGES) * args.gap
        docs, sim = run(seed, args.rate, minutes, tuple(incs))
        for o in outages:
            o.start += sim.start
            o.end += sim.start
        lines, false = judge(docs, outages)
        ok = sum(" caught:" in line for line in lines)
        caught, total, false_total = caught + ok, total + len(outages), false_total + false
        print(f"seed {seed}: {ok} of {len(outages)} outages caught, {false} false incident(s) "
              f"[{minutes:.0f} simulated min, {time.perf_counter() - t0:.0f} s]")
        print("\n".join(lines))
        t0 = time.perf_counter()
        docs, _ = run(seed, args.rate, args.warmup + args.normal, ())
        opened = [d["data"] for d in docs if d["data"]["status"] == "opened"]
        normal_false += len(opened)
        print(f"seed {seed}, normal traffic: {len(opened)} incident(s) in {args.normal:.0f} min "
              f"after {args.warmup:.0f} min of warm-up [{time.perf_counter() - t0:.0f} s]"
              + "".join(f"\n  FALSE incident: {i['journey']}/{i['step']}"
                        + (f" element {i['element']}" if i.get("element") else "")
                        + f" at {i['opened']}" for i in opened))
    print(f"all seeds: {caught} of {total} outages caught (exactly one incident within "
          f"{CATCH_WITHIN_S:.0f} s of the start, resolved after the end); {false_total} false "
          f"incident(s) during the outage runs; {normal_false} in "
          f"{len(args.seeds) * args.normal:.0f} min of normal traffic")


if __name__ == "__main__":
    main()
