"""Support trends in the worker: which ticket topics are rising (``models.trends``).

The customers agent forwards what the model learns from (new tickets, and session summaries
that carry friction) to the trend-events topic under one key, so one worker sees every
customer partition's tickets and one model judges them; volumes are tens to hundreds of
tickets an hour, which one partition carries easily. The trends agent feeds them to a
``TrendWatch`` and sends what it says to the support-trends topic, keyed by topic, with the
knowledge-base article that covers each (``FRICTIONWATCH_KB_ARTICLES``), if any.

The model is checkpointed with the others (``streams.learning``: under the data dir, and on
the checkpoints topic), so a restarted worker keeps its baselines. A worker that takes the
partition over starts from the published copy only if it learned more than its own: every
worker publishes its copy, so the one written last wins, as for the other models, and a new
owner may start with no baseline and report nothing for its warm-up (6 hours of event time).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import faust
import msgspec

from detectors.events import SessionSummary, Ticket, decode_batch, encode_batch
from models.trends import MAX_TEXT, TrendWatch
from streams.deadletter import decode_reason
from streams.guard import Guard
from streams.settings import Settings

__all__ = ["TREND_KEY", "for_trends", "register_trends", "trend_batches"]

STAGE = "trends"
#: The trend-events topic's one key.
TREND_KEY = b"all"
#: Events per trend-events message. A forwarded ticket is at most about 20 KB of JSON (its
#: subject, 2,048 characters, and the text the model reads, every character escaped), so a
#: message stays far below the producer's 1 MiB limit.
CHUNK = 20


def for_trends(events: Iterable[Any]) -> list[Any]:
    """What the trends model learns from: new tickets (their text cut to what the model
    reads, no tags), and session summaries with friction.

    >>> t = Ticket(id="t", time=1.0, session_id="s", customer_id="c", action="created",
    ...            ticket_id="1", subject="Tracking link 404", text="x" * 5000, tags=("a",))
    >>> [f] = for_trends([t, Ticket(id="u", time=2.0, session_id="s", customer_id="c",
    ...                             action="solved", ticket_id="1")])
    >>> f.subject, len(f.text), f.tags
    ('Tracking link 404', 600, ())
    """
    out: list[Any] = []
    for e in events:
        if type(e) is Ticket and e.action == "created":
            out.append(msgspec.structs.replace(e, text=e.text[:MAX_TEXT] if e.text else e.text,
                                               tags=()))
        elif type(e) is SessionSummary and e.friction:
            out.append(e)
    return out


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
