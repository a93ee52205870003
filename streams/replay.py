"""Replay a JSONL file of events into the ingest topic (``frictionwatch replay``).

Each line is one Kafka message, in any format the worker reads: a Segment call or batch, a GA4
Measurement Protocol payload, a support-desk webhook body, a canonical event or array of them,
or the envelope ``frictionwatch simulate --out`` writes: ``{"source": ..., "payload": ...}``
(optional ``"key"`` and ``"time"``; no other fields).

- A plain line is sent byte for byte (trailing whitespace removed). Its ``fw-source`` header is
  the ``source`` given, or none ("auto"): the worker then detects the format. Its key is the
  session (or anonymous / client / customer) id when the payload names one, so one session's
  messages stay in order on one partition.
- An envelope line sends its ``payload`` with the envelope's own source and key (the
  ``source`` given applies to plain lines only).
- A Snowplow enriched TSV line (not JSON, with tabs) is sent as it is, keyed by its
  ``domain_sessionid``.
- A line that is not JSON is still sent as it is and counted as bad: the worker dead-letters it
  with reason ``not_json``, so bad input is never silently dropped (``skip_bad`` drops it
  here instead, still counted). Blank lines are not messages: they are counted and skipped.

>>> item = parse_line(b'{"type": "page", "anonymousId": "a1", "messageId": "m1"}')
>>> item.value[:15], item.key, item.source, item.bad
(b'{"type": "page"', b'a1', None, False)
>>> env = parse_line(b'{"source": "ga4", "key": "s1", "payload": {"client_id": "1.2", '
...                  b'"events": []}}')
>>> env.value, env.key, env.source, env.envelope
(b'{"client_id":"1.2","events":[]}', b's1', 'ga4', True)
>>> parse_line(b"not json").bad, parse_line(b"   ") is None
(True, True)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import msgspec

from streams.adapters.detect import SOURCES
from streams.adapters.snowplow import FIELDS
from streams.sim.traffic import Pacer, Sink

__all__ = ["ENVELOPE_KEYS", "ReplayItem", "ReplayStats", "ingest_key", "parse_line",
           "read_items", "replay"]

#: The fields of a ``simulate --out`` line; a line with exactly these (``source`` and
#: ``payload`` required) is an envelope.
ENVELOPE_KEYS = frozenset(("source", "payload", "key", "time"))

_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class ReplayItem:
    """One message to send."""

    value: bytes
    key: bytes | None
    #: ``fw-source`` header value; None: no header (the worker detects the format).
    source: str | None
    #: The line is not JSON (sent anyway unless skipped; the worker dead-letters it).
    bad: bool = False
    envelope: bool = False


def _str_id(value: Any) -> bytes | None:
    if type(value) is str and value:
        return value.encode()
    if type(value) is int:
        return str(value).encode()
    return None


def ingest_key(payload: Any) -> bytes | None:
    """The id a payload's events will be grouped by, as a Kafka key (None if none is found).

    Segment: ``context.sessionId``, else ``anonymousId``, else ``userId`` (of the first call of
    a batch); GA4: the first event's ``session_id``, else ``client_id``; Snowplow:
    ``domain_sessionid``, else ``domain_userid``; PostHog: ``properties.$session_id``, else
    ``distinct_id``; canonical: ``session_id``; support webhooks: the requester (support topics
    are keyed by customer).
    """
    if type(payload) is list:
        payload = payload[0] if payload else None
    if type(payload) is not dict:
        return None
    batch = payload.get("batch")
    if type(batch) is list and batch and type(batch[0]) is dict:
        payload = batch[0]
    if "session_id" in payload:  # canonical
        return _str_id(payload["session_id"])
    if "event_id" in payload:  # Snowplow (JSON form)
        return _str_id(payload.get("domain_sessionid") or payload.get("domain_userid"))
    props = payload.get("properties")
    if type(props) is dict and ("$session_id" in props or "distinct_id" in props):  # PostHog
        return _str_id(props.get("$session_id") or props.get("distinct_id"))
    ctx = payload.get("context")
    if type(ctx) is dict:
        key = _str_id(ctx.get("sessionId") or ctx.get("session_id"))
        if key:
            return key
    for name in ("anonymousId", "userId"):
        key = _str_id(payload.get(name))
        if key:
            return key
    events = payload.get("events")
    if type(events) is list:
        params = events[0].get("params") if events and type(events[0]) is dict else None
        key = _str_id(params.get("session_id")) if type(params) is dict else None
        return key or _str_id(payload.get("client_id") or payload.get("app_instance_id"))
    ticket = payload.get("ticket") or payload.get("detail")
    if type(ticket) is dict:
        requester = ticket.get("requester")
        if type(requester) is dict and requester.get("external_id"):
            return _str_id(requester["external_id"])
        return _str_id(ticket.get("requester_id"))
    return None


_TSV_SESSION = FIELDS.index("domain_sessionid")
_TSV_USER = FIELDS.index("domain_userid")


def _tsv_key(line: bytes) -> bytes | None:
    """A Snowplow TSV line's session id, else its domain user id."""
    fields = line.split(b"\t")
    if len(fields) != len(FIELDS):
        return None
    return fields[_TSV_SESSION] or fields[_TSV_USER] or None


