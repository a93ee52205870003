"""What every adapter returns: the canonical events it could build and what it rejected."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from streams.topics import DeadLetterReason

__all__ = ["AdapterError", "Adapted", "Rejected", "calls_of", "convert_each"]


class AdapterError(ValueError):
    """The whole payload is unusable; ``reason`` is one of ``DeadLetterReason``."""

    def __init__(self, reason: DeadLetterReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: DeadLetterReason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Rejected:
    """One item of a payload that could not be turned into an event (the rest still flow)."""

    reason: DeadLetterReason
    detail: str
    #: The offending item as received (JSON-able), kept for the dead-letter record.
    item: Any


@dataclass(slots=True)
class Adapted:
    events: list[Any] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)


def convert_each(items: Iterable[Any], convert: Callable[[Any], Any]) -> Adapted:
    """Each item of a batch through ``convert``; one that raises ``AdapterError`` is a
    ``Rejected`` with its reason, and the others still flow."""
    out = Adapted()
    events, rejected = out.events, out.rejected
    for item in items:
        try:
            events.append(convert(item))
        except AdapterError as exc:
            rejected.append(Rejected(exc.reason, exc.detail, item))
    return out


def calls_of(payload: Any, name: str) -> tuple[list[Any], bool]:
    """The calls of a payload shaped as Segment's HTTP API and PostHog's capture take them: a
    JSON array of calls, an object with a ``"batch"`` array, or one call (an object); and
    whether they came in a ``"batch"`` object (whose other keys may apply to them all).
    ``name`` is the format's, for the errors: an empty array or object is ``empty``, anything
    else that is not one of those shapes ``unknown_format``.

    >>> calls_of({"batch": [{"event": "a"}]}, "Segment")
    ([{'event': 'a'}], True)
    >>> calls_of([], "PostHog")
    Traceback (most recent call last):
    ...
    streams.adapters.base.AdapterError: empty: empty PostHog batch
    """
    if type(payload) is list:
        if not payload:
            raise AdapterError("empty", f"empty {name} batch")
        return payload, False
    if type(payload) is not dict:
        raise AdapterError("unknown_format", f"a {name} payload is a JSON object or array")
    batch = payload.get("batch")
    if batch is not None:
        if type(batch) is not list:
            raise AdapterError("unknown_format", f"{name} batch is not an array")
        if not batch:
            raise AdapterError("empty", f"empty {name} batch")
        return batch, True
    if not payload:
        raise AdapterError("empty", f"empty {name} payload")
    return [payload], False
