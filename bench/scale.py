"""The cost of scale: CPU seconds per million events with 1, 2 and 3 workers, and the pause in
processing while the group rebalances (a worker joining, a worker killed).

    python bench/scale.py                      # embedded tansu broker
    python bench/scale.py --broker host:9092   # a real Kafka

CPU, not wall time: the machine this was written on has 2 cores, so 3 workers cannot run 3x
as fast on it; what scale costs is the extra CPU per event (duplicated per-worker work:
timers, heartbeats, fetches of fewer messages each). The figure is the sum over the worker
processes (each with its ingest stage's process) of user + system CPU (``/proc/<pid>/stat``,
so Linux only) from when all of them own partitions and are idle (``quiet``: their ingest
processes started, recovery done; before, a slow start counted, and the idle figure read
0.23-0.31 CPU s/s for one worker where it is 0.02-0.03) to when the last message is applied;
the broker and this script (which produces the events) are excluded. Each row splits it
between the ingest processes and the rest of the workers (the sessions stage and its Faust
machinery). The target: 3 workers within 15% of 1 worker.

By default the group works through a backlog, the regime in which a worker is added: it is
frozen (SIGSTOP, ``WorkerProcess.freeze``) while this script produces every event, then
continued, and the clock runs from then to the last event applied. Each row says how long
producing took (600,000 events: 3-10 s; the workers' session timeout is
``FROZEN_SESSION_TIMEOUT`` in these runs, so the group does not rebalance meanwhile).
Before, the group read while this script produced, and kafka-python
summed record batches in pure Python (5,200 messages/s; with the C crc32c the project now
installs, 24,000): the producer took a core and set the pace, one worker fell behind it and
worked through a backlog in full fetches and batches, three kept up in batches a tenth as
large, and 3 / 1 read 1.36-1.39. On a backlog of 200,000 events (the default until then)
it read 0.98-1.29 from run to run; of 600,000, 0.99-1.27 over nine runs, median 1.10.

``--cpu-rate`` paces the producer (events/s) for the CPU runs instead, below what the workers
can take, and the clock runs while it produces (workers idle meanwhile count: that is part of
what another worker costs). Then the figure depends on how many events each fetch and batch
carries: one worker and three all keep up, each taking its share of the traffic per batch
window (``batch_within``), so three make about three times as many fetches, bundles, batches
and Kafka requests for the same events, and each has a fixed cost in the Kafka clients, Faust
and asyncio (measured on one worker at 5,000 events/s paced: about 4 ms of CPU per ingest fetch
and sessions batch). Each row therefore also prints the ingest fetches and sessions batches per
1,000 events (from the workers' ``/metrics``).

The rebalance pause: 2 workers consume a steady stream; a third joins, later one is SIGKILLed.
The pause is the longest time in which no worker applied any message (read from their
``/metrics`` every 50 ms) after each event. A kill's pause includes the broker noticing the
dead member: up to the session timeout (``--session-timeout``).

On a shared, noisy machine take same-run ratios, not absolute figures.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from kafka import KafkaProducer
from kafka.record import util as kafka_record_util

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streams.broker import broker_for, free_port  # noqa: E402
from streams.kafka_io import drop_topics, ensure_topics  # noqa: E402
from streams.settings import Settings, load  # noqa: E402
from streams.topics import SOURCE_HEADER, topic_name  # noqa: E402
from streams.worker_process import WorkerProcess  # noqa: E402

#: Events the sessions agent fed to its state (web-events messages are bundles of many).
_APPLIED = re.compile(r'^frictionwatch_events_applied_total\{agent="sessions"\} ([0-9.e+]+)$',
                      re.M)
#: Ingest fetches and sessions batches so far (their batch-duration histograms' counts).
_BATCHES = re.compile(r'^frictionwatch_batch_seconds_count\{agent="(normalize|sessions)"\} '
                      r'([0-9.e+]+)$', re.M)
_EVENTS: tuple[tuple[str, dict[str, object]], ...] = (
    ("Element Clicked", {"x": 10, "y": 20, "target": "#buy"}),
    ("Product Added", {"price": 19.5, "quantity": 1}),
    ("Checkout Step Viewed", {"step": 1}),
    ("Payment Declined", {"reason": "card_declined"}),
    ("Cart Viewed", {}),
)


def messages(n_events: int, per_message: int, sessions: int, seed: int) -> list[tuple[bytes,
                                                                                      bytes]]:
    """(key, Segment batch) pairs: one session's calls per message, as a browser sends."""
    rng = random.Random(seed)
    out = []
    made = 0
    while made < n_events:
        s = rng.randrange(sessions)
        calls = []
        for _ in range(min(per_message, n_events - made)):
            made += 1
            name, props = rng.choice(_EVENTS)
            t = made * 10  # ms
            calls.append({"type": "track", "event": name, "messageId": f"m{made}",
                          "anonymousId": f"a{s}", "context": {"sessionId": f"s{s}"},
                          "timestamp": f"2026-01-01T{t // 3_600_000 % 24:02d}:"
                          f"{t // 60_000 % 60:02d}:{t // 1000 % 60:02d}.{t % 1000:03d}Z",
                          "properties": props})
        out.append((f"a{s}".encode(), json.dumps({"batch": calls}).encode()))
    return out


