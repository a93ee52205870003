"""Options and helpers shared by the subcommands."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated

import typer

from streams.broker import broker_for
from streams.kafka_io import ensure_topics
from streams.settings import Settings, load

BrokerOption = Annotated[
    str | None,
    typer.Option(
        "--broker",
        "-b",
        help="Kafka bootstrap servers (host:port,...). Default: FRICTIONWATCH_BOOTSTRAP_SERVERS, "
        "else an embedded tansu broker started for this command.",
        show_default=False,
    ),
]


@contextlib.contextmanager
def kafka(broker: str | None, **overrides: object) -> Iterator[tuple[Settings, str]]:
    """Settings and bootstrap servers, starting an embedded broker when none is configured.

    Declared topics are created before the caller runs.
    """
    settings = load(bootstrap_servers=broker, **overrides)
    with broker_for(settings.bootstrap_servers) as bootstrap:
        ensure_topics(settings, bootstrap)
        yield settings, bootstrap


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print a user error to stderr and return the exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)
