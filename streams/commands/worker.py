"""``frictionwatch worker``: run the Faust worker (agents, tables, collector, /metrics)."""

from __future__ import annotations

import asyncio
import gc
import shlex
from pathlib import Path
from typing import Annotated, Any

import typer

from streams import statestore
from streams.clientfixes import backoff_failed_metadata_updates
from streams.commands.common import BrokerOption, fail, kafka
from streams.logthrottle import throttle_client_logs
from streams.settings import Settings


def worker(
    broker: BrokerOption = None,
    web_port: Annotated[
        int | None, typer.Option(help="HTTP port for the collector, /metrics and /health.")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Directory for Faust's local state (tables).")
    ] = None,
    store: Annotated[
        str | None, typer.Option(help="Table store: memory:// or rocksdb:// (needs rocksdict).")
    ] = None,
    log_level: Annotated[str | None, typer.Option(help="Log level: DEBUG, INFO, WARNING.")] = None,
    reset_state: Annotated[
        bool,
        typer.Option(
            "--reset-state",
            help="Remove the local table state under the data dir (RocksDB; rebuilt from the "
            "changelog topics), then start. For state ahead of its changelog.",
        ),
    ] = False,
) -> None:
    """Run the stream worker: consume web and support events, keep per-session and
    per-customer state, serve the HTTP collector, /metrics and /health.

    Without a broker configured it starts an embedded one (handy to try the collector; run
    `frictionwatch demo` for the whole flow). Scale out by starting more workers with the same
    settings: Kafka spreads the partitions over them.
    """
    import faust

    from streams.app import create_worker

    _use_uvloop()

    with kafka(broker, web_port=web_port, data_dir=data_dir, store=store,
               log_level=log_level) as (settings, bootstrap):
        typer.echo(
            f"frictionwatch worker: Kafka {bootstrap}, "
            f"http://{settings.web_host}:{settings.web_port}/metrics",
            err=True,
        )
        w = create_worker(settings, bootstrap)
        # While no broker answers, aiokafka retries metadata in a busy loop and logs each try
        # (streams.clientfixes, streams.logthrottle).
        backoff_failed_metadata_updates()
        throttle_client_logs()
        _check_local_state(w.app, settings, bootstrap, reset_state,
                           fix=_fix_command(broker, data_dir, store))
        fw = faust.Worker(
            w.app, loglevel=settings.log_level.lower(), quiet=True, redirect_stdouts=False
        )
        # Faust's progress spinner sets the root logger to DEBUG (and its handler to the
        # level asked), so every debug() call in Faust and aiokafka built a record that was
        # then thrown away: about 5% of the worker's time on the hot path (py-spy, issue 14).
        fw.spinner = None
        _tune_gc()
        fw.execute_from_commandline()


def _use_uvloop() -> bool:
    """Run the worker's event loop on uvloop where it is installed (not on Windows): the loop's
    own cost per callback and socket read is about half asyncio's, and a worker runs tens of
    thousands of them a second (issue 14). Before the app exists, so it gets that loop."""
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


#: Allocations between young-generation collections (CPython's default is 700), and how many
#: collections of a generation before the next one's (the oldest: never by count; a timer
#: runs full collections, ``streams.memory.FULL_COLLECTION_INTERVAL``): see ``_tune_gc``.
GC_THRESHOLDS = (50_000, 20, 10**9)


def _tune_gc() -> None:
    """Make the cyclic garbage collector rare and keep the objects made at startup out of it.

    Every decoded event, bundle entry and send future is a tracked allocation, and with the
    defaults the young generations filled every 700 of them: objects alive across a batch's
    awaits were promoted, so full collections ran about twice a second, each a pause of about
    0.2 s over the worker's few hundred thousand objects. At 9,000 events/s paced
    (``bench/latency.py``) that was 10.3 of the worker's 29 CPU seconds; with these thresholds
    0.65 of 21. Reference counting still frees nearly everything at once; only cycles wait.

    A full collection scans every object the worker holds, about 0.3 s with a few tens of
    thousands of sessions, and stops both stages meanwhile: one of them was the whole p99 of
    the latency bench (866 ms in the 5 s it fell in, at most 163 ms in the others) while it
    found 129 objects to free. So they run on a timer, not when the counts say."""
    gc.collect()
    gc.freeze()  # modules, settings, the app: never garbage, never scanned again
    gc.set_threshold(*GC_THRESHOLDS)


def _check_local_state(app: Any, settings: Settings, bootstrap: str, reset: bool, fix: str
                       ) -> None:
    """Remove the local table state (``--reset-state``), or refuse to start on RocksDB state
    ahead of its changelog: Faust would stop with a bare ConsistencyError or, on an empty
    changelog, run on stale state (streams.statestore)."""
    tabledir = Path(app.conf.tabledir)
    if reset:
        if statestore.reset_state(tabledir):
            typer.echo(f"frictionwatch worker: removed the local table state {tabledir}",
                       err=True)
        return
    if settings.store != "rocksdb://" or not tabledir.is_dir():
        return
    offsets = statestore.local_offsets(tabledir)
    if not offsets:
        return
    changelog = {name: table.changelog_topic.get_topic_name()
                 for name, table in app.tables.items()}
    ends = statestore.changelog_ends(bootstrap, changelog.values(),
                                     settings.kafka_client_kwargs())
    ahead = statestore.ahead_of_changelog(offsets, changelog, ends)
    if ahead:
        raise fail(statestore.describe(ahead, tabledir, bootstrap, fix), code=1)


def _fix_command(broker: str | None, data_dir: Path | None, store: str | None) -> str:
    """The command that resets the state: this one with the options that locate it."""
    args = ["frictionwatch", "worker", "--reset-state"]
    for flag, value in (("--broker", broker), ("--data-dir", data_dir), ("--store", store)):
        if value is not None:
            args += [flag, str(value)]
    return shlex.join(args)


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)
