"""Readiness decisions and the lag reading, without a broker."""

from __future__ import annotations

from typing import Any, NamedTuple

from streams.health import AgentCrashes, consumer_lag, lag, readiness


def test_ready_only_with_broker_partitions_and_no_crash() -> None:
    assert readiness(None, 1, {}) == []
    assert readiness("KafkaConnectionError: refused", 3, {}) == [
        "broker unreachable: KafkaConnectionError: refused"]
    assert readiness(None, 0, {}) == ["no partitions assigned"]
    assert readiness(None, 2, {"sessions": "ValueError()"}) == [
        "agent sessions crashed: ValueError()"]


def test_crashes_count_and_fail_readiness_for_a_window() -> None:
    c = AgentCrashes(window=60.0)
    c.record("normalize", RecursionError("deep"), now=1000.0)
    c.record("normalize", RecursionError("deep"), now=1010.0)
    assert c.counts == {"normalize": 2}
    assert c.recent(1069.0) == {"normalize": "RecursionError('deep')"}
    assert c.recent(1071.0) == {}
    assert c.counts == {"normalize": 2}  # the count stays after the window


class _TP(NamedTuple):
    topic: str
    partition: int


class _Consumer:
    """What ``consumer_lag`` reads of Faust's consumer."""

    def __init__(self, highwaters: dict[Any, int | None], committed: dict[Any, int | None],
                 read: dict[Any, int | None]) -> None:
        self._hw, self._committed_offset, self._read_offset = highwaters, committed, read

    def highwater(self, tp: Any) -> int | None:
        if tp not in self._hw:
            raise AssertionError("Partition is not assigned")  # what aiokafka does
        return self._hw[tp]


def test_consumer_lag_from_last_fetch_and_commit() -> None:
    a, b, c, d = (_TP("t", i) for i in range(4))
    consumer = _Consumer({a: 500, b: 40, c: None}, {a: 200, b: None}, {b: 19})
    assert consumer_lag(consumer, [a, b, c, d]) == {a: 300, b: 20}
    assert lag(10, 12, None) == 0


def test_crash_hook_records_and_keeps_the_previous_handler() -> None:
    import asyncio
    import time

    seen: list[BaseException] = []

    async def previous(agent: Any, exc: BaseException) -> None:
        seen.append(exc)

    class _Agent:
        def __init__(self, name: str, on_error: Any) -> None:
            self.name, self._on_error = name, on_error

    agents = {"a": _Agent("normalize", previous), "b": _Agent("sessions", None)}
    app: Any = type("App", (), {"agents": agents})()
    crashes = AgentCrashes(window=60.0)
    crashes.install(app)
    boom = RecursionError("deep")
    asyncio.run(agents["a"]._on_error(agents["a"], boom))
    asyncio.run(agents["b"]._on_error(agents["b"], ValueError("x")))
    assert seen == [boom]
    assert crashes.counts == {"normalize": 1, "sessions": 1}
    # Recorded on the monotonic clock, as readiness reads it.
    assert set(crashes.recent(now=time.monotonic())) == {"normalize", "sessions"}
