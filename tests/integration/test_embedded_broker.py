"""The embedded tansu broker starts on a free port, speaks Kafka, and is gone after exit."""

from __future__ import annotations

import pytest

from streams.broker import EmbeddedBroker, _api_versions_ok, broker_for

pytestmark = pytest.mark.integration


def test_starts_answers_and_stops() -> None:
    with EmbeddedBroker() as broker:
        host, _, port = broker.bootstrap_servers.rpartition(":")
        assert host == "127.0.0.1"
        assert _api_versions_ok(host, int(port), timeout=2.0)
        proc = broker._proc
        assert proc is not None and proc.poll() is None
    assert proc.poll() is not None  # the process is gone
    assert not _api_versions_ok(host, int(port), timeout=0.5)


def test_configured_servers_are_used_as_given() -> None:
    with broker_for("kafka-1:9092,kafka-2:9092") as bootstrap:
        assert bootstrap == "kafka-1:9092,kafka-2:9092"


def test_broker_for_none_starts_one() -> None:
    with broker_for(None) as bootstrap:
        host, _, port = bootstrap.rpartition(":")
        assert _api_versions_ok(host, int(port), timeout=2.0)
