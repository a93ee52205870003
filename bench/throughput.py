"""Throughput bench: raw aiokafka consume+decode against the frictionwatch worker, same broker,
same topic, same run.

    python bench/throughput.py                      # embedded tansu broker
    python bench/throughput.py --broker host:9092   # a real Kafka

It produces ``--events`` Segment calls to a fresh ingest topic, ``--per-message`` calls per
message (one client's batch, as Segment's libraries send), then:

1. raw: an aiokafka consumer reads the topic from the start and ``json.loads`` every message
   (the ceiling: no framework, no state, no output);
2. worker: ``frictionwatch worker`` (a child process, as deployed) consumes the same topic from
   the start: normalize (adapters, validation, dead letters) -> canonical web-events topic ->
   sessions agent (per-session state, changelog). The clock runs from its first ingest message
   to the last canonical message applied, read from its /metrics.

It prints both rates and their ratio, for the worker without and with the online models
(``--models``: abandonment, churn and ticket triage, all on or all off), and the ratio of those
two.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import sys
import tempfile
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streams.broker import broker_for, free_port  # noqa: E402
from streams.kafka_io import IngestProducer, ensure_topics  # noqa: E402
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


def worker_rate(settings: Settings, bootstrap: str, n_messages: int, n_events: int,
                log: Path) -> tuple[float, float]:
    """(events/s, seconds) for the worker from its first ingest message to the last applied."""
    with WorkerProcess(settings, bootstrap, log) as w:
        t_first = t_done = None
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            counts = {k: float(v) for k, v in _SAMPLE.findall(w.metrics_text())}
            now = time.perf_counter()
            if t_first is None and counts.get("ingest", 0) > 0:
                # The first batch was already done when we saw it; a poll interval of error.
                t_first = now
            if counts.get("web_events", 0) >= n_messages:
                t_done = now
                break
            # /metrics costs the worker a few ms per scrape: poll gently.
            time.sleep(0.25)
        if t_first is None or t_done is None:
            raise SystemExit(f"worker did not finish:\n{w.log_tail()}")
        return n_events / (t_done - t_first), t_done - t_first


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=300_000)
    ap.add_argument("--per-message", type=int, default=20, help="Segment calls per message")
    ap.add_argument("--sessions", type=int, default=5_000)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--broker", help="bootstrap servers; default: embedded tansu")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--models", choices=("both", "on", "off"), default="both",
                    help="run the worker with the abandonment model, without, or both")
    args = ap.parse_args()

    tag = uuid.uuid4().hex[:6]
    with tempfile.TemporaryDirectory() as tmp, broker_for(args.broker) as bootstrap:
        settings = load(topic_prefix=f"bench{tag}.", app_id=f"fwbench-{tag}",
                        partitions=args.partitions, web_host="127.0.0.1", web_port=free_port(),
                        data_dir=Path(tmp) / "state")
        ensure_topics(settings, bootstrap)
        messages = segment_batches(args.events, args.per_message, args.sessions, args.seed)
        t0 = time.perf_counter()
        asyncio.run(produce(settings, bootstrap, messages))
        print(f"produced {args.events:,} events in {len(messages):,} messages "
              f"({args.per_message}/message, {args.partitions} partitions) "
              f"in {time.perf_counter() - t0:.1f} s to {bootstrap}")
        raw = asyncio.run(raw_consume(settings, bootstrap, args.events))
        print(f"raw aiokafka consume + json decode: {raw:12,.0f} events/s")
        rates = {}
        for models in ([False, True] if args.models == "both" else [args.models == "on"]):
            # A consumer group (app id) of its own per run: each reads the topic from the start.
            run = settings.model_copy(update={"abandonment_model": models, "churn_model": models,
                                              "ticket_triage": models,
                                              "app_id": f"{settings.app_id}-m{int(models)}"})
            rate, secs = worker_rate(run, bootstrap, len(messages), args.events,
                                     Path(tmp) / f"worker{int(models)}.log")
            rates[models] = rate
            print(f"frictionwatch worker (normalize -> sessions, state + changelog), "
                  f"models {'on' if models else 'off'}: "
                  f"{rate:12,.0f} events/s ({secs:.1f} s, {len(messages) / secs:,.0f} messages/s)"
                  f"; worker / raw: {rate / raw:.3f}")
        if len(rates) == 2:
            print(f"with the models / without: {rates[True] / rates[False]:.3f}")


if __name__ == "__main__":
    main()
