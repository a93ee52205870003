"""States written once per flush interval, with the acks of their messages held until then.

At one event per message nearly every event changed a session that was then encoded (about
1 KB) and sent to the table's changelog once per batch: the largest cost left on the worker's
hot path once the ingest stage works in bulk (issue 14). So the agents mark the keys a batch
changed as dirty and write each dirty state once per ``interval`` instead.

Exact recovery still holds: a batch's messages are not acknowledged when the batch ends but
when the states they changed have been written (their changelog records handed to the
producer). Faust commits only acknowledged offsets, after flushing its producer, so a crash
before a flush re-reads those messages from the last commit, and the states (restored from the
changelog, which never saw their changes) apply them again; a crash after a flush re-reads at
most messages whose changes are in the changelog already, and the states skip them by their
ingest origin (``detectors.session.is_replay``).

Per partition, the changes wait with the engine (or table owner) they were made on: if a
rebalance took the partition away (its engine replaced or dropped), they are dropped unwritten
and their messages never acknowledged here; the partition's next owner re-reads them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DirtyStates", "Pending"]


@dataclass(slots=True)
class Pending:
    """One partition's changes since its last flush."""

    #: What the changes were made on (the partition's engine): a flush writes them only if
    #: it is still the one in charge of the partition.
    owner: Any
    #: key -> the message (or position) its write is attributed to, as ``set_in_partition``
    #: wants it
    keys: dict[Any, Any] = field(default_factory=dict)
    #: the Faust events whose acknowledgement waits for the write
    held: list[Any] = field(default_factory=list)


class DirtyStates:
    """Keys changed since the last flush, per partition, and the events whose acks wait.

    >>> class Msg:
    ...     def __init__(self): self.refcount, self.tp, self.offset = 1, "tp", 7
    ...     def incref(self): self.refcount += 1
    >>> class Ev:
    ...     def __init__(self): self.message = Msg()
    ...     def ack(self):
    ...         self.message.refcount -= 1
    ...         return self.message.refcount == 0
    >>> d, e, engine, written = DirtyStates(interval=1.0), Ev(), object(), []
    >>> d.hold(0, engine, [e]); d.mark(0, engine, "s1", e)
    >>> e.ack()  # the batch ends: Faust's own ack; ours still holds the message
    False
    >>> d.flush(lambda p: engine, lambda p, keys: written.append((p, list(keys))))
    1
    >>> written, e.message.refcount
    ([(0, ['s1'])], 0)
    """

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic,
                 on_acked: Callable[[Any], None] | None = None) -> None:
        self.interval = interval
        self.clock = clock
        self.on_acked = on_acked
        self.pending: dict[int, Pending] = {}
        self.last_flush = clock()

    def _for(self, partition: int, owner: Any) -> Pending:
        p = self.pending.get(partition)
        if p is None or p.owner is not owner:
            # Changes made on an engine since replaced are never written (module docstring).
            p = self.pending[partition] = Pending(owner)
        return p

    def hold(self, partition: int, owner: Any, events: list[Any]) -> None:
        """Hold the acknowledgement of ``events`` (of ``partition``) until the next flush."""
        for e in events:
            e.message.incref()
        self._for(partition, owner).held.extend(events)

    def mark(self, partition: int, owner: Any, key: Any, at: Any) -> None:
        """``key`` changed on ``owner`` (attributed to message ``at``): write it at the flush."""
        self._for(partition, owner).keys[key] = at

    def due(self) -> bool:
        return bool(self.pending) and self.clock() - self.last_flush >= self.interval

    def flush(self, owner_of: Callable[[int], Any],
              write: Callable[[int, dict[Any, Any]], None]) -> int:
        """``write_all`` then ``acknowledge``: write every dirty key of each partition still
        owned as it was (``owner_of``), then acknowledge its held events; drop the others
        unwritten and unacknowledged. Returns the events acknowledged."""
        return self.acknowledge(self.write_all(owner_of, write))

    def write_all(self, owner_of: Callable[[int], Any],
                  write: Callable[[int, dict[Any, Any]], None]) -> list[Pending]:
        """Write the dirty keys of each partition still owned as it was, and return those
        partitions' changes, whose held events ``acknowledge`` releases once the writes are
        delivered. Changes of partitions taken away are dropped unwritten."""
        kept: list[Pending] = []
        for partition, p in self._take().items():
            if owner_of(partition) is not p.owner:
                continue  # taken away: the next owner re-reads these messages
            if p.keys:
                write(partition, p.keys)
            kept.append(p)
        return kept

    async def write_in_slices(self, owner_of: Callable[[int], Any],
                              write: Callable[[int, dict[Any, Any]], None],
                              may_go_on: Callable[[], bool], size: int = 500,
                              lock: asyncio.Lock | None = None) -> list[Pending]:
        """``write_all``, ``size`` keys at a time, letting the event loop run in between.

        A flush writes every session changed in the interval: at 23,000 events/s, about
        12,000 states, a third of a second of encoding that held up the ingest stage, the
        producer and the web server (their p99 latency rose by as much). Each slice is
        written holding ``lock`` (when given), which whoever changes the states holds too:
        between two slices they may change, so a state is written as its latest change left
        it, never half way through one (with no ``lock``, whoever calls this keeps the states
        from changing until it returns). The changes taken are those marked when the first
        slice got the lock; keys changed again meanwhile are marked again, for the next
        flush. Before each slice, the first too, the partition must still be owned as it was
        and ``may_go_on()`` true (no rebalance under way); if it is not, the partition's
        remaining keys and its held events go back to be written by the next flush (owner
        unchanged) or are dropped (owner replaced: its next owner re-reads the messages), and
        it is not among those returned for ``acknowledge``. A flush that starts once a
        rebalance is under way takes nothing: one started beside the agent just before it
        began (``streams.sessions``) first runs after the revocation, when a state written
        could reach the changelog after its partition's next owner read it back."""
        held = lock if lock is not None else contextlib.nullcontext()
        kept: list[Pending] = []
        wrote = False
        async with held:
            if not may_go_on():
                return kept
            taken = self._take()
        for partition, p in taken.items():
            keys = list(p.keys.items())
            done = 0
            while done < len(keys):
                if wrote:
                    await asyncio.sleep(0)
                async with held:
                    if not may_go_on() or owner_of(partition) is not p.owner:
                        break
                    write(partition, dict(keys[done:done + size]))
                wrote = True
                done += size
            if owner_of(partition) is not p.owner:
                continue  # taken away: the next owner re-reads these messages
            if done >= len(keys):
                kept.append(p)
            else:
                self._requeue(partition, p, dict(keys[done:]))
        return kept

    def _take(self) -> dict[int, Pending]:
        """Every partition's changes, for a flush; the next interval starts now."""
        pending, self.pending = self.pending, {}
        self.last_flush = self.clock()
        return pending

    def _requeue(self, partition: int, p: Pending, keys: dict[Any, Any]) -> None:
        """Changes a flush could not finish: back for the next one, their events still held
        (a later mark of a key keeps its own, newer message)."""
        q = self._for(partition, p.owner)
        for key, at in keys.items():
            q.keys.setdefault(key, at)
        q.held.extend(p.held)

    def acknowledge(self, written: list[Pending]) -> int:
        """Acknowledge the held events of changes ``write_all`` wrote; how many."""
        acked = 0
        for p in written:
            for e in p.held:
                if e.ack() and self.on_acked is not None:
                    self.on_acked(e)
                acked += 1
        return acked
