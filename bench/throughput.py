"""Throughput bench: raw aiokafka consume+decode against the frictionwatch worker, same broker,
same topic, same run; one event per message and a library's batch of 20, models off and on.

    python bench/throughput.py --repeat 3               # embedded tansu broker
    python bench/throughput.py --broker host:9092       # a real Kafka
    python bench/throughput.py --per-message 1 --events 40000 --models on   # one quick row

For each ``--per-message`` value (default 1 and 20; ``--events`` per value) and each of
``--repeat`` runs, it produces Segment calls to a fresh ingest topic, ``--per-message`` calls
per message (a browser's single call, or one client's batch as Segment's libraries send), then:

1. raw: an aiokafka consumer reads the topic from the start and ``json.loads`` every message
   (the ceiling: no framework, no state, no output);
2. worker, models off, then on (abandonment, churn and ticket triage; each run a consumer
   group of its own): ``frictionwatch worker`` as deployed, a child process, consumes the same
   topic from the start: the bulk ingest stage (normalize: adapters, validation, dead letters;
   bundles per partition) -> canonical web-events topic -> sessions agent (per-session state,
   changelog). The clock runs from its first ingest message to the last event applied to
   session state, read from its /metrics (``frictionwatch_events_applied_total``).

It ends with a table: each run's rates, worker/raw ratios and the models' cost (1 - on/off,
same run), then min and median per row. The machine may be shared: compare ratios of one run,
not rates across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import re
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streams.broker import broker_for, free_port  # noqa: E402
from streams.kafka_io import IngestProducer, drop_topics, ensure_topics  # noqa: E402
from streams.settings import Settings, load  # noqa: E402
from streams.topics import topic_name  # noqa: E402
from streams.worker_process import WorkerProcess  # noqa: E402

_CALLS = (
    ("page", None),
    ("track", "Product Viewed"),
    ("track", "Element Clicked"),
    ("track", "Product Added"),
    ("track", "Checkout Step Viewed"),
)


def segment_batches(n_events: int, per_message: int, sessions: int, seed: int) -> list[bytes]:
    """Segment ``/v1/batch`` bodies, each one session's calls (what one browser sends)."""
    rng = random.Random(seed)
    t0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
    out: list[bytes] = []
    made = 0
    while made < n_events:
        sid = f"anon-{rng.randrange(sessions)}"
        calls = []
        for _ in range(min(per_message, n_events - made)):
            kind, name = rng.choice(_CALLS)
            made += 1
            ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t0 + made * 0.01)) + "Z"
            call: dict[str, object] = {
                "type": kind, "messageId": f"m{made}", "anonymousId": sid, "timestamp": ts,
                "context": {"page": {"url": "https://shop.example/p/1"}},
            }
            if kind == "page":
                call["name"] = "Product"
            else:
                call["event"] = name
                call["properties"] = {
                    "product_id": "p1", "price": 19.5, "quantity": 1, "step": 1,
                    "x": rng.randrange(1200), "y": rng.randrange(800), "target": "#buy",
                }
            calls.append(call)
        out.append(json.dumps({"batch": calls}).encode())
    return out


async def produce(settings: Settings, bootstrap: str, messages: list[bytes]) -> None:
    async with IngestProducer(settings, bootstrap, linger_ms=20) as p:
        for m in messages:
            await p.send(m, source="segment")