def applied(w: WorkerProcess) -> float | None:
    """Events ``w``'s sessions agent has applied, or None if it does not answer."""
    try:
        m = _APPLIED.search(w.metrics_text(timeout=2.0))
    except OSError:
        return None
    return float(m.group(1)) if m else 0.0


def batches(w: WorkerProcess) -> dict[str, float]:
    """Ingest fetches (``normalize``) and sessions batches ``w`` has run so far."""
    try:
        return {k: float(v) for k, v in _BATCHES.findall(w.metrics_text(timeout=2.0))}
    except OSError:
        return {}


def start_group(base: Settings, bootstrap: str, n: int, tmp: Path, tag: str
                ) -> list[WorkerProcess]:
    workers = []
    for i in range(n):
        s = base.model_copy(update={"web_port": free_port(),
                                    "data_dir": tmp / f"{tag}-w{i}" / "state"})
        workers.append(WorkerProcess(s, bootstrap, tmp / f"{tag}-w{i}.log").start())
    deadline = time.monotonic() + 120
    while sum(w.assigned_partitions() > 0 for w in workers) < n:
        if time.monotonic() > deadline:
            raise SystemExit(f"{n} workers did not all get partitions")
        time.sleep(0.2)
    quiet(workers)
    return workers


def quiet(workers: list[WorkerProcess], per_worker: float = 0.05, timeout: float = 60.0
          ) -> float:
    """Wait until the group is idle: under ``per_worker`` CPU s/s each over a second (their
    ingest processes started, the last rebalance's recovery done), so that starting up is not
    counted as a cost of the events. Returns the seconds waited."""
    t0 = time.monotonic()
    time.sleep(2.0)
    while time.monotonic() - t0 < timeout:
        before = sum(w.cpu_seconds() for w in workers)
        time.sleep(1.0)
        if sum(w.cpu_seconds() for w in workers) - before < per_worker * len(workers):
            break
    return time.monotonic() - t0


def produce(bootstrap: str, topic: str, msgs: list[tuple[bytes, bytes]],
            rate: float | None = None, stop: threading.Event | None = None) -> int:
    p = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=1 << 20)
    sent = 0
    t0 = time.monotonic()
    for key, value in msgs:
        if stop is not None and stop.is_set():
            break
        p.send(topic, key=key, value=value, headers=[(SOURCE_HEADER, b"segment")])
        sent += 1
        if rate is not None:
            ahead = t0 + sent / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
    p.flush()
    p.close()
    return sent


#: The workers' session timeout (s) in the backlog runs, which freeze the group while the
#: backlog is produced. At the 10 s default a slow hour's produce took 9.4-10.0 s, as long as
#: the frozen members' sessions last; the 10.0 s run read 1.38 (the others 1.12-1.18), most
#: likely a rebalance on continuing (its logs were not kept). The rebalance pause runs keep
#: ``--session-timeout``.
FROZEN_SESSION_TIMEOUT = 45.0


