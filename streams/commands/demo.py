"""``frictionwatch demo``: broker, worker and simulated shoppers in one command, watched live."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator
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
from streams.sim import Incident, SimConfig, SimMessage, Simulator, write_truth
from streams.sim.traffic import run_until_signal, send_live
from streams.worker_process import WorkerError, WorkerProcess

# After the live part, wait for the worker while it still makes progress (a loaded machine can
# leave it minutes behind the history burst), but never longer than this.
CATCH_UP_MAX_SECONDS = 180.0
CATCH_UP_STALL_SECONDS = 15.0

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


def split_at(messages: Iterable[SimMessage], t: float
             ) -> tuple[Iterator[SimMessage], Iterator[SimMessage]]:
    """The messages before event time ``t``, then the rest (consume the first part first).

    >>> msgs = [SimMessage(float(i), "segment", None, {}) for i in range(5)]
    >>> before, after = split_at(msgs, 2.5)
    >>> [m.time for m in before], [m.time for m in after]
    ([0.0, 1.0, 2.0], [3.0, 4.0])
    """
    it = iter(messages)
    held: list[SimMessage] = []

    def before() -> Iterator[SimMessage]:
        for m in it:
            if m.time >= t:
                held.append(m)
                return
            yield m

    def after() -> Iterator[SimMessage]:
        yield from held
        yield from it

    return before(), after()


async def _run(watch: Watch, sim: Simulator, settings: Settings, bootstrap: str,
               wall_seconds: float, speed: float, bad_every: int, live: Live,
               stop: asyncio.Event, live_from: float) -> bool:
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
    timer: asyncio.TimerHandle | None = None
    try:
        async with IngestProducer(settings, bootstrap) as producer:
            sink = _DemoSink(producer, watch, bad_every)
            history, now = split_at(sim.messages(), live_from)
            # The shop's recent past, as fast as the worker takes it: the journey incidents'
            # baselines need some hundred sessions through each step before they watch it.
            await send_live(history, sink, speed=0, stop=stop)
            watch.history_messages = watch.sent_messages
            watch.live_started = time.monotonic()
            timer = asyncio.get_running_loop().call_later(wall_seconds, time_up)
            await send_live(now, sink, speed=speed, stop=stop)
        # Let the worker catch up with what was sent. On a busy machine the worker may still be
        # well behind (the history burst), so wait while it makes progress, not a fixed time;
        # bounded all the same, because a demo must end.
        start = time.monotonic()
        stalled_since, last = start, -1
        while time.monotonic() - start < CATCH_UP_MAX_SECONDS:
            await asyncio.to_thread(watch.scrape)
            refresh()
            processed = sum(watch.events_by_type.values())
            if (processed >= watch.sent_messages
                    and sum(watch.dead_by_reason.values()) >= watch.sent_bad):
                break
            if processed > last:
                stalled_since, last = time.monotonic(), processed
            elif time.monotonic() - stalled_since > CATCH_UP_STALL_SECONDS:
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(1.0)  # the last changelog flush
    finally:
        if timer is not None:
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
    history: Annotated[
        float, typer.Option(help="Shop minutes of past traffic sent at once before the live "
                            "part, so the incident baselines are warm (0: none; then "
                            "incidents cannot open in a short demo).", min=0)
    ] = 45,
    incident: Annotated[
        list[str] | None,
        typer.Option(help="Scheduled incident kind@start+duration[:key=value,...] in shop time "
                     "from the start of the live part; repeatable. Default: "
                     "payment_outage@60+180 (a provider declines most cards for three "
                     "minutes)."),
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
        incidents = tuple(Incident.parse(s) for s in (incident or ["payment_outage@60+180"]))
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
              bad_every, truth, history * 60)


def _demo(console: Console, worker: WorkerProcess, settings: Settings, bootstrap: str,
          duration: float, rate: float, speed: float, seed: int,
          incidents: tuple[Incident, ...], bad_every: int, truth: Path | None,
          history: float = 0.0) -> None:
    # Shop time starts ``history`` seconds ago; the incidents are scheduled from now on.
    start = time.time() - history
    sim = Simulator(SimConfig(
        seed=seed, events_per_second=rate, start=start,
        incidents=tuple(dataclasses.replace(i, start=i.start + history) for i in incidents)))
    watch = Watch(settings, bootstrap, worker.url)
    interrupted = False
    try:
        with Live(render(watch), console=console, refresh_per_second=4, transient=True) as live:

            async def main(stop: asyncio.Event) -> None:
                nonlocal interrupted
                finished = await _run(watch, sim, settings, bootstrap, duration, speed,
                                      bad_every, live, stop, start + history)
                interrupted = not finished

            # Ctrl-C ends the traffic early; the summary still comes.
            run_until_signal(main)
    finally:
        worker.stop()
    console.print(render(watch, final=True))
    _summary(console, watch, sim, speed, interrupted, history / 60)
    if truth is not None:
        n = write_truth(sim, truth)
        console.print(f"ground truth: {n} records in {truth}")


def _summary(console: Console, watch: Watch, sim: Simulator, speed: float,
             interrupted: bool, history_minutes: float = 0.0) -> None:
    processed = sum(watch.events_by_type.values())
    f = watch.funnel()
    incidents = ", ".join(
        f"{i.kind} from shop minute {(i.start - history_minutes * 60) / 60:g} of the live part "
        f"for {i.duration / 60:g} min" for i in sim.config.incidents) or "none"
    sources = Counter(watch.events_by_source)
    console.print(
        f"\n{'Interrupted. ' if interrupted else ''}The demo sent {watch.sent_messages:,} "
        f"messages of shop traffic, one event each ({watch.history_messages:,} of them the "
        f"shop's past {history_minutes:.0f} minutes, at once; then {watch.live_elapsed:.0f} s "
        f"live, {watch.live_elapsed * speed / 60:.1f} shop minutes), and {watch.sent_bad} "
        f"malformed "
        f"messages. The worker processed {processed:,} events "
        f"({', '.join(f'{k} {v:,}' for k, v in sources.most_common())}), kept state for "
        f"{int(f['sessions']):,} sessions ({int(f['converted']):,} orders, revenue "
        f"{f['revenue']:,.2f}), and sent {sum(watch.dead_by_reason.values())} of the "
        f"{watch.sent_bad} malformed messages to the dead-letter topic with their reasons.\n"
        f"Injected: {sum(watch.injected.values()):,} frictions, incidents: {incidents}. "
        f"Flagged by detectors: {sum(watch.signals_by_type.values()):,}; "
        f"{sum(watch.alerts_by_reason.values()):,} session alerts and {watch.chats:,} chat "
        f"offers sent; {watch.incidents:,} journey incident(s) opened."
    )
    if processed < watch.sent_messages:
        console.print(f"[yellow]The worker had not caught up: "
                      f"{watch.sent_messages - processed:,} messages still queued.[/yellow]")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
