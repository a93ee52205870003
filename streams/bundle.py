"""The value of a canonical-topic message (web-events, support-events): a bundle of entries,
each one key's events from one place, so one Kafka message carries many sessions' events.

A bundle is a JSON object ``{"entries": [[key, origin, [event, ...]], ...]}``:

- ``key``: the session id (web-events) or customer id (support-events) the events belong to;
  the message is on the partition the producer's partitioner gives that key (murmur2), so all
  of a key's state stays on one partition;
- ``origin``: ``"<name>:<offset>"``, where the events came from, e.g. ``"i3:1207"`` for offset
  1207 of ingest partition 3; state keeps the highest offset applied per origin name and skips
  an entry at or below it (``detectors.session.is_replay``), so a bundle re-sent after a crash,
  however differently it is cut, applies each ingest message's events once. ``null``: the
  message's own topic position is the origin (the collector and the session summaries, which
  no stage re-sends);
- the events, validated against their bounds on decode like every canonical event.

A JSON array (the older one-key value: one key's events, the key in the Kafka key) is still
read, as a bundle of one entry with a ``null`` origin.

>>> from detectors.events import PageView
>>> e = PageView(id="e1", session_id="s1", time=1.0, url="/")
>>> data = encode_bundle([Entry("s1", "i0:7", [e])])
>>> data
b'{"entries":[["s1","i0:7",[{"type":"page_view","id":"e1","time":1.0,"session_id":"s1","url":"/"}]]]}'
>>> [(x.key, x.origin, len(x.events)) for x in decode_bundle(data)]
[('s1', 'i0:7', 1)]
>>> from detectors.events import encode_batch
>>> [(x.key, x.origin) for x in decode_bundle(encode_batch([e]), b"s1")]
[('s1', None)]
>>> parse_origin("i0:7"), parse_origin(None)
(('i0', 7), None)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any

import msgspec

from detectors.bounds import ID_CHARS
from detectors.events import Event, decode_batch

__all__ = ["Bundle", "Entry", "decode_bundle", "encode_bundle", "events_of", "keys_of",
           "parse_origin"]

#: An origin is ``<name>:<offset>``; its name is a letter and a partition number.
Origin = Annotated[str, msgspec.Meta(max_length=64, pattern=r"^[a-z]\d{1,6}:\d{1,19}$")]


class Entry(msgspec.Struct, array_like=True, frozen=True):
    """One key's events from one origin (one ingest message, or this message itself)."""

    key: Annotated[str, msgspec.Meta(min_length=1, max_length=ID_CHARS)]
    origin: Origin | None
    events: list[Event]  # type: ignore[valid-type]


class Bundle(msgspec.Struct, frozen=True):
    entries: list[Entry]


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Bundle)


def encode_bundle(entries: list[Entry]) -> bytes:
    """The message value for ``entries``."""
    return _encoder.encode(Bundle(entries))


def encode_entries(parts: Iterable[bytes]) -> bytes:
    """A bundle from entries already encoded one by one (``encode_entry``): the ingest stage
    measures each entry once and joins those that fit in one message."""
    return b'{"entries":[' + b",".join(parts) + b"]}"


def encode_entry(entry: Entry) -> bytes:
    """One entry's JSON, for ``encode_entries``."""
    return _encoder.encode(entry)


def decode_bundle(data: bytes, key: bytes | None = None) -> list[Entry]:
    """The entries of a message value; raises ``msgspec.DecodeError`` (``ValidationError``
    included) or ``ValueError`` for one that is not a bundle or has an empty entry.

    ``key``: the Kafka key, needed only by an older one-key value (a JSON array)."""
    if data[:1] == b"[" or data.lstrip()[:1] == b"[":
        if not key:
            raise ValueError("message without a key or events")
        evs = decode_batch(data)
        if not evs:
            raise ValueError("message without a key or events")
        return [Entry(key.decode(), None, evs)]
    entries = _decoder.decode(data).entries
    if not entries or not all(e.events for e in entries):
        raise ValueError("bundle without entries or with an entry without events")
    return entries


def parse_origin(origin: str | None) -> tuple[str, int] | None:
    """``"i3:1207"`` as ``("i3", 1207)``; None for None (the message's own position)."""
    if origin is None:
        return None
    name, _, offset = origin.rpartition(":")
    return name, int(offset)


def events_of(data: bytes, key: bytes | None = None) -> list[Any]:
    """Every event of a message value, in order (for tests and readers of the topics)."""
    return [e for entry in decode_bundle(data, key) for e in entry.events]


def keys_of(data: bytes, key: bytes | None = None) -> list[str]:
    """The keys of a message value's entries, in order."""
    return [entry.key for entry in decode_bundle(data, key)]
