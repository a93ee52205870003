"""``frictionwatch deliver``: send alerts and chat triggers to Slack, Intercom, Zendesk and a
signed webhook (``streams.deliver``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Annotated

import typer

from streams.commands.common import BrokerOption, kafka


def deliver(
    broker: BrokerOption = None,
    metrics_port: Annotated[
        int | None, typer.Option(help="Port of /metrics (0: none). Default: "
                                      "FRICTIONWATCH_DELIVER_METRICS_PORT, 6067.")
    ] = None,
    log_level: Annotated[str | None, typer.Option(help="Log level: DEBUG, INFO, WARNING.")] = None,
) -> None:
    """Deliver alerts and chat triggers to the tools CX teams use, in a consumer group of its
    own, beside the worker.

    Destinations are configured with FRICTIONWATCH_DELIVER_* settings (README, "Delivery");
    with none configured it reads and counts, and sends nothing. An offset is committed only
    once its document's deliveries are done, so a crash re-reads it; a journal under the data
    dir keeps it from being sent twice.
    """
    from prometheus_client import REGISTRY, start_http_server

    from streams.deliver.runner import Deliverer, deliver_group, destinations_from
    from streams.metrics import METRICS, DeliveryMetrics

    with kafka(broker, deliver_metrics_port=metrics_port, log_level=log_level) as (
            settings, bootstrap):
        logging.basicConfig(level=settings.log_level.upper(),
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        destinations = destinations_from(settings)
        names = ", ".join(d.name for d in destinations) or "none (nothing is sent)"
        typer.echo(f"frictionwatch deliver: Kafka {bootstrap}, group {deliver_group(settings)}, "
                   f"destinations: {names}", err=True)
        dm = DeliveryMetrics(REGISTRY)
        if settings.deliver_metrics_port:
            start_http_server(settings.deliver_metrics_port, addr=settings.web_host)
        asyncio.run(_run(Deliverer(settings, bootstrap, destinations, METRICS, dm)))


async def _run(deliverer: object) -> None:
    from streams.deliver.runner import Deliverer

    assert isinstance(deliverer, Deliverer)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, deliverer.stop_soon)
    await deliverer.start()
    try:
        await deliverer.run()
    finally:
        await deliverer.stop()


def register(app: typer.Typer) -> None:
    app.command(name="deliver")(deliver)
