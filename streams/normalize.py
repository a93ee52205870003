"""Turn one raw ingest message into canonical event batches and dead letters. Pure: no Kafka.

The normalize agent calls ``normalize`` once per Kafka message. Good events are grouped by
session (web) or customer (support) so each group becomes one message on its keyed topic;
everything else becomes a ``DeadLetter`` with its reason. Nothing is dropped silently, and
no input bytes make ``normalize`` raise: a failure of our own code is a ``processing_error``.

The edge's bounds (``detectors.bounds``), in the order they are checked:

- size (``max_bytes``) and JSON nesting depth (``detectors.bounds.MAX_DEPTH``, ``too_deep``);
- items in the payload before any is adapted (``max_events``, ``too_many_events``);
- every field of every event (length, range, count), and its time within datetime's range
  and, when given, within ``max_age`` seconds before ``now`` and ``max_lead`` after it
  (``invalid_field``, naming the field, an excerpt of the value and the limit);
- dead letters: each keeps at most ``MAX_ORIGINAL_BYTES`` of its original, and all of one
  message's dead letters together keep at most the message's size plus
  ``DEAD_LETTER_SLACK`` of originals (the rest is cut, its size and the cut recorded).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import msgspec

from detectors import events as ev
from detectors.bounds import MAX_DEPTH, MAX_TIME
from streams.adapters import adapt, detect
from streams.adapters.base import AdapterError
from streams.deadletter import MAX_ORIGINAL_BYTES, DeadLetter, make_dead_letter
from streams.privacy import DEFAULT as DEFAULT_PRIVACY
from streams.privacy import Privacy

__all__ = ["DEAD_LETTER_SLACK", "TOO_LARGE_PREFIX", "Normalized", "canonical_ok",
           "depth_exceeds", "normalize"]

_json_decoder = msgspec.json.Decoder()
_json_encoder = msgspec.json.Encoder()

#: Bytes kept of an oversized message's start in its dead letter.
TOO_LARGE_PREFIX = 4096
#: Bytes past that prefix its redaction looks at, so personal data cut by the prefix is
#: still seen whole (the longest card or phone with separators is under 30 characters; an
#: email cut there keeps at most this much of itself).
_PREFIX_OVERLAP = 256

#: Original bytes all the dead letters of one message may keep beyond the message's own size
#: (rejected items re-encoded as JSON can be a little larger than their share of the input).
DEAD_LETTER_SLACK = 64 * 1024


@dataclass(slots=True)
class Normalized:
    #: session id -> web events, in arrival order
    web: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))
    #: customer id -> support events (tickets, identify)
    support: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))
    dead: list[DeadLetter] = field(default_factory=list)
    #: (source format, event type) -> count, for metrics
    counts: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))


def normalize(
    raw: bytes | None,
    source: str | None,
    *,
    max_bytes: int,
    max_events: int,
    now: float,
    topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
    out: Normalized | None = None,
    stage: str = "normalize",
    max_age: float | None = None,
    max_lead: float | None = None,
    privacy: Privacy = DEFAULT_PRIVACY,
) -> Normalized:
    """Adapt one raw message, appending to ``out`` (so a batch of messages shares one result).

    ``privacy`` redacts personal data (``streams.privacy``) from every event and from every
    dead letter's detail and original bytes: nothing this returns for a topic holds it.
    ``max_age`` and ``max_lead``: when given, events older than ``now - max_age`` or newer
    than ``now + max_lead`` are ``invalid_field`` (None: no limit that way; offline runs
    such as the backtest pass neither, as their ``now`` is not the events' clock).
    """
    # This message's results are built apart and added to ``out`` only once complete, so an
    # unexpected error leaves nothing half-added there.
    mine = Normalized()
    data = raw or b""
    # Original bytes this message's dead letters may still keep (module docstring).
    budget = [len(data) + DEAD_LETTER_SLACK]

    def dead(reason: Any, detail: str, original: bytes, size: int | None = None) -> None:
        keep = min(MAX_ORIGINAL_BYTES, budget[0])
        if privacy.enabled:
            # The original's own size is recorded, not its redacted copy's; only what can be
            # kept is redacted (a hostile message must not cost a scan of all of it).
            size = len(original) if size is None else size
            original = privacy.original(original[:keep + _PREFIX_OVERLAP])
            detail = privacy.text(detail)
        budget[0] -= min(keep, len(original))
        mine.dead.append(make_dead_letter(reason, detail, stage, original, now, topic,
                                          partition, offset, keep=keep, size=size))

    window = (
        0.0 if max_age is None else now - max_age,
        MAX_TIME if max_lead is None else min(MAX_TIME, now + max_lead),
    )
    try:
        _normalize(data, source, max_bytes, max_events, window, mine, dead, privacy)
    except Exception as exc:  # noqa: BLE001 - no input may stop the worker: a bug to fix
        # Nothing of what this message had produced goes on: it is dead-lettered whole, once.
        mine = Normalized()
        budget[0] = len(data) + DEAD_LETTER_SLACK
        dead("processing_error", f"{type(exc).__name__}: {exc}", data)
    if out is None:
        return mine
    for key, evs in mine.web.items():
        out.web[key] += evs
    for key, evs in mine.support.items():
        out.support[key] += evs
    out.dead += mine.dead
    for count, n in mine.counts.items():
        out.counts[count] += n
    return out


def _normalize(data: bytes, source: str | None, max_bytes: int, max_events: int,
               window: tuple[float, float], out: Normalized, dead: Any,
               privacy: Privacy) -> None:
    if not data.strip():
        dead("empty", "empty message", data)
        return
    if len(data) > max_bytes:
        # Keep only a prefix of oversized input: the record must fit on the dead-letter topic.
        prefix = privacy.original(data[:TOO_LARGE_PREFIX + _PREFIX_OVERLAP])[:TOO_LARGE_PREFIX]
        dead("too_large", f"{len(data)} bytes > limit {max_bytes}", prefix, len(data))
        return
    if source == "canonical" and _canonical_fast(data, out, max_events, window, privacy):
        return
    try:
        payload = _json_decoder.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        payload = _tsv(data, source)
        if payload is None:
            dead("not_json", str(exc), data)
            return
    except RecursionError:
        dead("too_deep", f"JSON nested deeper than the limit {MAX_DEPTH}", data)
        return
    if depth_exceeds(data, MAX_DEPTH):
        dead("too_deep", f"JSON nested deeper than the limit {MAX_DEPTH}", data)
        return
    try:
        # Detect here rather than inside adapt, so metrics name the real format.
        fmt = source or detect(payload)
        items = _items(payload, fmt)
        if items > max_events:
            # Counted before adapting: a payload over the limit costs no adapter work.
            dead("too_many_events", f"{items} events > limit {max_events}", data)
            return
        adapted = adapt(payload, fmt)
    except AdapterError as exc:
        dead(exc.reason, exc.detail, data)
        return
    except Exception as exc:  # noqa: BLE001 - an adapter bug must not stop the worker
        dead("processing_error", f"{type(exc).__name__}: {exc}", data)
        return
    for rej in adapted.rejected:
        # A rejected single call keeps the exact bytes; an item of a batch its own JSON.
        original = data if rej.item is payload else _json_encoder.encode(rej.item)
        dead(rej.reason, rej.detail, original)
    # Redacted before the bounds are checked: what goes on is within them, redacted or not.
    events = privacy.events(adapted.events)
    # Adapters build structs without validation: check every field's bounds here.
    bad = ev.check_batch(events) if events else {}
    lo, hi = window
    if bad or lo > 0.0 or hi < MAX_TIME:  # else every event is in bounds (the common case)
        keep = []
        for i, e in enumerate(events):
            why = bad.get(i)
            if why is None and not lo <= e.time <= hi:
                why = f"time={e.time!r}: outside {lo:.0f}..{hi:.0f}"
            if why is None:
                keep.append(e)
            else:
                # The exact bytes of a single call; else the event (the call is not at hand).
                dead("invalid_field", why, data if items == 1 else _json_encoder.encode(e))
        events = keep
    for e in events:
        if isinstance(e, ev.SUPPORT_EVENT_TYPES):
            if not e.customer_id:
                dead("missing_id", f"{type(e).__name__} without a customer id",
                     data if items == 1 else _json_encoder.encode(e))
                continue
            out.support[e.customer_id].append(e)
        else:
            out.web[e.session_id].append(e)
        out.counts[(fmt, e.__struct_config__.tag)] += 1


def _tsv(data: bytes, source: str | None) -> str | None:
    """Snowplow enriched TSV lines (the one format that is not JSON) as text, else None: bytes
    with a tab, sent as Snowplow or with no source named."""
    if source not in (None, "snowplow") or b"\t" not in data:
        return None
    try:
        return data.decode()
    except UnicodeDecodeError:
        return None


def _items(payload: Any, fmt: str) -> int:
    """How many events a payload holds, counted before adapting any (one for a single call)."""
    if type(payload) is list:
        return len(payload)
    if type(payload) is str:  # Snowplow TSV: a line per event
        return payload.count("\n") + 1
    if type(payload) is dict:
        inner = payload.get("batch") if fmt in ("segment", "posthog") else (
            payload.get("events") if fmt == "ga4" else None)
        if type(inner) is list:
            return len(inner)
    return 1


# Bytes that are not brackets or quotes (deleted) and braces mapped to brackets: what is left
# of a JSON document is its nesting, as "[" and "]", with its strings' quotes among them.
_NOT_BRACKETS = bytes(range(256)).translate(None, b'[]{}"')
_BRACES = bytes.maketrans(b"{}", b"[]")


def depth_exceeds(data: bytes, limit: int) -> bool:
    """Whether valid JSON ``data`` nests arrays and objects deeper than ``limit``.

    Byte operations only (C speed, no recursion): escapes and strings are cut out, and each
    pass removes the innermost ``[]`` pairs, so ``limit`` passes clear a shallow document.

    >>> depth_exceeds(b'{"a": [1, {"b": "]]]]"}]}', 3), depth_exceeds(b'[[[[]]]]', 3)
    (False, True)
    >>> depth_exceeds(b'["[", "]", [["x"]]]', 2), depth_exceeds(b'["[", "]", [["x"]]]', 3)
    (True, False)
    """
    if b"\\" in data:
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    nesting = data.translate(_BRACES, _NOT_BRACKETS)
    if nesting.count(b"[") <= limit:  # most messages: a single event
        return False
    # Every '""' goes. Quotes alternate open and close, so a '""' is a string without
    # brackets, or the gap between two strings with none outside them (merging the two):
    # either way which brackets are outside strings is unchanged. Few strings hold brackets:
    # what is left is short, and its strings are cut out there.
    nesting = nesting.replace(b'""', b"")
    if b'"' in nesting:
        nesting = b"".join(nesting.split(b'"')[::2])
    for _ in range(limit):
        shorter = nesting.replace(b"[]", b"")
        if not shorter:
            return False
        if len(shorter) == len(nesting):  # not balanced: not JSON, let the decoder say so
            return False
        nesting = shorter
    return True


def canonical_ok(events: list[Any], max_events: int) -> bool:
    """Whether decoded canonical events can go on as they are: not empty, within the limit,
    every one with an id and session id, support events with a customer id."""
    if not events or len(events) > max_events:
        return False
    support = ev.SUPPORT_EVENT_TYPES
    return all(e.id and e.session_id and (e.customer_id or not isinstance(e, support))
               for e in events)


def _canonical_fast(data: bytes, out: Normalized, max_events: int,
                    window: tuple[float, float], privacy: Privacy) -> bool:
    """Canonical events straight into typed structs (a few microseconds per event; the typed
    decode enforces every field's bounds). False when anything is off, and the generic path
    then finds and names each problem; also when an event holds personal data (the generic
    path redacts it and checks the bounds of what redaction made)."""
    try:
        events = ev.decode_batch(data) if data.lstrip()[:1] == b"[" else [ev.decode_event(data)]
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError):
        return False
    if depth_exceeds(data, MAX_DEPTH):  # in fields the typed decode skipped
        return False
    if not canonical_ok(events, max_events):
        return False
    if privacy.events(events) is not events:
        return False
    lo, hi = window
    if lo > 0.0 or hi < MAX_TIME:
        for e in events:
            if not lo <= e.time <= hi:
                return False
    for e in events:
        if isinstance(e, ev.SUPPORT_EVENT_TYPES):
            out.support[e.customer_id or ""].append(e)  # checked above: never empty
        else:
            out.web[e.session_id].append(e)
        out.counts[("canonical", e.__struct_config__.tag)] += 1
    return True
