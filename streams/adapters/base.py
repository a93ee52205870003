"""What every adapter returns: the canonical events it could build and what it rejected."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from streams.topics import DeadLetterReason

__all__ = ["AdapterError", "Adapted", "Rejected", "convert_each"]


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
