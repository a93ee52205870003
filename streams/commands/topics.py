"""``frictionwatch topics``: list every topic with its key and schema."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from streams.settings import load
from streams.topics import TOPICS, topic_name


def topics() -> None:
    """List every Kafka topic frictionwatch uses, with its key and value schema."""
    settings = load()
    table = Table(title="frictionwatch topics", show_lines=True)
    for col in ("topic", "key", "value schema", "purpose"):
        table.add_column(col)
    for logical, spec in TOPICS.items():
        table.add_row(topic_name(logical, settings.topic_prefix), spec.key, spec.schema, spec.doc)
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.command("topics")(topics)
