"""Writing Faust tables from a batch or a timer, in the partition of the input the state
belongs to (Faust would pick the partition of whatever event is current)."""

from __future__ import annotations

import asyncio
import weakref
from types import SimpleNamespace
from typing import Any

from faust.streams import _current_event

__all__ = ["At", "Changelogs", "del_in_partition", "set_in_partition"]


class Changelogs:
    """The changelog records ``tables`` sent, until ``delivered`` has waited for them.

    A table write hands its changelog record to Faust's producer buffer, and
    ``app.producer.flush()`` is no proof it was sent: the buffer's flush gives up when no record
    left it for 0.1 s (on a loaded machine a send waiting for room in the client's batch takes
    longer), and a record its drainer holds is not counted. Acknowledging messages after that
    flush let Faust commit past states that never reached the changelog: a SIGKILL then lost
    their events (the crash test on Apache Kafka beside a CPU hog). So the futures of the
    records are kept and awaited: each completes when the broker has the record.

    >>> import asyncio
    >>> class Table:
    ...     def send_changelog(self, *args, **kw):
    ...         return asyncio.get_running_loop().create_future()
    >>> async def demo():
    ...     t = Table(); logs = Changelogs(t)
    ...     fut = t.send_changelog(0, b"k", b"v")
    ...     fut.set_result("sent")
    ...     return len(logs.pending), await logs.delivered(), len(logs.pending)
    >>> asyncio.run(demo())
    (1, [], 0)
    """

    def __init__(self, *tables: Any) -> None:
        self.pending: list[asyncio.Future[Any]] = []
        for table in tables:
            self._track(table)

    def _track(self, table: Any) -> None:
        send = table.send_changelog

        def send_changelog(*args: Any, **kw: Any) -> Any:
            fut = send(*args, **kw)
            self.pending.append(fut)
            return fut

        table.send_changelog = send_changelog

    async def delivered(self, timeout: float = 120.0) -> list[BaseException]:
        """Wait until every record sent so far is acknowledged by the broker; the errors of
        those that failed or did not complete in ``timeout`` seconds (the messages whose
        states they carry must not be acknowledged)."""
        pending, self.pending = self.pending, []
        if not pending:
            return []
        done, late = await asyncio.wait(pending, timeout=timeout)
        errors: list[BaseException] = [
            TimeoutError(f"{len(late)} changelog records not acknowledged in {timeout} s")
        ] if late else []
        errors.extend(e for f in done if (e := f.exception()) is not None)
        return errors

    async def hold_unless_delivered(self, batch: Any, log: Any, what: str) -> None:
        """``delivered``, for a batch Faust acknowledges when it ends: if a record failed,
        log it (``log``: the guard's rate-limited log) and hold the batch's messages for good,
        so their partitions are read again after a restart or rebalance."""
        errors = await self.delivered()
        if errors:
            log.error("changelog", "%d %s writes not delivered (%s); their messages stay "
                      "unacknowledged", len(errors), what, errors[0])
            for event in batch:
                event.message.incref()


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
