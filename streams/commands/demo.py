"""``frictionwatch demo``: broker, worker and simulated shoppers in one command, watched live."""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.live import Live

from streams.broker import free_port
from streams.commands.common import BrokerOption, fail, kafka
from streams.demo import Watch, render
from streams.kafka_io import IngestProducer
from streams.settings import Settings
from streams.sim import Incident, SimConfig, Simulator, write_truth
from streams.sim.traffic import run_until_signal, send_live
from streams.worker_process import WorkerError, WorkerProcess

#: Input a real pipeline receives now and then; the demo sends some so dead letters show.
BAD_INPUT: tuple[tuple[bytes, str | None], ...] = (
    (b'{"type": "track", "event": "Checkout Started", "anonymousId": ', "segment"),  # cut off
    (json.dumps({"type": "track", "event": "Teleported", "messageId": "x",
                 "anonymousId": "a", "timestamp": "2026-01-01T00:00:00Z"}).encode(), "segment"),
    (json.dumps({"type": "page", "messageId": "y",
                 "timestamp": "2026-01-01T00:00:00Z"}).encode(), "segment"),  # no ids
    (json.dumps({"hello": "world"}).encode(), None),
)


def _port(preferred: int) -> int:
    """``preferred`` when it is free, else any free port (a worker may already run there)."""
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            return free_port()