def cpu_per_million(base: Settings, bootstrap: str, n: int, msgs: list[tuple[bytes, bytes]],
                    n_events: int, tmp: Path, idle_for: float = 5.0,
                    rate: float | None = None) -> tuple[float, float, float, dict[str, float]]:
    """(CPU seconds per million events, wall seconds, idle CPU seconds per second of the
    group, and in a dict: ingest fetches and sessions batches per 1,000 events, CPU s per
    million events in the ingest processes and the rest, seconds producing) for ``n`` workers
    over ``msgs``, produced at ``rate`` messages/s (None: all of them while the group is
    frozen, a backlog); the idle rate is measured first, over ``idle_for`` seconds with
    nothing to read (timers, heartbeats, empty fetches)."""
    tag = uuid.uuid4().hex[:6]
    update: dict[str, object] = {"topic_prefix": f"scale{tag}.", "app_id": f"fwscale-{tag}"}
    if rate is None:
        update["broker_session_timeout"] = FROZEN_SESSION_TIMEOUT
    s = base.model_copy(update=update)
    ensure_topics(s, bootstrap)
    workers = start_group(s, bootstrap, n, tmp, tag)
    try:
        idle_start = sum(w.cpu_seconds() for w in workers)
        time.sleep(idle_for)
        idle = (sum(w.cpu_seconds() for w in workers) - idle_start) / idle_for
        counted = [batches(w) for w in workers]
        ingest = topic_name("ingest", s.topic_prefix)

        def start_clock() -> tuple[float, float, float]:
            """(the group's CPU, its workers' own CPU, wall time) at the clock's start."""
            return (sum(w.cpu_seconds() for w in workers),
                    sum(w.cpu_seconds(children=False) for w in workers), time.monotonic())

        if rate is None:
            # A backlog: the group holds its partitions, frozen, while all of it is produced.
            for w in workers:
                w.freeze()
            try:
                t_produce = time.monotonic()
                produce(bootstrap, ingest, msgs)
                produced = time.monotonic() - t_produce
                if produced > 0.8 * FROZEN_SESSION_TIMEOUT:
                    print(f"warning: producing took {produced:.1f} s, near the session "
                          f"timeout ({FROZEN_SESSION_TIMEOUT:g} s): the group may have "
                          "rebalanced, and its figure with it")
            finally:
                before, own_before, t0 = start_clock()
                for w in workers:
                    w.freeze(False)
        else:
            before, own_before, t0 = start_clock()
            produce(bootstrap, ingest, msgs, rate)
            produced = time.monotonic() - t0
        deadline = time.monotonic() + 900
        while sum(applied(w) or 0.0 for w in workers) < n_events:
            if time.monotonic() > deadline:
                raise SystemExit(f"{n} workers did not finish:\n{workers[0].log_tail()}")
            # Gently: a scrape of /metrics costs a worker about 5 ms of CPU, and three workers
            # scraped 4 times a second were charged 1 CPU s per million events more than one.
            # Polling once a second, the clock runs on at most a second of the group idle.
            time.sleep(1.0)
        used = sum(w.cpu_seconds() for w in workers) - before
        own = sum(w.cpu_seconds(children=False) for w in workers) - own_before
        runs: dict[str, float] = {"sessions_cpu": own / n_events * 1e6,
                                  "ingest_cpu": (used - own) / n_events * 1e6,
                                  "produced_s": produced}
        for w, was in zip(workers, counted, strict=True):
            for k, v in batches(w).items():
                runs[k] = runs.get(k, 0.0) + (v - was.get(k, 0.0)) / n_events * 1000
        return used / n_events * 1e6, time.monotonic() - t0, idle, runs
    finally:
        for w in workers:
            w.stop()
        drop_topics(s, bootstrap)


def longest_pause(progress: list[float], start: float, end: float) -> float:
    """The longest gap between moments of progress within [start, end] (from ``start``)."""
    marks = [start] + [t for t in progress if start < t <= end] + [end]
    return max(b - a for a, b in zip(marks, marks[1:], strict=False))


