"""The ingest stage: raw payloads from the ingest topic become canonical events.

Each ingest message is normalized (``streams.normalize``: adapters, bounds, dead letters) and
its events are sent on by key, session events to the web-events topic and customer events to
the support-events topic, each tagged with the ingest position it came from, so the sessions
and customers agents can tell a re-send after a crash from new events. ``publish`` is also
what the collector uses for payloads that arrive over HTTP.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import faust

from detectors.events import encode_batch
from streams.context import Context, dead_letter, failed, header
from streams.normalize import Normalized, normalize
from streams.topics import ORIGIN_HEADER, SOURCE_HEADER

__all__ = ["register_ingest"]

Publish = Callable[..., Awaitable[None]]


def register_ingest(ctx: Context) -> Publish:
    """The normalize agent on the ingest topic; returns ``publish`` for the collector."""
    settings, metrics, guard = ctx.settings, ctx.metrics, ctx.guard
    web_topic, support_topic = ctx.topics["web_events"], ctx.topics["support_events"]
    m_events = metrics.events
    m_msgs = metrics.messages.labels(topic="ingest")
    m_batch = metrics.batch_seconds.labels(agent="normalize")
    m_latency = metrics.processing_latency.labels(agent="normalize")

    async def publish(out: Normalized, origin: bytes | None = None, at: Any = None,
                      stage: str = "collector") -> None:
        """Send normalized events on by key, and dead letters with their reason."""
        headers = [(ORIGIN_HEADER, origin)] if origin else None
        for topic, groups in ((web_topic, out.web), (support_topic, out.support)):
            for key, evs in groups.items():
                await guard.send(topic, key.encode(), encode_batch(evs), headers=headers,
                                 stage=stage, what="canonical events", at=at)
        await guard.dead(out.dead)
        for (fmt, etype), n in out.counts.items():
            m_events.labels(source=fmt, type=etype).inc(n)

    @ctx.app.agent(ctx.topics["ingest"], name="normalize")
    async def normalize_agent(stream: faust.StreamT[bytes]) -> None:
        async for batch in stream.take_events(*ctx.take):  # type: ignore[attr-defined]
            t0 = time.perf_counter()
            now = time.time()
            for event in batch:
                msg = event.message
                # Whatever this message does (RecursionError from JSON nested 1,000 deep, a
                # bug in an adapter), it becomes a dead letter and the batch goes on.
                try:
                    # One output message per input message and key, tagged with its origin,
                    # so the session agent can tell a re-send after a crash from new events.
                    out = normalize(
                        event.value,
                        header(msg.headers, SOURCE_HEADER),
                        max_bytes=settings.max_payload_bytes,
                        max_events=settings.max_events_per_message,
                        now=now,
                        topic=msg.topic,
                        partition=msg.partition,
                        offset=msg.offset,
                        max_age=settings.max_event_age,  # bounds: the event-time window
                        max_lead=settings.max_event_lead,
                    )
                    await publish(out, b"i%d:%d" % (msg.partition, msg.offset), event,
                                  "normalize")
                except Exception as exc:  # noqa: BLE001 - one message, not the batch
                    ctx.bug("normalize")
                    await guard.dead([dead_letter(event, "processing_error", failed(exc),
                                                  "normalize")])
            ctx.observe_latency(m_latency, batch)
            m_msgs.inc(len(batch))
            m_batch.observe(time.perf_counter() - t0)

    return publish