class _DemoSink:
    """The producer, counting what goes out and slipping in a malformed message now and then."""

    def __init__(self, producer: IngestProducer, watch: Watch, bad_every: int) -> None:
        self.producer, self.watch, self.bad_every = producer, watch, bad_every

    async def send(self, value: bytes, key: bytes | None = None,
                   source: str | None = None) -> None:
        await self.producer.send(value, key=key, source=source)
        w = self.watch
        w.sent_messages += 1
        if self.bad_every and w.sent_messages % self.bad_every == 0:
            raw, bad_source = BAD_INPUT[(w.sent_messages // self.bad_every) % len(BAD_INPUT)]
            await self.producer.send(raw, source=bad_source)
            w.sent_bad += 1


async def _run(watch: Watch, sim: Simulator, settings: Settings, bootstrap: str,
               wall_seconds: float, speed: float, bad_every: int, live: Live,
               stop: asyncio.Event) -> bool:
    """Send, watch, let the worker catch up; False when ``stop`` came before the time was up."""
    done = asyncio.Event()
    timed_out = False

    def time_up() -> None:
        nonlocal timed_out
        timed_out = True
        stop.set()

    tail = asyncio.create_task(watch.tail(done))
    counted = 0

    def refresh() -> None:
        nonlocal counted
        for t in sim.truth[counted:]:
            watch.injected[t.friction] += 1
        counted = len(sim.truth)
        live.update(render(watch))

    async def scrape_loop() -> None:
        while not done.is_set():
            await asyncio.to_thread(watch.scrape)
            refresh()
            await asyncio.sleep(1.0)

    scraper = asyncio.create_task(scrape_loop())
    timer = asyncio.get_running_loop().call_later(wall_seconds, time_up)
    try:
        async with IngestProducer(settings, bootstrap) as producer:
            await send_live(sim.messages(), _DemoSink(producer, watch, bad_every), speed=speed,
                            stop=stop)
        # Let the worker catch up with what was sent (bounded: a demo must end).
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            await asyncio.to_thread(watch.scrape)
            refresh()
            processed = sum(watch.events_by_type.values())
            if (processed >= watch.sent_messages
                    and sum(watch.dead_by_reason.values()) >= watch.sent_bad):
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(1.0)  # the last changelog flush
    finally:
        timer.cancel()
        done.set()
        scraper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await scraper
        await tail
        refresh()
    return timed_out or not stop.is_set()


def demo(
    broker: BrokerOption = None,
    duration: Annotated[float, typer.Option(help="Wall-clock seconds of traffic.", min=1)] = 60,
    rate: Annotated[
        float, typer.Option(help="Simulated events per second of shop time.", min=0.1)
    ] = 60,
    speed: Annotated[
        float, typer.Option(help="Shop seconds per wall second (3: three minutes a minute).",
                            min=0.1)
    ] = 4,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed, the same shoppers.")] = 7,
    incident: Annotated[
        list[str] | None,
        typer.Option(help="Scheduled incident kind@start+duration[:key=value,...] in shop time; "
                     "repeatable. Default: payment_outage@60+120 (a provider declines most "
                     "cards for two minutes)."),
    ] = None,
    bad_every: Annotated[
        int, typer.Option(help="Send one malformed message every N messages (0: none), to "
                          "show dead letters.")
    ] = 150,
    truth: Annotated[
        Path | None, typer.Option(help="Write the ground truth (JSONL) of what was injected.")
    ] = None,
) -> None:
    """Run the whole flow on this machine: an embedded Kafka-compatible broker (unless --broker
    is given), the frictionwatch worker, and simulated shoppers with friction injected on
    purpose. Shows live what the worker sees, keeps and flags, then a summary."""
    console = Console()
    try:
        incidents = tuple(Incident.parse(s) for s in (incident or ["payment_outage@60+120"]))
    except ValueError as exc:
        raise fail(str(exc)) from None
    with tempfile.TemporaryDirectory(prefix="frictionwatch-demo-") as tmp, \
            contextlib.ExitStack() as stack:
        status = console.status("starting the broker and the worker (about 10 s)...")
        status.start()
        settings, bootstrap = stack.enter_context(
            kafka(broker, web_host="127.0.0.1", web_port=_port(6066),
                  data_dir=Path(tmp) / "state")
        )
        worker = WorkerProcess(settings, bootstrap, Path(tmp) / "worker.log")
        try:
            worker.start()
        except WorkerError as exc:
            raise fail(str(exc), code=1) from None
        finally:
            status.stop()
        _demo(console, worker, settings, bootstrap, duration, rate, speed, seed, incidents,
              bad_every, truth)


def _demo(console: Console, worker: WorkerProcess, settings: Settings, bootstrap: str,
          duration: float, rate: float, speed: float, seed: int,
          incidents: tuple[Incident, ...], bad_every: int, truth: Path | None) -> None:
    sim = Simulator(SimConfig(seed=seed, events_per_second=rate, start=time.time(),
                              incidents=incidents))
    watch = Watch(settings, bootstrap, worker.url)
    interrupted = False
    try:
        with Live(render(watch), console=console, refresh_per_second=4, transient=True) as live:

            async def main(stop: asyncio.Event) -> None:
                nonlocal interrupted
                finished = await _run(watch, sim, settings, bootstrap, duration, speed,
                                      bad_every, live, stop)
                interrupted = not finished

            # Ctrl-C ends the traffic early; the summary still comes.
            run_until_signal(main)
    finally:
        worker.stop()
    console.print(render(watch, final=True))
    _summary(console, watch, sim, speed, interrupted)
    if truth is not None:
        n = write_truth(sim, truth)
        console.print(f"ground truth: {n} records in {truth}")


def _summary(console: Console, watch: Watch, sim: Simulator, speed: float,
             interrupted: bool) -> None:
    processed = sum(watch.events_by_type.values())
    f = watch.funnel()
    incidents = ", ".join(i.label for i in sim.config.incidents) or "none"
    sources = Counter(watch.events_by_source)
    console.print(
        f"\n{'Interrupted. ' if interrupted else ''}In {watch.elapsed:.0f} s "
        f"({watch.elapsed * speed / 60:.1f} shop minutes) the worker processed "
        f"{processed:,} of {watch.sent_messages:,} events sent "
        f"({', '.join(f'{k} {v:,}' for k, v in sources.most_common())}), kept state for "
        f"{int(f['sessions']):,} sessions ({int(f['converted']):,} orders, revenue "
        f"{f['revenue']:,.2f}), and sent {sum(watch.dead_by_reason.values())} of "
        f"{watch.sent_bad} malformed messages to the dead-letter topic with their reasons.\n"
        f"Injected: {sum(watch.injected.values()):,} frictions, incidents: {incidents}. "
        f"Flagged by detectors: {sum(watch.signals_by_type.values()):,}; "
        f"{sum(watch.alerts_by_reason.values()):,} session alerts and {watch.chats:,} chat "
        f"offers sent; {watch.incidents:,} journey incident(s) opened."
    )
    if processed < watch.sent_messages:
        console.print(f"[yellow]The worker had not caught up: "
                      f"{watch.sent_messages - processed:,} events still queued.[/yellow]")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
