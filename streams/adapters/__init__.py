"""Adapters at the edge: what users already emit -> canonical events (``detectors.events``).

``adapt(payload, source)`` is what the normalize agent calls once per Kafka message. ``source``
is the ``fw-source`` header (``streams.topics.SOURCE_HEADER``): "segment", "ga4", "support",
"snowplow", "posthog" or "canonical"; without it the format is detected from the payload's
shape (``detect``). A payload nothing can use raises ``AdapterError``; items of a batch that
cannot be used come back in ``Adapted.rejected`` with their reason, and the rest still flow.

>>> from streams.adapters import adapt
>>> out = adapt([{"type": "page_view", "id": "e1", "time": 1.0, "session_id": "s1"},
...              {"type": "page_view", "id": "e2", "time": 2.0}])
>>> [e.id for e in out.events], [r.reason for r in out.rejected]
(['e1'], ['missing_id'])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from detectors.events import EVENT_TYPES, from_builtins
from streams.adapters import ga4, posthog, segment, snowplow, support
from streams.adapters.base import Adapted, AdapterError, Rejected
from streams.adapters.detect import detect

__all__ = ["AdapterError", "Adapted", "Rejected", "adapt", "adapt_canonical", "detect"]


def _canonical_one(item: Any) -> Any:
    if type(item) is not dict:
        raise AdapterError("invalid_field", "canonical event is not an object")
    kind = item.get("type")
    if type(kind) is not str:  # checked before the lookup: a list is unhashable
        raise AdapterError("invalid_field", f"type of {type(kind).__name__}: not a string")
    if kind not in EVENT_TYPES:
        raise AdapterError("unknown_event", f"canonical type {str(kind)[:40]!r} is unknown")
    if not item.get("id") or not item.get("session_id"):
        raise AdapterError("missing_id", "canonical event without id or session_id")
    try:
        return from_builtins(item)
    except msgspec.ValidationError as exc:
        raise AdapterError("invalid_field", str(exc)) from None


def adapt_canonical(payload: Any) -> Adapted:
    """Events already in canonical form (a dict or a list of dicts with a ``type`` tag)."""
    if type(payload) is dict:
        items = [payload] if payload else []
    elif type(payload) is list:
        items = payload
    else:
        raise AdapterError("unknown_format", "canonical events are a JSON object or array")
    if not items:
        raise AdapterError("empty", "no canonical events")
    out = Adapted()
    for item in items:
        try:
            out.events.append(_canonical_one(item))
        except AdapterError as exc:
            out.rejected.append(Rejected(exc.reason, exc.detail, item))
    return out


_ADAPTERS: dict[str, Callable[[Any], Adapted]] = {
    "segment": segment.adapt,
    "ga4": ga4.adapt,
    "support": support.adapt,
    "snowplow": snowplow.adapt,
    "posthog": posthog.adapt,
    "canonical": adapt_canonical,
}


def adapt(payload: Any, source: str | None = None) -> Adapted:
    """Canonical events from already-parsed JSON in the ``source`` format (None: detect it)."""
    if not source:
        return _ADAPTERS[detect(payload)](payload)
    fn = _ADAPTERS.get(source) or _ADAPTERS.get(source.strip().lower())
    if fn is None:
        # The header comes from producers: an unknown value is bad input, not a crash.
        raise AdapterError("unknown_format", f"unknown source {source[:40]!r}")
    return fn(payload)