async def raw_consume(settings: Settings, bootstrap: str, expect_events: int) -> float:
    """Events/s for aiokafka + json.loads over the ingest topic from the beginning."""
    topic = topic_name("ingest", settings.topic_prefix)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                max_partition_fetch_bytes=8 << 20, fetch_max_bytes=64 << 20)
    await consumer.start()
    try:
        # ensure_topics created it with settings.partitions partitions.
        parts = [TopicPartition(topic, p) for p in range(settings.partitions)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        seen = 0
        t0 = None
        while seen < expect_events:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            if t0 is None and batches:
                t0 = time.perf_counter()
            for records in batches.values():
                for r in records:
                    seen += len(json.loads(r.value)["batch"])
        return seen / (time.perf_counter() - (t0 or time.perf_counter()))
    finally:
        await consumer.stop()


_SAMPLE = re.compile(r'^frictionwatch_messages_total\{topic="(\w+)"\} ([0-9.e+]+)$', re.M)
_APPLIED = re.compile(r'^frictionwatch_events_applied_total\{agent="sessions"\} ([0-9.e+]+)$',
                      re.M)


def worker_rate(settings: Settings, bootstrap: str, n_messages: int, n_events: int,
                log: Path) -> tuple[float, float]:
    """(events/s, seconds) for the worker from its first ingest message to the last event
    applied to session state (older workers without that counter: the last canonical
    message, one per ingest message and session)."""
    with WorkerProcess(settings, bootstrap, log) as w:
        t_first = t_done = None
        deadline = time.monotonic() + 600
        last = time.perf_counter()
        while time.monotonic() < deadline:
            text = w.metrics_text()
            counts = {k: float(v) for k, v in _SAMPLE.findall(text)}
            applied = _APPLIED.search(text)
            now = time.perf_counter()
            # Each moment is somewhere between this scrape and the one before: the midpoint,
            # which errs either way, not always late (0.1 s at most, on runs of 5-10 s).
            if t_first is None and counts.get("ingest", 0) > 0:
                t_first = (last + now) / 2
            if (float(applied.group(1)) >= n_events if applied
                    else counts.get("web_events", 0) >= n_messages):
                t_done = (last + now) / 2
                break
            last = now
            # /metrics costs the worker a few ms per scrape: poll gently.
            time.sleep(0.2)
        if t_first is None or t_done is None:
            raise SystemExit(f"worker did not finish ({counts}, applied "
                             f"{applied and applied.group(1)}):\n{w.log_tail()}")
        return n_events / (t_done - t_first), t_done - t_first


def one_case(bootstrap: str, per_message: int, n_events: int, args: argparse.Namespace,
             tmp: Path, models: list[bool]) -> dict[str, float]:
    """One row: the raw consumer, then the worker with each ``models`` in that order, each on
    topics of its own holding the same messages (a worker's canonical topics must not hold
    another's)."""
    messages = segment_batches(n_events, per_message, args.sessions, args.seed)
    row: dict[str, float] = {}
    for on in [None, *models]:
        tag = uuid.uuid4().hex[:6]
        settings = load(topic_prefix=f"bench{tag}.", app_id=f"fwbench-{tag}",
                        partitions=args.partitions, web_host="127.0.0.1",
                        web_port=free_port(), data_dir=tmp / tag / "state")
        ensure_topics(settings, bootstrap)
        try:
            t0 = time.perf_counter()
            asyncio.run(produce(settings, bootstrap, messages))
            if on is None:
                print(f"  produced {n_events:,} events in {len(messages):,} messages "
                      f"({per_message}/message, {args.partitions} partitions) in "
                      f"{time.perf_counter() - t0:.1f} s", flush=True)
                row["raw"] = asyncio.run(raw_consume(settings, bootstrap, n_events))
                print(f"  raw: {row['raw']:,.0f} events/s", flush=True)
                continue
            run = settings.model_copy(update={"abandonment_model": on, "churn_model": on,
                                              "ticket_triage": on})
            rate, secs = worker_rate(run, bootstrap, len(messages), n_events,
                                     tmp / tag / f"worker{int(on)}.log")
            row["on" if on else "off"] = rate
            print(f"  worker, models {'on' if on else 'off'}: {rate:,.0f} events/s in {secs:.1f} s",
                  flush=True)
        finally:
            drop_topics(settings, bootstrap)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--per-message", type=int, nargs="+", default=[1, 20],
                    help="Segment calls per message; one row per value")
    ap.add_argument("--events", type=int, nargs="+", default=None,
                    help="events per row, one per --per-message value "
                    "(default: 300,000 at 1/message, 600,000 otherwise: runs of 5-10 s, "
                    "long beside the 0.2 s between the scrapes that time them)")
    ap.add_argument("--repeat", type=int, default=1, help="runs of every row")
    ap.add_argument("--sessions", type=int, default=5_000)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--broker", help="bootstrap servers; default: embedded tansu")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--models", choices=("both", "on", "off"), default="both",
                    help="run the worker with the online models, without, or both")
    ap.add_argument("--keep", metavar="DIR", help="keep the workers' logs and state in DIR")
    args = ap.parse_args()
    events = args.events or [300_000 if pm == 1 else 600_000 for pm in args.per_message]
    if len(events) != len(args.per_message):
        ap.error("--events takes one value per --per-message value")
    models = [False, True] if args.models == "both" else [args.models == "on"]

    rows: dict[int, list[dict[str, float]]] = {pm: [] for pm in args.per_message}
    with contextlib.ExitStack() as stack:
        tmp = args.keep or stack.enter_context(tempfile.TemporaryDirectory())
        bootstrap = stack.enter_context(broker_for(args.broker))
        print(f"broker {bootstrap}", flush=True)
        for run in range(args.repeat):
            for pm, n in zip(args.per_message, events, strict=True):
                print(f"run {run + 1}/{args.repeat}, {pm}/message:", flush=True)
                # Every other run the other way round: a run's second worker meets a broker
                # holding more topics and a warmer machine, and that must not count against
                # one setting.
                order = models if run % 2 == 0 else models[::-1]
                rows[pm].append(one_case(bootstrap, pm, n, args, Path(tmp), order))
    print()
    print(table(rows))


def table(rows: dict[int, list[dict[str, float]]]) -> str:
    """The rows as a Markdown table, then min and median of each ratio per calls/message.
    ``models cost``: 1 - (worker with the models / without), same run."""
    head = ("| calls/msg | run | raw ev/s | worker off ev/s | off/raw | worker on ev/s | on/raw "
            "| models cost |")
    lines = [head, "|" + "---|" * 8]
    summary = []
    for pm, runs in rows.items():
        ratios: dict[str, list[float]] = {"off/raw": [], "on/raw": [], "models cost": []}
        for i, r in enumerate(runs, 1):
            off, on = r.get("off"), r.get("on")
            cells = [f"{pm}", f"{i}", f"{r['raw']:,.0f}"]
            for rate, name in ((off, "off/raw"), (on, "on/raw")):
                if rate is None:
                    cells += ["", ""]
                else:
                    ratios[name].append(rate / r["raw"])
                    cells += [f"{rate:,.0f}", f"{rate / r['raw']:.3f}"]
            if off and on:
                ratios["models cost"].append(1 - on / off)
                cells.append(f"{1 - on / off:+.1%}")
            else:
                cells.append("")
            lines.append("| " + " | ".join(cells) + " |")
        for name, values in ratios.items():
            if values:
                fmt = "{:+.1%}" if name == "models cost" else "{:.3f}"
                summary.append(f"{pm}/msg {name}: min {fmt.format(min(values))}, median "
                               f"{fmt.format(statistics.median(values))} ({len(values)} runs)")
    return "\n".join(lines + [""] + summary)


if __name__ == "__main__":
    main()
