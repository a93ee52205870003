"""streams.logthrottle: a flood of identical client log lines becomes one line per interval."""

from __future__ import annotations

import logging

import pytest

from streams.logthrottle import RepeatFilter, throttle_client_logs


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_flood_passes_once_per_interval_with_the_count() -> None:
    clock = Clock()
    f = RepeatFilter(interval=10.0, clock=clock)
    logger = logging.getLogger("fwtest.throttle")
    logger.addFilter(f)
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    logger.propagate = False
    try:
        for i in range(1000):  # a second of aiokafka's retry loop
            clock.now = i / 1000
            logger.error("Unable to update metadata from %s", [1])
            logger.error("Unable connect to node with id %s: %s", 1, "refused")
        assert [r.getMessage() for r in records] == [
            "Unable to update metadata from [1]", "Unable connect to node with id 1: refused"]
        clock.now = 10.5
        logger.error("Unable to update metadata from %s", [1])
        assert records[-1].getMessage() == (
            "Unable to update metadata from [1] (999 more like this in the last 10 s)")
        logger.warning("Heartbeat failed for group %s", "g")  # another template: passes
        assert len(records) == 4
    finally:
        logger.removeHandler(handler)
        logger.removeFilter(f)


def test_the_filter_is_on_every_aiokafka_module_logger() -> None:
    pytest.importorskip("aiokafka.client")
    import aiokafka.client
    import aiokafka.producer.sender  # noqa: F401

    f = throttle_client_logs()
    try:
        # The loggers the flooding lines come from (aiokafka.client logs as "aiokafka").
        for logger in (aiokafka.client.log, aiokafka.producer.sender.log):
            assert f in logger.filters, logger.name
    finally:
        for logger in (logging.getLogger(n) for n in list(logging.root.manager.loggerDict)):
            if isinstance(logger, logging.Logger) and f in logger.filters:
                logger.removeFilter(f)
