"""A watchdog for Faust's table recovery: a changelog partition that still has records to read
but has received none for a while (``Settings.recovery_stall_timeout``) gets its recovery
started again; if that does not help ``MAX_RESTARTS`` times in a row, the worker crashes, so
its partitions go to the others and a supervisor starts it again.

Seen on Apache Kafka 4.4 (once in CI, once in six runs of
``tests/integration/test_multi_worker.py`` beside a CPU hog): after a worker joined and another
was SIGKILLed during the rebalance, the survivor's recovery waited on partition 1 of both
tables' changelogs for over two minutes ("No event received for active tp ... since recovery
start"), with records to read and fetch requests going out. Its three web-events partitions
were never processed, nothing said so (its lag gauge read 0: stream partitions are not
fetched during a recovery), and their events were lost to every output. The cause inside
Faust or aiokafka was not found; this bounds the damage: a stall is counted
(``frictionwatch_recovery_stalls_total``), logged, and retried, and a worker that cannot
recover stops instead of holding partitions it never processes.

Faust's recovery is read through its own attributes (``in_recovery``, ``active_remaining()``,
the time recovery started and each partition's last event); if they change shape the watch
does nothing (``RecoveryWatch.usable``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["MAX_RESTARTS", "RecoveryWatch", "stalled"]

#: Recoveries started again for stalls in a row before the worker gives up and crashes.
MAX_RESTARTS = 2


def stalled(now: float, started: float | None, last_event: Mapping[Any, float],
            remaining: Mapping[Any, int], stall: float) -> list[Any]:
    """The partitions with records left to read (``remaining``) whose last record came (or,
    with none yet, whose recovery started) more than ``stall`` seconds before ``now``.

    >>> stalled(100.0, 50.0, {"a": 95.0}, {"a": 3, "b": 7, "c": 0}, 20.0)
    ['b']
    >>> stalled(100.0, 90.0, {}, {"b": 7}, 20.0)  # started 10 s ago: not yet
    []
    """
    if started is None:
        return []
    return [tp for tp, left in remaining.items()
            if left > 0 and now - last_event.get(tp, started) > stall]


class RecoveryWatch:
    """Decides, each time ``check`` is called (a timer), what to do about Faust's
    ``recovery``: ``"ok"``, ``"restart"`` (a stall: start the recovery again, which
    ``restart()`` does) or ``"crash"`` (stalls ``max_restarts`` times in a row; said once,
    as the worker is stopping then).

    >>> from types import SimpleNamespace as NS
    >>> rec = NS(in_recovery=True, _recovery_started_at=0.0, _active_events_received_at={},
    ...          active_remaining=lambda: {"tp": 5}, signal_recovery_start=NS(set=lambda: None))
    >>> w = RecoveryWatch(rec, stall=10.0, max_restarts=1)
    >>> [w.check(5.0), w.check(11.0), w.check(15.0), w.check(22.0), w.check(30.0)]
    ['ok', 'restart', 'ok', 'crash', 'ok']
    """

    def __init__(self, recovery: Any, stall: float, max_restarts: int = MAX_RESTARTS) -> None:
        """``stall``: seconds without a record on a changelog partition that has records left
        to read (``Settings.recovery_stall_timeout``)."""
        self.recovery = recovery
        self.stall = stall
        self.max_restarts = max_restarts
        #: Stalls in a row, each met by a restart; reset when a recovery ends.
        self.restarts = 0
        #: When the last restart was asked for: the next stall counts from there.
        self._restarted_at: float | None = None
        self.gave_up = False
        self.usable = all(hasattr(recovery, name) for name in (
            "in_recovery", "_recovery_started_at", "_active_events_received_at",
            "active_remaining", "signal_recovery_start"))
        if not self.usable:
            log.warning("faust changed: table recovery stalls are not watched")

    def check(self, now: float) -> str:
        rec = self.recovery
        if not self.usable or self.gave_up:
            return "ok"
        if not rec.in_recovery:
            self.restarts, self._restarted_at = 0, None
            return "ok"
        started = rec._recovery_started_at
        if self._restarted_at is not None and (started is None or started < self._restarted_at):
            started = self._restarted_at  # the restart has not begun its reading yet
        late = stalled(now, started, rec._active_events_received_at, rec.active_remaining(),
                       self.stall)
        if not late:
            return "ok"
        if self.restarts >= self.max_restarts:
            self.gave_up = True
            return "crash"
        self.restarts += 1
        self._restarted_at = now
        log.error("table recovery: no record for %.0f s on %s, which have records left to "
                  "read; recovering again (%d of %d)", self.stall, sorted(map(str, late)),
                  self.restarts, self.max_restarts)
        return "restart"

    def restart(self) -> None:
        """Start the recovery again, as a new rebalance would: Faust's recovery loop reads
        the highwaters and offsets again, seeks, and resumes the changelog partitions."""
        self.recovery.signal_recovery_start.set()
