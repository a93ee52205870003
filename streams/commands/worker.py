"""``frictionwatch worker``: run the Faust worker (agents, tables, collector, /metrics)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from streams.commands.common import BrokerOption, kafka


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
) -> None:
    """Run the stream worker: consume web and support events, keep per-session and
    per-customer state, serve the HTTP collector, /metrics and /health.

    Without a broker configured it starts an embedded one (handy to try the collector; run
    `frictionwatch demo` for the whole flow). Scale out by starting more workers with the same
    settings: Kafka spreads the partitions over them.
    """
    import faust

    from streams.app import create_worker

    with kafka(broker, web_port=web_port, data_dir=data_dir, store=store,
               log_level=log_level) as (settings, bootstrap):
        typer.echo(
            f"frictionwatch worker: Kafka {bootstrap}, "
            f"http://{settings.web_host}:{settings.web_port}/metrics",
            err=True,
        )
        w = create_worker(settings, bootstrap)
        faust.Worker(
            w.app, loglevel=settings.log_level.lower(), quiet=True, redirect_stdouts=False
        ).execute_from_commandline()


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)
