"""Shared fixtures. Integration tests use a real broker: the one named by
FRICTIONWATCH_TEST_BOOTSTRAP_SERVERS (CI sets it to a real Apache Kafka), else an embedded tansu."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from streams.broker import EmbeddedBroker
from streams.kafka_io import ensure_topics

TEST_BROKER_ENV = "FRICTIONWATCH_TEST_BOOTSTRAP_SERVERS"


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    configured = os.environ.get(TEST_BROKER_ENV)
    if configured:
        yield configured
        return
    with EmbeddedBroker() as broker:
        yield broker.bootstrap_servers


@pytest.fixture
def fw_settings(tmp_path, kafka_bootstrap):  # type: ignore[no-untyped-def]
    from kafkahelp import isolated_settings

    settings = isolated_settings(tmp_path)
    ensure_topics(settings, kafka_bootstrap)
    return settings


@pytest.fixture
def worker(fw_settings, kafka_bootstrap, tmp_path):  # type: ignore[no-untyped-def]
    from kafkahelp import WorkerProcess

    w = WorkerProcess(fw_settings, kafka_bootstrap, tmp_path / "worker.log").start()
    yield w
    w.stop()
