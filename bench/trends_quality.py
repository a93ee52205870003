"""Support trends on simulated tickets: is an injected topic burst reported soon after it
starts, and is no topic reported rising among steady tickets?

    python bench/trends_quality.py                        # seeds 1-10, 60 tickets an hour
    python bench/trends_quality.py --per-hour 300 --burst tracking_404 --burst-rate 20

Per seed, the ticket-only generator (``streams.sim.tickets.ticket_stream``: the simulator's
wording and mix of reasons, with the friction each is about in a session summary before it)
makes ``--steady`` hours (default 24) of steady tickets, then the burst: ``--burst-rate``
extra tickets an hour about a new topic for ``--burst-hours``, the steady ones going on.
``models.trends.SupportTrends`` learns every event and is asked what is rising every
``--every`` seconds of event time (default 5 minutes), as the worker asks it.

Reported per seed: the time from the burst's start to the first query that reports it (a
rising topic whose examples are burst tickets), the rising topics that are not it (during the
steady hours, and during the burst), whether the burst's customers' friction came with it, and
the phrases tracked at the end. Exit status 1 if a burst is not reported within an hour or a
false topic is reported.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.trends import SupportTrends  # noqa: E402
from streams.sim.tickets import BURST_TOPICS, TicketBurst, ticket_stream  # noqa: E402

START = 1767225600.0


@dataclass
class Watch:
    """What a run of queries saw."""

    #: Seconds from the burst's start to its first report; None: never reported.
    time_to_report: float | None = None
    #: (hour of the run, topic) of each rising topic that is not the burst, once per hour.
    false: set[tuple[int, str]] = field(default_factory=set)
    #: The burst's first report.
    first: dict[str, Any] | None = None


def is_burst(topic: dict[str, Any]) -> bool:
    """A rising topic is the burst when most of its example tickets are burst tickets."""
    ex = topic["examples"]
    return sum(x["ticket_id"].startswith("burst-") for x in ex) * 2 > len(ex)


def watch(events: Iterable[Any], model: SupportTrends, every: float, burst_start: float | None,
          start: float = START) -> Watch:
    """Feed ``events`` to ``model``, asking what is rising every ``every`` seconds."""
    out = Watch()
    next_query = start + every
    for e in events:
        while e.time >= next_query:
            for topic in model.rising(next_query):
                if burst_start is not None and is_burst(topic):
                    if out.time_to_report is None:
                        out.time_to_report = next_query - burst_start
                        out.first = topic
                else:
                    out.false.add((int((next_query - start) // 3600), topic["topic"]))
            next_query += every
        model.learn_one(e)
    return out


def run(seed: int, per_hour: float, steady: float, burst: TicketBurst, every: float
        ) -> tuple[Watch, SupportTrends, float]:
    model = SupportTrends()
    t0 = time.process_time()
    hours = steady + (burst.duration or 0.0) / 3600.0
    w = watch(ticket_stream(seed=seed, hours=hours, per_hour=per_hour, start=START, burst=burst),
              model, every, START + burst.start)
    return w, model, time.process_time() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(1, 11)))
    ap.add_argument("--per-hour", type=float, default=60.0, help="steady tickets an hour")
    ap.add_argument("--steady", type=float, default=24.0, help="hours of steady tickets first")
    ap.add_argument("--burst", choices=list(BURST_TOPICS), default="promo_winter25")
    ap.add_argument("--burst-rate", type=float, default=12.0, help="burst tickets an hour")
    ap.add_argument("--burst-hours", type=float, default=3.0)
    ap.add_argument("--every", type=float, default=300.0, help="seconds between queries")
    args = ap.parse_args(argv)
    burst = TicketBurst(args.burst, args.steady * 3600.0, args.burst_hours * 3600.0,
                        args.burst_rate)
    print(f"{args.per_hour:g} steady tickets an hour for {args.steady:g} h, then a burst of "
          f"{args.burst} at {args.burst_rate:g} an hour for {args.burst_hours:g} h; queried "
          f"every {args.every:g} s")
    print(f"{'seed':>4}  {'report after':>12}  {'tickets':>7}  {'growth':>8}  "
          f"{'friction':>22}  {'false (steady/burst)':>20}  {'phrases':>7}  {'cpu s':>5}")
    ok = True
    times: list[float] = []
    false_total = 0
    for seed in args.seeds:
        w, model, cpu = run(seed, args.per_hour, args.steady, burst, args.every)
        steady_false = sum(1 for h, _ in w.false if h < args.steady)
        burst_false = len(w.false) - steady_false
        false_total += len(w.false)
        first = w.first or {}
        fr = first.get("friction", {})
        top = max(fr, key=fr.__getitem__) if fr else "-"
        friction = f"{top} {first.get('customers_with_friction', 0)}/{first.get('customers', 0)}"
        after = "never" if w.time_to_report is None else f"{w.time_to_report / 60:.0f} min"
        print(f"{seed:>4}  {after:>12}  {first.get('tickets', 0):>7}  "
              f"{first.get('growth', 0):>8.1f}  {friction:>22}  "
              f"{steady_false:>9}/{burst_false:<10}  {len(model.phrases):>7}  {cpu:>5.2f}")
        for h, topic in sorted(w.false):
            print(f"      false: hour {h}: {topic!r}")
        if w.time_to_report is None or w.time_to_report > 3600.0:
            ok = False
        else:
            times.append(w.time_to_report)
    ok = ok and false_total == 0
    if times:
        print(f"burst reported in {len(times)} of {len(args.seeds)} seeds within an hour; "
              f"median {statistics.median(times) / 60:.0f} min, max {max(times) / 60:.0f} min; "
              f"false rising topics: {false_total}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
