"""``frictionwatch report --out DIR``: the experiment's lift, KPIs, friction and incidents as an
HTML page with plots, from a file, simulated traffic or a worker's Kafka topics."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from kafka.errors import KafkaError
from rich.console import Console

from streams.commands.common import BrokerOption, fail
from streams.report import (
    PLOTS,
    gather_file,
    gather_journeys,
    gather_kafka,
    gather_simulated,
    headline,
    render,
)
from streams.settings import load
from streams.sim import Incident
from streams.sim.tickets import TicketBurst


def report(
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for index.html and its "
                                      "PNG plots (created if missing).", file_okay=False)],
    file: Annotated[Path | None, typer.Argument(help="JSONL of events (as for backtest): run "
                                                "the detection core over it.",
                                                exists=True, dir_okay=False)] = None,
    simulate: Annotated[float | None, typer.Option(help="Instead of a file: this many seconds "
                                                   "(event time) of simulated traffic.",
                                                   min=1)] = None,
    journeys: Annotated[int | None, typer.Option(help="Instead of a file: this many "
                                                 "simulated multi-session customer journeys "
                                                 "with known channel effects; the "
                                                 "attribution table shows the truth beside "
                                                 "each model's credit.", min=1)] = None,
    rate: Annotated[float, typer.Option(help="Simulated events per second (--simulate).",
                                        min=0.1)] = 100,
    seed: Annotated[int, typer.Option(help="Simulator seed (--simulate, --journeys).")] = 7,
    chat_effect: Annotated[float, typer.Option(help="True effect of a chat offer in the "
                                               "simulation: the share of shoppers about to "
                                               "leave after a checkout blocker that it keeps "
                                               "(--simulate).", min=0, max=1)] = 0.3,
    followup_effect: Annotated[float, typer.Option(help="True effect of a follow-up in the "
                                                   "simulation: the extra chance that a "
                                                   "followed-up abandoned shopper comes back "
                                                   "to order (--simulate; follow-ups need "
                                                   "FRICTIONWATCH_FOLLOWUPS=true).",
                                                   min=0, max=1)] = 0.0,
    followup_base: Annotated[float, typer.Option(help="Chance that an abandoned shopper "
                                                 "comes back to order on their own "
                                                 "(--simulate).", min=0, max=1)] = 0.0,
    incident: Annotated[list[str] | None, typer.Option(help="Scheduled incident in the "
                                                       "simulation, kind@start+duration (as "
                                                       "for simulate); repeatable.")] = None,
    ticket_burst: Annotated[str | None, typer.Option(help="Support ticket burst in the "
                                                     "simulation, TOPIC@START[+DURATION]"
                                                     "[:per_hour=N] (as for simulate).")
                            ] = None,
    control_share: Annotated[float | None, typer.Option(help="Share of units held out "
                                                        "(default: the settings'). Offline "
                                                        "only: a worker's arms are fixed.",
                                                        min=0.01, max=0.99)] = None,
    broker: BrokerOption = None,
    from_kafka: Annotated[bool, typer.Option("--from-kafka", help="Read the experiments, "
                                             "labels and alerts topics of the configured "
                                             "Kafka (FRICTIONWATCH_BOOTSTRAP_SERVERS); "
                                             "implied by --broker.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds allowed to read the topics.",
                                           min=1)] = 120,
) -> None:
    """Write an HTML report: the holdout experiment's conversion lift with its always-valid
    interval (over time, too), the checkout funnel of exposed sessions per arm, KPIs per
    journey, device and customer (churn, CLV), revenue at risk by friction type, the friction
    points that lost most money, journey incidents, and which channels attribution credits.
    Data: a JSONL FILE, --simulate SECONDS of traffic, --journeys N simulated customer
    journeys, or a worker's topics (--broker / --from-kafka)."""
    kafka = from_kafka or broker is not None
    if (file is not None) + (simulate is not None) + (journeys is not None) + kafka != 1:
        raise fail("give exactly one source: FILE, --simulate SECONDS, --journeys N, or "
                   "--broker/--from-kafka")
    if kafka and control_share is not None:
        raise fail("--control-share applies offline only: the worker's arms are already drawn")
    if followup_base + followup_effect > 1:
        raise fail("--followup-base and --followup-effect add up to more than 1")
    try:
        scheduled = tuple(Incident.parse(i) for i in incident or ())
        burst = TicketBurst.parse(ticket_burst) if ticket_burst else None
    except ValueError as exc:
        raise fail(str(exc)) from None
    if (scheduled or burst) and simulate is None:
        raise fail("--incident and --ticket-burst need --simulate")
    settings = load(bootstrap_servers=broker, holdout_control_share=control_share)
    console = Console(stderr=True)
    with console.status("gathering..."):
        if file is not None:
            data = gather_file(file, settings)
        elif journeys is not None:
            data = gather_journeys(settings, journeys, seed)
        elif simulate is not None:
            data = gather_simulated(settings, simulate, rate, seed, chat_effect, scheduled,
                                    burst, followup_effect=followup_effect,
                                    followup_base=followup_base)
        else:
            if not settings.bootstrap_servers:
                raise fail("no Kafka to read: pass --broker or set "
                           "FRICTIONWATCH_BOOTSTRAP_SERVERS")
            try:
                data = gather_kafka(settings, settings.bootstrap_servers, timeout=timeout)
            except (TimeoutError, OSError, KafkaError) as exc:
                raise fail(f"reading Kafka {settings.bootstrap_servers}: {exc}",
                           code=1) from None
    page = render(out, data, settings)
    echo = Console(soft_wrap=True)
    echo.print(f"wrote {page} and {len(PLOTS)} plots ({', '.join(PLOTS.values())})",
               highlight=False)
    for line in headline(data, settings):
        echo.print(line, highlight=False)


def register(app: typer.Typer) -> None:
    app.command("report")(report)