def parse_line(line: bytes, source: str | None = None) -> ReplayItem | None:
    """The message for one line; None for a blank line. ``source`` is the header for plain
    lines (None or "auto": no header)."""
    # Not tabs: a Snowplow TSV line ends in tabs when its last fields are empty.
    data = line.strip(b" \r\n")
    if not data.strip():
        return None
    if source == "auto":
        source = None
    try:
        obj = _decoder.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError):
        if b"\t" in data and source in (None, "snowplow"):  # a Snowplow enriched TSV line
            return ReplayItem(data, _tsv_key(data), source)
        return ReplayItem(data, None, source, bad=True)
    if (type(obj) is dict and "payload" in obj and type(obj.get("source")) is str
            and ENVELOPE_KEYS.issuperset(obj)):
        key = obj.get("key")
        return ReplayItem(_encoder.encode(obj["payload"]),
                          _str_id(key) if key is not None else ingest_key(obj["payload"]),
                          obj["source"], envelope=True)
    return ReplayItem(data, ingest_key(obj), source)


def read_items(lines: Iterable[bytes], source: str | None = None,
               blank: list[int] | None = None) -> Iterator[ReplayItem]:
    """The messages of ``lines``; blank lines are counted in ``blank[0]`` if given."""
    if source not in (None, "auto", *SOURCES):
        raise ValueError(f"unknown source {source!r}; one of auto, {', '.join(SOURCES)}")
    for line in lines:
        item = parse_line(line, source)
        if item is None:
            if blank is not None:
                blank[0] += 1
            continue
        yield item


@dataclass
class ReplayStats:
    sent: int = 0
    #: Lines that were not JSON (sent unless skipped).
    bad: int = 0
    skipped: int = 0
    blank: int = 0
    envelopes: int = 0
    #: Messages sent by header value ("auto": no header).
    by_source: dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0
    stopped: bool = False

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed if self.elapsed > 0 else 0.0


async def replay(
    lines: Iterable[bytes],
    sink: Sink,
    *,
    rate: float = 0.0,
    source: str | None = None,
    skip_bad: bool = False,
    on_progress: Callable[[ReplayStats], None] | None = None,
    stop: asyncio.Event | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    progress_every: float = 0.25,
) -> ReplayStats:
    """Send the messages of ``lines`` to ``sink`` at ``rate`` messages per second (0: as fast
    as it takes them): message ``i`` is due ``i / rate`` seconds after the first."""
    stats = ReplayStats()
    blank = [0]
    pacer = Pacer(clock, sleep, stop)
    start = clock()
    next_report = start + progress_every
    index = 0

    def report(now: float) -> None:
        nonlocal next_report
        stats.elapsed = now - start
        stats.blank = blank[0]
        if on_progress is not None:
            on_progress(stats)
        next_report = now + progress_every

    for item in read_items(lines, source, blank):
        if pacer.stopped:
            stats.stopped = True
            break
        if item.bad:
            stats.bad += 1
            if skip_bad:
                stats.skipped += 1
                continue
        if rate > 0:
            await pacer.wait_until(start + index / rate)
            if pacer.stopped:
                stats.stopped = True
                break
        elif index % 500 == 499:
            await sleep(0)
        index += 1
        await sink.send(item.value, item.key, item.source)
        stats.sent += 1
        stats.envelopes += item.envelope
        label = item.source or "auto"
        stats.by_source[label] = stats.by_source.get(label, 0) + 1
        now = clock()
        if now >= next_report:
            report(now)
    report(clock())
    return stats
