"""``frictionwatch replay FILE``: produce a JSONL file of events to the ingest topic at a chosen
rate. The work is ``streams.replay``; this module is the command line around it."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from streams.adapters.detect import SOURCES
from streams.commands.common import BrokerOption, fail, kafka


def _count_lines(path: Path) -> int:
    n = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            n += block.count(b"\n")
    return n


def _lines(path: Path) -> Iterator[bytes]:
    if str(path) == "-":
        yield from sys.stdin.buffer
        return
    with open(path, "rb") as f:
        yield from f


def replay(
    file: Annotated[Path, typer.Argument(
        help="JSONL file, one message per line ('-' reads standard input).",
        allow_dash=True, dir_okay=False, show_default=False,
    )],
    rate: Annotated[float, typer.Option(
        help="Messages per second; 0 = as fast as Kafka takes them.", min=0,
    )] = 0.0,
    source: Annotated[str, typer.Option(
        help="fw-source header for plain lines: auto (no header: the worker detects the "
        "format from the payload) or one of " + ", ".join(SOURCES) + ". Envelope lines "
        "(simulate --out) keep their own.",
    )] = "auto",
    skip_bad: Annotated[bool, typer.Option(
        "--skip-bad", help="Do not send lines that are not JSON (they are counted either way; "
        "by default they are sent and the worker dead-letters them as not_json).",
    )] = False,
    broker: BrokerOption = None,
) -> None:
    """Send a JSONL file of events to the ingest topic, one line per message.

    A line may be anything the worker reads: a Segment call or /v1/batch body, a GA4
    Measurement Protocol payload, a support-desk (Zendesk) webhook body, a canonical event or
    array, or a `frictionwatch simulate --out` envelope {"source", "key", "time", "payload"}.
    Lines that are not JSON are sent as they are (the worker dead-letters them with the reason)
    and counted in the summary; blank lines are skipped.

    Examples:

        frictionwatch replay traffic.jsonl --rate 500 --broker localhost:9092
        frictionwatch replay segment-export.jsonl --source segment
    """
    from streams.kafka_io import IngestProducer
    from streams.replay import ReplayStats
    from streams.replay import replay as run_replay
    from streams.sim.traffic import run_until_signal

    if source != "auto" and source not in SOURCES:
        raise fail(f"--source {source!r}: auto or one of {', '.join(SOURCES)}")
    if str(file) != "-" and not file.is_file():
        raise fail(f"{file}: no such file")
    total = None if str(file) == "-" else _count_lines(file)
    console = Console(stderr=True)
    with kafka(broker) as (settings, bootstrap):
        columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                   MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console) as progress:
            task = progress.add_task(f"replay to {settings.topic_prefix}ingest", total=total)

            def show(stats: ReplayStats) -> None:
                progress.update(task, completed=stats.sent + stats.skipped + stats.blank,
                                description=f"{stats.rate:,.0f}/s, {stats.bad:,} bad")

            async def main(stop: asyncio.Event) -> ReplayStats:
                async with IngestProducer(settings, bootstrap) as producer:
                    return await run_replay(_lines(file), producer, rate=rate, source=source,
                                            skip_bad=skip_bad, on_progress=show, stop=stop)

            stats = run_until_signal(main)
    sources = ", ".join(f"{k} {v:,}" for k, v in sorted(stats.by_source.items())) or "-"
    console.print(
        f"replay: sent {stats.sent:,} messages in {stats.elapsed:,.1f} s "
        f"({stats.rate:,.0f}/s; by fw-source: {sources})"
        + (" - stopped" if stats.stopped else "")
    )
    if stats.bad:
        fate = "skipped" if skip_bad else "sent; the worker dead-letters them as not_json"
        console.print(f"[yellow]{stats.bad:,} lines were not JSON ({fate})[/yellow]")
    if stats.blank:
        console.print(f"{stats.blank:,} blank lines skipped")


def register(app: typer.Typer) -> None:
    app.command("replay")(replay)
