"""The ``frictionwatch`` command. Each subcommand lives in its own module under
``streams/commands/`` and delegates to library code; this file only assembles them."""

from __future__ import annotations

import typer

from streams.commands import (
    backtest,
    deliver,
    demo,
    evaluate,
    replay,
    report,
    simulate,
    topics,
    worker,
)

app = typer.Typer(
    name="frictionwatch",
    help=(
        "Real-time customer-experience friction detection. Web and support events flow "
        "through Kafka into a Faust worker that keeps per-session state, flags where customers "
        "get stuck, and exports metrics to Prometheus.\n\n"
        "With no Kafka configured (FRICTIONWATCH_BOOTSTRAP_SERVERS or --broker), commands "
        "start an embedded broker. Start with: frictionwatch demo"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Docstrings wrap at the source's line length; markdown joins a paragraph's lines again.
    rich_markup_mode="markdown",
)



@app.callback()
def _root() -> None:
    # A callback keeps typer in multi-command mode even while only one subcommand exists.
    pass


for module in (worker, simulate, replay, backtest, evaluate, report, demo, topics, deliver):
    module.register(app)


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
