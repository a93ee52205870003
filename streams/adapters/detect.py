r"""Which adapter a payload is for, from its shape alone (when no ``fw-source`` header says).

One or two dict lookups per payload, never per event:

- Segment: a dict with a ``batch`` array, a dict whose ``type`` is a Segment call
  (track/page/screen/identify/group), or a JSON array whose first item is such a call;
- GA4 Measurement Protocol: a dict with an ``events`` array and ``client_id`` or
  ``app_instance_id``;
- support: a dict with a ``ticket`` object (Zendesk trigger webhook) or whose ``type`` starts
  with ``zen:event-type:`` (Zendesk event webhook);
- Snowplow: a string with a tab in it (enriched TSV lines), or an enriched event in its JSON
  form: a dict with ``event_id`` and ``collector_tstamp`` (fields every enriched event has),
  or an array whose first item is one;
- PostHog: a capture body, a dict with ``api_key`` and a ``batch`` array or an ``event``; an
  event, a dict whose ``event`` is a string and that has ``properties`` or ``distinct_id``
  but no Segment ``type``; or an array whose first item is one;
- canonical: a dict whose ``type`` is a ``detectors.events.EVENT_TYPES`` tag, or an array whose
  first item is one.

``identify`` is both a Segment call and a canonical tag: it is canonical only when it carries
the canonical ``session_id`` field, which Segment calls never have at the top level. A
``batch`` without ``api_key`` stays Segment's unless its first item is a PostHog event.
A mixed array is judged by its first item; items that do not fit are rejected one by one.

>>> from streams.adapters.base import AdapterError
>>> from streams.adapters.detect import detect
>>> detect({"batch": []}), detect({"client_id": "1.2", "events": []})
('segment', 'ga4')
>>> detect([{"type": "click", "id": "e1", "time": 1.0, "session_id": "s1", "x": 1, "y": 2}])
'canonical'
>>> detect({"event": "$pageview", "properties": {"distinct_id": "d1"}}), detect("a\tb\n")
('posthog', 'snowplow')
>>> try:
...     detect({"hello": "world"})
... except AdapterError as exc:
...     print(exc.reason)
unknown_format
"""

from __future__ import annotations

from typing import Any, Literal

from detectors.events import EVENT_TYPES
from streams.adapters.base import AdapterError

__all__ = ["detect", "Source", "SOURCES"]

Source = Literal["segment", "ga4", "support", "snowplow", "posthog", "canonical"]
SOURCES: tuple[Source, ...] = ("segment", "ga4", "support", "snowplow", "posthog", "canonical")

_SEGMENT_CALLS = frozenset(("track", "page", "screen", "identify", "group"))


def _of_call(item: dict[str, Any]) -> Source | None:
    kind = item.get("type")
    if type(kind) is not str:
        if "event_id" in item and "collector_tstamp" in item:
            return "snowplow"
        if type(item.get("event")) is str and ("properties" in item or "distinct_id" in item):
            return "posthog"
        return None
    if kind in _SEGMENT_CALLS and (kind != "identify" or "session_id" not in item):
        return "segment"
    if kind in EVENT_TYPES:
        return "canonical"
    if kind.startswith("zen:event-type:"):
        return "support"
    return None


def detect(payload: Any) -> Source:
    """The source format of already-parsed JSON; ``AdapterError`` if none fits."""
    if type(payload) is dict:
        if not payload:
            raise AdapterError("empty", "empty JSON object")
        batch = payload.get("batch")
        if type(batch) is list:
            head = batch[0] if batch else None
            if "api_key" in payload or (type(head) is dict and _of_call(head) == "posthog"):
                return "posthog"
            return "segment"
        if "api_key" in payload and type(payload.get("event")) is str:
            return "posthog"
        if type(payload.get("events")) is list and (
            "client_id" in payload or "app_instance_id" in payload
        ):
            return "ga4"
        if type(payload.get("ticket")) is dict:
            return "support"
        source = _of_call(payload)
        if source is not None:
            return source
        keys = sorted(payload)[:8]
        raise AdapterError("unknown_format", f"no adapter recognises an object with keys {keys}")
    if type(payload) is list:
        if not payload:
            raise AdapterError("empty", "empty JSON array")
        head = payload[0]
        source = _of_call(head) if type(head) is dict else None
        if source is not None and source != "support":
            return source
        raise AdapterError("unknown_format", "an array must hold Segment calls, Snowplow or "
                           "PostHog events or canonical events")
    if type(payload) is str and "\t" in payload:
        return "snowplow"
    raise AdapterError("unknown_format", f"JSON {type(payload).__name__} is not an event payload")
