"""Support trends in the worker: which ticket topics are rising (``models.trends``).

The customers agent forwards what the model learns from (new tickets, and session summaries
that carry friction) to the trend-events topic under one key, so one worker sees every
customer partition's tickets and one model judges them; volumes are tens to hundreds of
tickets an hour, which one partition carries easily. The trends agent feeds them to a
``TrendWatch`` and sends what it says to the support-trends topic, keyed by topic, with the
knowledge-base article that covers each (``FRICTIONWATCH_KB_ARTICLES``), if any.

The model lives in the agent's memory: a worker that starts, or takes the partition over,
starts with no baseline and reports nothing for its warm-up (6 hours of event time).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import faust
import msgspec

from detectors.events import SessionSummary, Ticket, decode_batch, encode_batch
from models.trends import TrendWatch
from streams.deadletter import decode_reason
from streams.guard import Guard
from streams.settings import Settings

__all__ = ["TREND_KEY", "for_trends", "register_trends", "trend_batches"]

STAGE = "trends"
#: The trend-events topic's one key.
TREND_KEY = b"all"
#: Events per trend-events message: far below the producer's limit at the largest tickets.
CHUNK = 50


def for_trends(events: Iterable[Any]) -> list[Any]:
    """What the trends model learns from: new tickets, and session summaries with friction.

    >>> t = Ticket(id="t", time=1.0, session_id="s", customer_id="c", action="created",
    ...            ticket_id="1", subject="Tracking link 404")
    >>> for_trends([t, Ticket(id="u", time=2.0, session_id="s", customer_id="c",
    ...                       action="solved", ticket_id="1")]) == [t]
    True
    """
    return [e for e in events if (type(e) is Ticket and e.action == "created")
            or (type(e) is SessionSummary and e.friction)]


def trend_batches(events: Sequence[Any]) -> list[bytes]:
    """``events`` as trend-events message values, ``CHUNK`` events each."""
    return [encode_batch(list(events[i:i + CHUNK])) for i in range(0, len(events), CHUNK)]


def register_trends(app: faust.App, settings: Settings, topics: dict[str, faust.TopicT],
                    guard: Guard) -> TrendWatch:
    """The trends agent; returns its ``TrendWatch``."""
    watch = TrendWatch(articles=settings.kb_articles)
    out = topics["support_trends"]

    @app.agent(topics["trend_events"], name=STAGE)
    async def trends_agent(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            try:
                evs = decode_batch(event.value or b"")
            except (msgspec.DecodeError, RecursionError) as exc:
                await guard.dead([guard.letter(decode_reason(exc), str(exc), STAGE,
                                               event.value, event)])
                continue
            try:
                for e in evs:
                    for rec in watch.update(e):
                        await guard.send(out, rec["topic"].encode(), msgspec.json.encode(rec),
                                         stage=STAGE, what="support trend", at=event)
            except Exception as exc:  # noqa: BLE001 - one record must not end the agent
                guard.errors.exception(f"agent:{STAGE}", "a trend-events record failed")
                await guard.dead([guard.letter("processing_error", f"{type(exc).__name__}: "
                                               f"{exc}", STAGE, event.value, event)])

    return watch