def rebalance_pauses(base: Settings, bootstrap: str, msgs: list[tuple[bytes, bytes]],
                     rate: float, tmp: Path) -> tuple[float, float]:
    """(pause when a third worker joins, pause when a worker is SIGKILLed), in seconds."""
    tag = uuid.uuid4().hex[:6]
    s = base.model_copy(update={"topic_prefix": f"scale{tag}.", "app_id": f"fwscale-{tag}"})
    ensure_topics(s, bootstrap)
    workers = start_group(s, bootstrap, 2, tmp, tag)
    stop = threading.Event()
    pool = ThreadPoolExecutor(2)
    sending = pool.submit(produce, bootstrap, topic_name("ingest", s.topic_prefix), msgs,
                          rate, stop)
    progress: list[float] = []
    last: dict[int, float] = {}

    def watch(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            now = time.monotonic()
            for i, w in enumerate(list(workers)):
                done = applied(w)
                if done is not None and done > last.get(i, 0.0):
                    last[i] = done
                    progress.append(now)
            time.sleep(0.05)

    try:
        watch(5.0)
        joined_at = time.monotonic()
        extra = s.model_copy(update={"web_port": free_port(),
                                     "data_dir": tmp / f"{tag}-w2" / "state"})
        joining = pool.submit(WorkerProcess(extra, bootstrap, tmp / f"{tag}-w2.log").start)
        while not joining.done():
            watch(0.5)
        workers.append(joining.result())
        watch(10.0)
        killed_at = time.monotonic()
        workers[0].kill()
        watch(base.broker_session_timeout * 2 + 10.0)
        join_pause = longest_pause(progress, joined_at, killed_at)
        kill_pause = longest_pause(progress, killed_at, time.monotonic())
        return join_pause, kill_pause
    finally:
        stop.set()
        sending.result()
        pool.shutdown()
        for w in workers:
            w.stop()
        drop_topics(s, bootstrap)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=600_000)
    ap.add_argument("--per-message", type=int, default=5, help="Segment calls per message")
    ap.add_argument("--sessions", type=int, default=5_000)
    ap.add_argument("--partitions", type=int, default=6, help="divisible by 1, 2 and 3")
    ap.add_argument("--workers", default="1,2,3")
    ap.add_argument("--rate", type=float, default=300.0,
                    help="messages/s of the steady stream during the rebalance runs")
    ap.add_argument("--cpu-rate", type=float, default=None,
                    help="events/s the CPU runs are produced at, the group reading meanwhile "
                    "(default: a backlog, produced while the group is frozen)")
    ap.add_argument("--session-timeout", type=float, default=10.0)
    ap.add_argument("--repeat", type=int, default=1,
                    help="run the CPU rows this many times (1 worker first each time, so "
                    "each ratio is of neighbouring runs: this machine's speed drifts by 20%% "
                    "over minutes) and print the ratios' min, median and max")
    ap.add_argument("--no-pause", action="store_true", help="skip the rebalance runs")
    ap.add_argument("--broker", help="bootstrap servers; default: embedded tansu")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    msgs = messages(args.events, args.per_message, args.sessions, args.seed)
    with tempfile.TemporaryDirectory() as tmp, broker_for(args.broker) as bootstrap:
        base = load(partitions=args.partitions, web_host="127.0.0.1",
                    broker_session_timeout=args.session_timeout,
                    data_dir=Path(tmp) / "state")
        print(f"{args.events:,} events in {len(msgs):,} messages ({args.per_message}/message), "
              f"{args.partitions} partitions, broker {bootstrap}; CPU = user+sys of the worker "
              f"processes only (/proc), broker and producer excluded")
        if args.cpu_rate:
            print(f"produced at {args.cpu_rate:,.0f} events/s")
        elif kafka_record_util.crc32c_c is None:
            print("warning: kafka-python sums record batches in pure Python (no crc32c "
                  "package): the producer, not the workers, sets the pace")
        ratios: dict[int, list[float]] = {}
        msg_rate = args.cpu_rate / args.per_message if args.cpu_rate else None
        for r in range(args.repeat):
            if args.repeat > 1:
                print(f"run {r + 1} of {args.repeat}")
            cpu: dict[int, float] = {}
            for n in (int(x) for x in args.workers.split(",")):
                cpu[n], wall, idle, runs = cpu_per_million(base, bootstrap, n, msgs,
                                                           args.events, Path(tmp),
                                                           rate=msg_rate)
                ratio = ""
                if 1 in cpu and n != 1:
                    ratios.setdefault(n, []).append(cpu[n] / cpu[1])
                    ratio = f"; {n} / 1 worker: {cpu[n] / cpu[1]:.3f}"
                print(f"{n} worker(s): {cpu[n]:7.1f} CPU s per million events "
                      f"({wall:.1f} s wall, {runs['produced_s']:.1f} s producing){ratio}; "
                      f"idle, the group costs {idle:.3f} CPU s/s "
                      f"({idle * wall / args.events * 1e6:.1f} of the figure); per 1,000 "
                      f"events {runs.get('normalize', 0.0):.2f} ingest fetches, "
                      f"{runs.get('sessions', 0.0):.2f} sessions batches; CPU s per million "
                      f"events in the ingest processes {runs['ingest_cpu']:.1f}, the rest of "
                      f"the workers {runs['sessions_cpu']:.1f}", flush=True)
        if args.repeat > 1:
            for n, rs in ratios.items():
                print(f"{n} / 1 worker over {len(rs)} runs: min {min(rs):.3f}, median "
                      f"{statistics.median(rs):.3f}, max {max(rs):.3f}")
        if not args.no_pause:
            stream = messages(int(args.rate * 120) * args.per_message, args.per_message,
                              args.sessions, args.seed + 1)
            join, kill = rebalance_pauses(base, bootstrap, stream, args.rate, Path(tmp))
            print(f"rebalance pause at {args.rate:.0f} messages/s: a worker joining "
                  f"{join:.2f} s; a worker SIGKILLed {kill:.2f} s (session timeout "
                  f"{args.session_timeout:.0f} s)")


if __name__ == "__main__":
    main()
