"""Turn one raw ingest message into canonical event batches and dead letters. Pure: no Kafka.

The normalize agent calls ``normalize`` once per Kafka message. Good events are grouped by
session (web) or customer (support) so each group becomes one message on its keyed topic;
everything else becomes a ``DeadLetter`` with its reason. Nothing is dropped silently.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import msgspec

from detectors import events as ev
from streams.adapters import adapt, detect
from streams.adapters.base import AdapterError
from streams.deadletter import DeadLetter, make_dead_letter

__all__ = ["Normalized", "canonical_ok", "normalize"]

_json_decoder = msgspec.json.Decoder()
_json_encoder = msgspec.json.Encoder()


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
) -> Normalized:
    """Adapt one raw message, appending to ``out`` (so a batch of messages shares one result)."""
    out = out if out is not None else Normalized()

    def dead(reason: Any, detail: str, original: bytes) -> None:
        out.dead.append(
            make_dead_letter(reason, detail, stage, original, now, topic, partition, offset)
        )

    data = raw or b""
    if not data.strip():
        dead("empty", "empty message", data)
        return out
    if len(data) > max_bytes:
        # Keep only a prefix of oversized input: the record must fit on the dead-letter topic.
        dead("too_large", f"{len(data)} bytes > limit {max_bytes}", data[:4096])
        return out
    if source == "canonical" and _canonical_fast(data, out, max_events):
        return out
    try:
        payload = _json_decoder.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        dead("not_json", str(exc), data)
        return out
    try:
        # Detect here rather than inside adapt, so metrics name the real format.
        fmt = source or detect(payload)
        adapted = adapt(payload, fmt)
    except AdapterError as exc:
        dead(exc.reason, exc.detail, data)
        return out
    except Exception as exc:  # noqa: BLE001 - an adapter bug must not stop the worker
        dead("processing_error", f"{type(exc).__name__}: {exc}", data)
        return out
    if len(adapted.events) + len(adapted.rejected) > max_events:
        dead("too_many_events", f"{len(adapted.events)} events > limit {max_events}", data)
        return out
    for rej in adapted.rejected:
        # A rejected single call keeps the exact bytes; an item of a batch its own JSON.
        original = data if rej.item is payload else _json_encoder.encode(rej.item)
        dead(rej.reason, rej.detail, original)
    for e in adapted.events:
        if isinstance(e, ev.SUPPORT_EVENT_TYPES):
            if not e.customer_id:
                dead("missing_id", f"{type(e).__name__} without a customer id", data)
                continue
            out.support[e.customer_id].append(e)
        else:
            out.web[e.session_id].append(e)
        out.counts[(fmt, e.__struct_config__.tag)] += 1
    return out


def canonical_ok(events: list[Any], max_events: int) -> bool:
    """Whether decoded canonical events can go on as they are: not empty, within the limit,
    every one with an id and session id, support events with a customer id."""
    if not events or len(events) > max_events:
        return False
    support = ev.SUPPORT_EVENT_TYPES
    return all(e.id and e.session_id and (e.customer_id or not isinstance(e, support))
               for e in events)


def _canonical_fast(data: bytes, out: Normalized, max_events: int) -> bool:
    """Canonical events straight into typed structs (a few microseconds per event). False when
    anything is off, and the generic path then finds and names each problem."""
    try:
        events = ev.decode_batch(data) if data.lstrip()[:1] == b"[" else [ev.decode_event(data)]
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        return False
    if not canonical_ok(events, max_events):
        return False
    for e in events:
        if isinstance(e, ev.SUPPORT_EVENT_TYPES):
            out.support[e.customer_id or ""].append(e)  # checked above: never empty
        else:
            out.web[e.session_id].append(e)
        out.counts[("canonical", e.__struct_config__.tag)] += 1
    return True
