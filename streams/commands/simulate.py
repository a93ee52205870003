"""``frictionwatch simulate``: realistic retail traffic with injected friction, live into Kafka
or to a file, and its ground truth. The generator is ``streams.sim``; the paced send loop
``streams.sim.traffic.send_live``."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Annotated

import msgspec
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from streams.commands.common import BrokerOption, fail, kafka
from streams.sim import (
    FRICTION_TYPES,
    INCIDENT_KINDS,
    Incident,
    SimConfig,
    Simulator,
    write_truth,
)
from streams.sim.tickets import TicketBurst

#: What runs when no --incident is given (and not --no-incidents): a payment provider declines
#: most cards for three minutes, ten minutes in: late enough for the journey incidents'
#: baselines to have warmed up (100 sessions through the step) at a few hundred events per
#: second, so the README's 20-minute example opens one.
DEFAULT_INCIDENTS = ("payment_outage@10m+3m",)

_INCIDENT_HELP = (
    "Schedule an incident: KIND@START+DURATION[:KEY=VALUE,...]; START and DURATION are seconds "
    "of event time after the start (suffix s, m or h allowed), e.g. payment_outage@60+120, "
    "broken_field@5m+2m:step=shipping,field=postal_code. Kinds and their keys: "
    + "; ".join(f"{k} ({', '.join(v)})" for k, v in INCIDENT_KINDS.items())
    + ". Repeat for several. Default: " + ", ".join(DEFAULT_INCIDENTS) + "."
)

_encoder = msgspec.json.Encoder()


def _parse_start(text: str | None) -> float:
    if text is None:
        return time.time()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise fail(f"--start {text!r}: Unix seconds or an ISO 8601 time") from None
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


def _parse_friction(items: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items:
        name, eq, value = item.partition("=")
        names = FRICTION_TYPES if name == "all" else (name,)
        try:
            p = float(value)
        except ValueError:
            p = -1.0
        if not eq or not 0 <= p <= 1 or not set(names) <= set(FRICTION_TYPES):
            raise fail(f"--friction {item!r}: TYPE=P with P in [0, 1]; TYPE is all or one of "
                       f"{', '.join(FRICTION_TYPES)}")
        out.update(dict.fromkeys(names, p))
    return out


def _status(sim: Simulator, sent: int, rate: float | None = None) -> str:
    when = datetime.fromtimestamp(sim.clock, UTC).strftime("%H:%M:%S")
    text = (f"{sent:,} sent · " if rate is None else f"{sent:,} sent · {rate:,.0f}/s · ") + (
        f"event time {when} · {sim.sessions:,} sessions · {sim.orders:,} orders · "
        f"{len(sim.truth):,} frictions")
    active = ", ".join(i.label for i in sim.active_incidents())
    return text + (f" · incident: {active}" if active else "")


def _summary(sim: Simulator, console: Console, where: str) -> None:
    done = [o for o in sim.outcomes if o.finished]
    converted = sum(o.converted for o in done)
    checkouts = sum(o.checkout for o in done)
    table = Table(title=f"frictionwatch simulate: {where}", show_header=False)
    table.add_column(justify="right")
    table.add_column()
    sent = sum(sim.counts.values())
    by_source = ", ".join(f"{k} {v:,}" for k, v in sim.counts.items())
    table.add_row("messages", f"{sent:,} ({by_source})")
    table.add_row("sessions", f"{sim.sessions:,} ({len(done):,} finished)")
    if done:
        table.add_row("converted", f"{converted / len(done):.1%} of finished sessions, "
                      f"{converted / max(1, checkouts):.0%} of checkouts")
    table.add_row("orders", f"{sim.orders:,}, revenue {sim.revenue:,.2f} {sim.config.currency}")
    counts: dict[str, int] = {}
    for t in sim.truth:
        counts[t.friction] = counts.get(t.friction, 0) + 1
    table.add_row("frictions", ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "-")
    console.print(table)


def simulate(
    rate: Annotated[float, typer.Option(
        help="Mean messages (events) per second of event time, in steady state.", min=0.001,
    )] = 200.0,
    duration: Annotated[float, typer.Option(
        help="Seconds of event time to produce; 0 = until Ctrl-C (live mode only).", min=0,
    )] = 0.0,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed and start give the "
                                      "same traffic.")] = 0,
    speed: Annotated[float, typer.Option(
        help="Event seconds per wall second in live mode: 1 = real time, 10 = ten times "
        "faster (send rate = rate x speed); 0 = as fast as Kafka takes them.", min=0,
    )] = 1.0,
    out: Annotated[Path | None, typer.Option(
        help="Write the payloads to this JSONL file instead of Kafka, one "
        '{"time", "source", "key", "payload"} envelope per line (what replay reads).',
        dir_okay=False,
    )] = None,
    truth: Annotated[Path | None, typer.Option(
        help="Write the ground truth here as JSONL at the end (also on Ctrl-C): incident, "
        "friction and outcome records.", dir_okay=False,
    )] = None,
    incident: Annotated[list[str] | None, typer.Option(help=_INCIDENT_HELP)] = None,
    no_incidents: Annotated[bool, typer.Option(
        "--no-incidents", help="No scheduled incidents (not even the default one).",
    )] = False,
    friction: Annotated[list[str] | None, typer.Option(
        help="Per-session friction chance, TYPE=P (repeatable; all=P sets every type). Types: "
        + ", ".join(FRICTION_TYPES) + ".",
    )] = None,
    ga4_share: Annotated[float, typer.Option(
        help="Share of sessions sent as GA4 payloads (the rest are Segment).", min=0, max=1,
    )] = 0.2,
    snowplow_share: Annotated[float, typer.Option(
        help="Share of sessions sent as Snowplow enriched events (JSON form).", min=0, max=1,
    )] = 0.0,
    posthog_share: Annotated[float, typer.Option(
        help="Share of sessions sent as PostHog events.", min=0, max=1,
    )] = 0.0,
    sessions: Annotated[int | None, typer.Option(
        help="Stop once this many sessions have started and run to their end, instead of "
        "--duration (their support tickets come up to a few hours of event time later).",
        min=1,
    )] = None,
    start: Annotated[str | None, typer.Option(
        help="Event time of the first message: Unix seconds or ISO 8601. Default: now.",
        show_default=False,
    )] = None,
    warmup: Annotated[float | None, typer.Option(
        help="Seconds simulated before the start without sending, so traffic starts in steady "
        "state. Default: 600, shorter at high rates.", min=0, show_default=False,
    )] = None,
    ticket_burst: Annotated[str | None, typer.Option(
        help="Extra support tickets about a new topic: TOPIC@START[+DURATION][:per_hour=N] "
        "(topics: promo_winter25, tracking_404; default 12 an hour), e.g. "
        "promo_winter25@30m:per_hour=20. Recorded in the truth.", show_default=False,
    )] = None,
    broker: BrokerOption = None,
) -> None:
    """Generate realistic shop traffic with injected friction and send it to the ingest topic
    (or write it to a file with --out).

    Sessions arrive at random, browse, add to cart, check out and pay, as Segment calls (most),
    GA4 payloads (and Snowplow or PostHog events, if asked) and Zendesk-style ticket webhooks.
    Friction of every kind frictionwatch detects is injected per session and by scheduled
    incidents, and changes behaviour (more people leave). The ground truth (--truth) lists
    every injected friction with its session, time, step and incident, and every session's
    outcome.

    Examples:

        frictionwatch simulate --rate 50 --broker localhost:9092
        frictionwatch simulate --rate 500 --duration 600 --out traffic.jsonl --truth truth.jsonl
        frictionwatch simulate --speed 10 --incident broken_field@2m+3m --incident slow_step@8m+2m
    """
    if out is not None and not duration and sessions is None:
        raise fail("--out needs --duration or --sessions (a file cannot grow until Ctrl-C)")
    specs = [] if no_incidents else list(incident or DEFAULT_INCIDENTS)
    try:
        incidents = tuple(Incident.parse(s) for s in specs)
        config = SimConfig(
            seed=seed,
            events_per_second=rate,
            duration=duration or None,
            max_sessions=sessions,
            start=_parse_start(start),
            warmup=warmup,
            friction=_parse_friction(friction or []),
            incidents=incidents,
            ga4_share=ga4_share,
            snowplow_share=snowplow_share,
            posthog_share=posthog_share,
            ticket_burst=TicketBurst.parse(ticket_burst) if ticket_burst else None,
        )
    except ValueError as exc:
        raise fail(str(exc)) from None
    console = Console(stderr=True)
    sim = Simulator(config)
    try:
        if out is not None:
            with open(out, "wb") as f:
                _to_file(sim, f, console)
            _summary(sim, console, f"wrote {out}")
        else:
            _live(sim, broker, speed, console)
    finally:
        if truth is not None:
            lines = write_truth(sim, truth)
            console.print(f"ground truth: {lines:,} records in {truth}")


def _to_file(sim: Simulator, f: IO[bytes], console: Console) -> None:
    cfg = sim.config
    total = cfg.duration or None
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("generating", total=total)
        buf: list[bytes] = []
        write = f.write
        for n, msg in enumerate(sim.messages(), 1):
            buf.append(_encoder.encode(msg.envelope()))
            if n % 5000 == 0:
                write(b"\n".join(buf) + b"\n")
                buf.clear()
                progress.update(task, completed=msg.time - cfg.start,
                                description=_status(sim, n))
        if buf:
            write(b"\n".join(buf) + b"\n")


def _live(sim: Simulator, broker: str | None, speed: float, console: Console) -> None:
    from streams.kafka_io import IngestProducer
    from streams.sim.traffic import SendStats, run_until_signal, send_live

    cfg = sim.config
    with kafka(broker) as (settings, bootstrap):
        console.print(f"frictionwatch simulate: {cfg.events_per_second:g} events/s x speed "
                      f"{speed:g} into {settings.topic_prefix}ingest on {bootstrap}; "
                      "Ctrl-C stops")
        columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                   TimeElapsedColumn())
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("starting (warm-up)", total=cfg.duration)

            def show(stats: SendStats) -> None:
                done = (stats.event_time - cfg.start) if stats.event_time else 0.0
                progress.update(task, completed=done,
                                description=_status(sim, stats.sent, stats.rate))

            async def main(stop: asyncio.Event) -> SendStats:
                async with IngestProducer(settings, bootstrap) as producer:
                    return await send_live(sim.messages(), producer, speed=speed,
                                           on_progress=show, stop=stop)

            stats = run_until_signal(main)
        _summary(sim, console, f"sent {stats.sent:,} messages in {stats.elapsed:,.1f} s"
                 + (" (stopped)" if stats.stopped else ""))


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)
