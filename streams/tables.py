"""Writing Faust tables from a batch or a timer, in the partition of the input the state
belongs to (Faust would pick the partition of whatever event is current)."""

from __future__ import annotations

import weakref
from types import SimpleNamespace
from typing import Any

from faust.streams import _current_event

__all__ = ["At", "del_in_partition", "set_in_partition"]


def set_in_partition(table: Any, key: bytes, value: bytes, event: Any) -> None:
    """``table[key] = value`` with ``event`` as Faust's current event.

    Faust picks the changelog (and RocksDB) partition from the current event. In a
    ``take_events`` batch that is the batch's last message, which may be in another
    partition than this key; setting it per write keeps state co-partitioned with its input.
    """
    token = _current_event.set(weakref.ref(event))
    try:
        table[key] = value
    finally:
        _current_event.reset(token)


class At:
    """Stands in for Faust's current event when a timer writes a table: Faust reads only the
    source topic and partition from it, to pick the changelog partition."""

    __slots__ = ("message", "__weakref__")

    def __init__(self, topic: str, partition: int) -> None:
        self.message = SimpleNamespace(topic=topic, partition=partition)


def del_in_partition(table: Any, key: bytes, event: Any) -> None:
    """``del table[key]`` in ``event``'s partition (see ``set_in_partition``)."""
    token = _current_event.set(weakref.ref(event))
    try:
        del table[key]
    finally:
        _current_event.reset(token)
