"""``frictionwatch worker``: run the Faust worker (agents, tables, collector, /metrics)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated, Any

import typer

from streams import statestore
from streams.clientfixes import backoff_failed_metadata_updates
from streams.commands.common import BrokerOption, fail, kafka
from streams.logthrottle import throttle_client_logs
from streams.metrics import METRICS, watch_gc
from streams.runtime import tune_gc, use_uvloop
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

    use_uvloop()

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
        tune_gc()
        watch_gc(METRICS, "worker")
        fw.execute_from_commandline()


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
