"""The worker's web server as configured, without a broker: where it binds, its body limit, and
the warning an open collector beyond loopback gets."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from streams.app import create_worker
from streams.metrics import Metrics
from streams.settings import Settings


def build(tmp_path: Path, **kw: Any) -> Any:
    settings = Settings(data_dir=tmp_path, **kw)
    return create_worker(settings, "localhost:1", metrics=Metrics(CollectorRegistry())).app


def test_binds_to_web_host_with_the_payload_limit(tmp_path: Path) -> None:
    app = build(tmp_path, web_host="127.0.0.1", max_payload_bytes=4096)
    assert app.conf.web_bind == "127.0.0.1"
    assert app.conf.web_application_options["client_max_size"] == 4096
    assert build(tmp_path, web_host="10.1.2.3").conf.web_bind == "10.1.2.3"


def test_open_collector_beyond_loopback_is_warned_about(tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="streams.collector"):
        build(tmp_path, web_host="127.0.0.1")
        build(tmp_path, web_host="0.0.0.0", collector_tokens=["t"])
        assert not caplog.records
        build(tmp_path, web_host="0.0.0.0", segment_write_keys=["k"])
    (record,) = caplog.records
    message = record.getMessage()
    assert "0.0.0.0" in message and "/collect/ga4" in message
    assert "/collect/segment" not in message


class _EndlessBody:
    """A body that never ends, counting what was read of it."""

    def __init__(self) -> None:
        self.read_bytes = 0

    async def read(self, n: int) -> bytes:
        self.read_bytes += n
        return b"x" * n


class _Body:
    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.step = data, step

    async def read(self, n: int) -> bytes:
        out, self.data = self.data[:min(n, self.step)], self.data[min(n, self.step):]
        return out


def test_capped_read_stops_past_the_limit_and_keeps_small_bodies_whole() -> None:
    import asyncio

    from streams.collector import CHUNK, read_capped

    endless = _EndlessBody()
    assert asyncio.run(read_capped(endless, 1_000_000)) is None
    assert endless.read_bytes <= 1_000_000 + CHUNK
    data = bytes(range(256)) * 400
    assert asyncio.run(read_capped(_Body(data, 7_000), len(data))) == data
    assert asyncio.run(read_capped(_Body(data, 7_000), len(data) - 1)) is None
    assert asyncio.run(read_capped(_Body(b"", 1), 10)) == b""
