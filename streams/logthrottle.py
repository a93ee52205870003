"""Repeated client-library log lines collapsed while the broker is down.

aiokafka retries a failed metadata update with no backoff when no broker answers (its sender
and fetcher force a new update as soon as one fails), and logs two lines per attempt.
Measured with the worker under load and its Apache Kafka broker stopped: about 1,000 lines and
124 KB of log per second, 12 MB for a 40 s outage, while the worker itself was fine and
resumed when the broker came back. ``streams.clientfixes`` slows the retries to about 20 a
second; their lines still repeat for as long as the outage lasts. This filter lets the first
of each kind of line through, then at most one per ``interval`` seconds with the count it stood
for, so an outage of an hour costs a few hundred lines instead of gigabytes.

>>> import logging
>>> clock = iter([0.0, 1.0, 2.0, 12.0]).__next__
>>> f = RepeatFilter(interval=10.0, clock=clock)
>>> rec = lambda: logging.makeLogRecord({"msg": "Unable to update metadata from %s",
...                                       "args": ([1],), "levelno": logging.ERROR})
>>> [f.filter(rec()) for _ in range(4)]
[True, False, False, True]
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

__all__ = ["RepeatFilter", "throttle_client_logs"]

#: Loggers of the Kafka client libraries the worker uses.
CLIENT_LOGGERS = ("aiokafka", "kafka")


class RepeatFilter(logging.Filter):
    """Pass a record, then drop records with the same logger and message template for
    ``interval`` seconds; the next one passed says how many were dropped."""

    def __init__(self, interval: float = 10.0, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        super().__init__()
        self.interval = interval
        self.clock = clock
        # (logger, template) -> (time last passed, records dropped since). Bounded: the
        # templates are the libraries' own format strings, a few dozen at most.
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        now = self.clock()
        last = self._seen.get(key)
        if last is not None and now - last[0] < self.interval:
            self._seen[key] = (last[0], last[1] + 1)
            return False
        dropped = last[1] if last else 0
        self._seen[key] = (now, 0)
        if dropped:
            record.msg = f"{record.msg} ({dropped} more like this in the last " \
                         f"{now - last[0]:.0f} s)"  # type: ignore[index]
        return True


def _descendants(roots: Iterable[str]) -> list[logging.Logger]:
    names = [n for n in logging.root.manager.loggerDict
             if any(n == r or n.startswith(r + ".") for r in roots)]
    return [logging.getLogger(n) for n in sorted(set(names) | set(roots))]


def throttle_client_logs(interval: float = 10.0) -> RepeatFilter:
    """Attach one ``RepeatFilter`` to the Kafka client libraries' loggers (a logger's filters
    see only the records logged on it, so each module's logger gets it). Call after importing
    them."""
    f = RepeatFilter(interval)
    for logger in _descendants(CLIENT_LOGGERS):
        logger.addFilter(f)
    return f
