"""What keeps the worker's shell alive whatever the input: sends that never crash the producer,
timers that never end the worker, counters that never read +Inf.

Faust sends through a producer buffer that flushes in the background: a record above the
producer's ``max_request_size`` raises ``MessageSizeTooLargeError`` there, far from the agent
that sent it, and ends the whole app. So every value the worker sends, and every table write
(its changelog record), is measured first; an oversized one becomes a dead letter, with a
bounded excerpt, instead. An exception from ``await topic.send(...)`` itself is caught too.

A Faust timer whose body raises ends the worker; ``Guard.timer`` runs the body again at its
next interval instead, counts the error in ``frictionwatch_timer_errors_total{timer}`` and
logs it with its traceback (at most once a minute per timer: a timer failing every second must
not flood the log).

>>> g = Guard(limit=1000)
>>> g.fits(b"k", b"x" * 100), g.fits(b"k", b"x" * 1000)
(True, False)
>>> g.letter("too_large", "x", "sessions", b"x" * 10_000).original_size
10000
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiokafka.record.default_records import DefaultRecordBatchBuilder

from models.finite import MAX_AMOUNT
from streams.deadletter import DeadLetter, encode_dead_letter, make_dead_letter

__all__ = ["EXCERPT_BYTES", "Guard", "RateLimitedLog", "inc_finite", "set_finite"]

log = logging.getLogger(__name__)

#: Bytes of an offending input or output a dead letter keeps: enough to see what it was, small
#: enough that a dead letter never approaches the producer's limit itself.
EXCERPT_BYTES = 4096
#: Below this many bytes under the limit a record surely fits (aiokafka's estimate adds a batch
#: header of 61 bytes, at most 21 of record overhead and a few varints per header): only
#: records near the limit pay for the exact estimate.
_SLACK = 4096


def inc_finite(counter: Any, amount: float) -> bool:
    """``counter.inc(amount)`` if ``amount`` is a number from 0 to ``MAX_AMOUNT``: a
    Prometheus counter that once took +Inf (or two amounts of 1e308, which sum to it) reads
    +Inf for the life of the process, and a negative amount raises.

    >>> from prometheus_client import CollectorRegistry, Counter
    >>> c = Counter("c", "c", registry=CollectorRegistry())
    >>> [inc_finite(c, v) for v in (2.5, 1e308, 1e308, float("nan"), -1)], c._value.get()
    ([True, False, False, False, False], 2.5)
    """
    if 0 <= amount <= MAX_AMOUNT:  # False for NaN and inf too
        counter.inc(amount)
        return True
    return False


def set_finite(gauge: Any, value: float) -> bool:
    """``gauge.set(value)`` if ``value`` is finite (NaN: nothing to say yet)."""
    if math.isfinite(value):
        gauge.set(value)
        return True
    return False


class RateLimitedLog:
    """Log an exception with its traceback at most once per ``every`` seconds per key; the
    others are counted and their number given with the next one logged."""

    def __init__(self, logger: logging.Logger, every: float = 60.0) -> None:
        self.logger = logger
        self.every = every
        self._last: dict[str, float] = {}
        self._quiet: dict[str, int] = {}

    def exception(self, key: str, msg: str, *args: Any) -> None:
        self._log(key, msg, args, exc_info=True)

    def error(self, key: str, msg: str, *args: Any) -> None:
        """As ``exception``, outside an ``except`` block (no traceback)."""
        self._log(key, msg, args, exc_info=False)

    def _log(self, key: str, msg: str, args: tuple[Any, ...], exc_info: bool) -> None:
        now = time.monotonic()
        if now - self._last.get(key, -math.inf) < self.every:
            self._quiet[key] = self._quiet.get(key, 0) + 1
            return
        self._last[key] = now
        quiet = self._quiet.pop(key, 0)
        suffix = f" ({quiet} more since the last one logged)" if quiet else ""
        self.logger.error(msg + suffix, *args, exc_info=exc_info)


class Guard:
    """Size checks and safe sends for one worker.

    Parameters
    ----------
    limit
        The producer's ``max_request_size``: no record above it is handed to the producer.
    dead_topic
        Where dead letters go (None in unit tests: they are only counted).
    dead_counter
        ``frictionwatch_dead_letters_total`` (labels reason, stage), or None.
    timer_errors
        ``frictionwatch_timer_errors_total`` (label timer), or None.
    """

    def __init__(self, limit: int, dead_topic: Any = None, dead_counter: Any = None,
                 timer_errors: Any = None) -> None:
        self.limit = limit
        self.dead_topic = dead_topic
        self.dead_counter = dead_counter
        self.timer_errors = timer_errors
        self.errors = RateLimitedLog(log)

    def fits(self, key: bytes | None, value: bytes | None,
             headers: Sequence[tuple[str, bytes]] | None = None) -> bool:
        """Whether the producer takes this record (aiokafka's own size estimate)."""
        n = len(value or b"") + len(key or b"")
        if headers:
            for k, v in headers:
                n += len(k) + len(v or b"")
        if n + _SLACK < self.limit:
            return True
        est = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, list(headers or ()))
        return bool(est <= self.limit)

    async def send(self, topic: Any, key: bytes | None, value: bytes, *, stage: str,
                   what: str, headers: Sequence[tuple[str, bytes]] | None = None,
                   at: Any = None) -> bool:
        """Send one record, or dead-letter it: too large for the producer (``too_large``),
        or the send raised (``processing_error``). ``what`` names it in the dead letter's
        detail; ``at`` is the Kafka message it came from, if any (its position is kept)."""
        if not self.fits(key, value, headers):
            await self.dead([self.letter(
                "too_large", f"{what} of {len(value)} bytes is over the producer's limit "
                f"{self.limit}: not sent", stage, value, at)])
            return False
        try:
            await topic.send(key=key, value=value, headers=list(headers) if headers else None)
        except Exception as exc:  # noqa: BLE001 - a failed send must not end the agent
            self.errors.exception(f"send:{stage}", "sending %s failed", what)
            await self.dead([self.letter("processing_error",
                                         f"sending {what} failed: {type(exc).__name__}: {exc}",
                                         stage, value, at)])
            return False
        return True

    def letter(self, reason: Any, detail: str, stage: str, original: bytes | None,
               at: Any = None) -> DeadLetter:
        """A dead letter with an excerpt of ``original`` and the position of message ``at``."""
        msg = getattr(at, "message", None)
        return make_dead_letter(reason, detail, stage, original or b"", time.time(),
                                getattr(msg, "topic", None), getattr(msg, "partition", None),
                                getattr(msg, "offset", None), keep=EXCERPT_BYTES)

    async def dead(self, dead: Sequence[DeadLetter]) -> None:
        """Count and send dead letters; one that cannot be sent is logged, never raised."""
        for d in dead:
            if self.dead_counter is not None:
                self.dead_counter.labels(reason=d.reason, stage=d.stage).inc()
            if self.dead_topic is None:
                continue
            value = encode_dead_letter(d)
            if not self.fits(None, value):
                # Dead letters from elsewhere may carry whole inputs: keep an excerpt.
                d = make_dead_letter(d.reason, d.detail, d.stage, d.original_bytes, d.time,
                                     d.topic, d.partition, d.offset, keep=EXCERPT_BYTES,
                                     size=d.original_size)
                value = encode_dead_letter(d)
            try:
                await self.dead_topic.send(key=None, value=value)
            except Exception:  # noqa: BLE001 - nowhere left to send it: log it
                self.errors.exception("send:dead_letters", "sending a dead letter failed "
                                      "(%s at %s)", d.reason, d.stage)

    def timer(self, app: Any, interval: float, **kwargs: Any
              ) -> Callable[[Callable[[], Awaitable[None]]], Any]:
        """``@app.timer(interval)`` whose body's exceptions are counted and logged, never
        raised: the timer runs again at its next interval."""

        def wrap(fun: Callable[[], Awaitable[None]]) -> Any:
            name = fun.__name__
            child = self.timer_errors.labels(timer=name) if self.timer_errors else None

            @functools.wraps(fun)
            async def guarded() -> None:
                try:
                    await fun()
                except Exception:  # noqa: BLE001 - a timer's error must not end the worker
                    if child is not None:
                        child.inc()
                    self.errors.exception(f"timer:{name}", "timer %s failed; it runs again "
                                          "in %s s", name, interval)

            return app.timer(interval=interval, **kwargs)(guarded)

        return wrap
