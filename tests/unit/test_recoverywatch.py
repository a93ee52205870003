"""The table-recovery watchdog: a changelog partition with records left to read and none
received for a while gets its recovery started again, then the worker gives up."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import faust

from streams.recoverywatch import RecoveryWatch


class FakeRecovery:
    """The parts of Faust's ``Recovery`` the watch reads, set by the test."""

    def __init__(self) -> None:
        self.in_recovery = True
        self._recovery_started_at: float | None = 0.0
        self._active_events_received_at: dict[Any, float] = {}
        self.remaining: dict[Any, int] = {"log-1": 10, "log-4": 10}
        self.restarts = 0
        self.signal_recovery_start = SimpleNamespace(set=self._restart)

    def active_remaining(self) -> dict[Any, int]:
        return self.remaining

    def _restart(self) -> None:
        self.restarts += 1


def test_records_arriving_are_no_stall_however_long_the_recovery() -> None:
    rec = FakeRecovery()
    w = RecoveryWatch(rec, stall=20.0)
    for now in range(5, 200, 5):
        rec._active_events_received_at = {"log-1": now - 1.0, "log-4": now - 3.0}
        assert w.check(float(now)) == "ok"
    assert rec.restarts == 0


def test_one_silent_partition_restarts_the_recovery_then_the_worker_gives_up() -> None:
    rec = FakeRecovery()
    w = RecoveryWatch(rec, stall=20.0, max_restarts=2)
    rec._active_events_received_at = {"log-4": 19.0}  # log-1: nothing since the start
    assert w.check(15.0) == "ok"
    assert w.check(21.0) == "restart"
    w.restart()
    assert rec.restarts == 1
    # Faust begins the recovery again a moment later; still nothing on log-1.
    rec._recovery_started_at, rec._active_events_received_at = 22.0, {}
    rec.remaining = {"log-1": 10, "log-4": 0}
    assert w.check(40.0) == "ok"
    assert w.check(43.0) == "restart"
    assert w.check(50.0) == "ok"  # counted from that restart
    assert w.check(64.0) == "crash"
    assert w.check(69.0) == "ok"  # said once: the worker is stopping


def test_a_partition_with_nothing_left_is_not_waited_for() -> None:
    rec = FakeRecovery()
    rec.remaining = {"log-1": 0, "log-4": -1}
    assert RecoveryWatch(rec, stall=1.0).check(100.0) == "ok"


def test_a_finished_recovery_resets_the_count() -> None:
    rec = FakeRecovery()
    w = RecoveryWatch(rec, stall=20.0, max_restarts=1)
    assert w.check(25.0) == "restart"
    rec.in_recovery = False
    assert w.check(30.0) == "ok"
    # The next rebalance's recovery stalls: one restart again before giving up.
    rec.in_recovery, rec._recovery_started_at = True, 100.0
    assert w.check(125.0) == "restart"


def test_it_reads_what_faust_recovery_has_and_stands_aside_otherwise() -> None:
    app = faust.App("fw-recoverywatch-test", broker="kafka://localhost:1")
    assert RecoveryWatch(app.tables.recovery, stall=20.0).usable
    idle = RecoveryWatch(app.tables.recovery, stall=20.0)
    assert idle.check(1e9) == "ok"  # no recovery under way
    off = RecoveryWatch(None, stall=20.0)
    assert not off.usable and off.check(1e9) == "ok"
