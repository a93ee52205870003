"""The ingest stage: raw payloads from the ingest topic become canonical events.

The ingest topic is read by the bulk ingest stage (``streams.bulk``), an aiokafka loop in a
consumer group of its own (``<app id>-ingest``) that runs with the worker, in a process of its
own by default (``streams.ingest_process``): each fetch of up to
5,000 messages is normalized (``streams.normalize``: adapters, bounds, dead letters) and sent
on as one bundle per canonical partition (``streams.bundle``), each key's events tagged with
the ingest position they came from, so the sessions and customers agents can tell a re-send
after a crash from new events. A Faust agent per message costs about 150 us of framework
alone; the stage costs a few us per message on top of normalize (issue 14).

``publish`` is what the collector uses for payloads that arrive over HTTP: their events go
straight to the canonical topics, one bundle per partition and request, with no ingest origin
(nothing re-sends them; the agents use the bundle's own position).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from streams.bulk import BulkIngest, Partitioner, register_bulk_ingest
from streams.bundle import Entry, encode_bundle
from streams.context import Context
from streams.ingest_process import IngestProcess
from streams.normalize import Normalized

__all__ = ["register_ingest"]

Publish = Callable[..., Awaitable[None]]


def register_ingest(ctx: Context, bootstrap: str
                    ) -> tuple[Publish, BulkIngest | IngestProcess]:
    """The bulk ingest stage on the ingest topic; returns ``publish`` for the collector and
    the stage (its lag and failures for /health)."""
    app, settings, metrics, guard = ctx.app, ctx.settings, ctx.metrics, ctx.guard
    web_topic, support_topic = ctx.topics["web_events"], ctx.topics["support_events"]
    m_events = metrics.events
    partitioner = Partitioner()

    def partitions(topic: Any) -> int:
        """The topic's partitions as the consumer's metadata has them (as the producer's)."""
        n = app.consumer.topic_partitions(topic.get_topic_name()) if app.consumer else None
        return n or settings.partitions

    async def publish(out: Normalized, at: Any = None, stage: str = "collector") -> None:
        """Send normalized events on, one bundle per partition, and dead letters with their
        reason."""
        for topic, groups in ((web_topic, out.web), (support_topic, out.support)):
            if not groups:
                continue
            n = partitions(topic)
            by_partition: dict[int, list[Entry]] = {}
            for key, evs in groups.items():
                by_partition.setdefault(partitioner(key, n), []).append(Entry(key, None, evs))
            # Keyed by its first key: the producer's partitioner puts the bundle where all
            # its keys belong.
            for entries in by_partition.values():
                await guard.send(topic, entries[0].key.encode(), encode_bundle(entries),
                                 stage=stage, what="canonical events", at=at)
        await guard.dead(out.dead)
        for (fmt, etype), n in out.counts.items():
            m_events.labels(source=fmt, type=etype).inc(n)

    stage = register_bulk_ingest(app, settings, bootstrap, metrics, guard.limit)
    return publish, stage
