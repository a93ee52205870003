"""The worker shell's guard: no record over the producer's limit reaches the producer, a
failed send is a dead letter, a timer's exception is counted and logged, never raised."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from streams.deadletter import decode_dead_letter
from streams.guard import EXCERPT_BYTES, Guard, RateLimitedLog, inc_finite, set_finite
from streams.metrics import Metrics


class FakeTopic:
    def __init__(self, fail: Exception | None = None) -> None:
        self.sent: list[tuple[bytes | None, bytes]] = []
        self.fail = fail

    async def send(self, key: bytes | None, value: bytes, headers: Any = None) -> None:
        if self.fail is not None:
            raise self.fail
        self.sent.append((key, value))


class FakeApp:
    def __init__(self) -> None:
        self.timers: dict[str, Callable[[], Awaitable[None]]] = {}

    def timer(self, interval: float, **_: Any) -> Callable[[Any], Any]:
        def register(fun: Callable[[], Awaitable[None]]) -> Any:
            self.timers[fun.__name__] = fun
            return fun
        return register


def _guard(limit: int = 10_000) -> tuple[Guard, FakeTopic, Metrics]:
    metrics = Metrics(CollectorRegistry())
    dead = FakeTopic()
    return Guard(limit, dead, metrics.dead_letters, metrics.timer_errors), dead, metrics


def _count(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_an_oversized_record_is_a_dead_letter_not_a_send() -> None:
    guard, dead, metrics = _guard()
    out = FakeTopic()
    assert asyncio.run(guard.send(out, b"k", b"x" * 500, stage="sessions", what="alert"))
    assert not asyncio.run(guard.send(out, b"k", b"y" * 20_000, stage="sessions",
                                      what="session state"))
    assert out.sent == [(b"k", b"x" * 500)]
    [letter] = [decode_dead_letter(v) for _, v in dead.sent]
    assert (letter.reason, letter.stage) == ("too_large", "sessions")
    assert "20000 bytes" in letter.detail
    assert len(letter.original_bytes) < EXCERPT_BYTES + 100  # an excerpt, not the record
    assert _count(metrics, "frictionwatch_dead_letters_total", reason="too_large",
                  stage="sessions") == 1


def test_the_exact_estimate_decides_near_the_limit() -> None:
    guard, _, _ = _guard(limit=10_000)
    # aiokafka counts a batch header and record overhead (82 bytes here) on top of the bytes.
    assert guard.fits(None, b"x" * 9_900)
    assert not guard.fits(None, b"x" * 9_950)
    assert not guard.fits(b"k", b"x" * 9_900, headers=[("h", b"y" * 100)])


def test_a_send_that_raises_is_a_dead_letter() -> None:
    guard, dead, _ = _guard()
    assert not asyncio.run(guard.send(FakeTopic(RuntimeError("broker said no")), b"k", b"v",
                                      stage="customers", what="churn alert"))
    [letter] = [decode_dead_letter(v) for _, v in dead.sent]
    assert letter.reason == "processing_error" and "broker said no" in letter.detail


def test_a_dead_letter_too_large_to_send_keeps_an_excerpt() -> None:
    guard, dead, _ = _guard(limit=20_000)
    big = guard.letter("not_json", "whole input", "normalize", b"z" * 100)
    big = type(big)(**{**{f: getattr(big, f) for f in big.__struct_fields__},
                       "original": "eg" * 30_000})
    asyncio.run(guard.dead([big]))
    [letter] = [decode_dead_letter(v) for _, v in dead.sent]
    assert letter.reason == "not_json" and len(letter.original_bytes) < EXCERPT_BYTES + 100


def test_a_failing_timer_is_counted_and_runs_again(caplog: pytest.LogCaptureFixture) -> None:
    guard, _, metrics = _guard()
    app = FakeApp()
    calls = []

    @guard.timer(app, 1.0)
    async def event_time() -> None:
        calls.append(1)
        raise ValueError("year 10000 is out of range")

    with caplog.at_level(logging.ERROR):
        for _ in range(3):
            asyncio.run(app.timers["event_time"]())  # never raises
    assert len(calls) == 3
    assert _count(metrics, "frictionwatch_timer_errors_total", timer="event_time") == 3
    # Logged with its traceback, once a minute at most.
    logged = [r for r in caplog.records if "event_time" in r.getMessage()]
    assert len(logged) == 1 and logged[0].exc_info is not None


def test_rate_limited_log_reports_what_it_held_back(caplog: pytest.LogCaptureFixture) -> None:
    log = RateLimitedLog(logging.getLogger("t"), every=60.0)
    with caplog.at_level(logging.ERROR):
        for every in (60.0, 60.0, 0.0):
            log.every = every
            try:
                raise KeyError("x")
            except KeyError:
                log.exception("k", "failed")
    assert [r.getMessage() for r in caplog.records] == [
        "failed", "failed (1 more since the last one logged)"]


def test_finite_only_metrics() -> None:
    metrics = Metrics(CollectorRegistry())
    child = metrics.revenue.labels(journey="j")
    for v in (10.0, 1e308, 1e308, float("inf"), float("nan"), -1.0):
        inc_finite(child, v)
    assert _count(metrics, "frictionwatch_revenue_total", journey="j") == 10.0
    gauge = metrics.model_quality.labels("m", "roc_auc")
    assert set_finite(gauge, 0.7) and not set_finite(gauge, float("nan"))
    assert _count(metrics, "frictionwatch_model_quality", model="m", metric="roc_auc") == 0.7
