"""A worker reads what the others published on the checkpoints topic: the latest value of each
key (a tombstone removes it), from a consumer with no group and no subscription. Before this
test, the reader asked a consumer for the partitions of a topic it kept no metadata for, found
none, and every worker started cold: models not adopted, incident baselines not handed over."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from kafkahelp import isolated_settings, producer, topic

from streams.checkpoints import envelope, read_published
from streams.kafka_io import ensure_topics

pytestmark = pytest.mark.integration


def test_read_published_gives_each_keys_latest_value(kafka_bootstrap: str,
                                                     tmp_path: Path) -> None:
    settings = isolated_settings(tmp_path)
    name = topic(settings, "checkpoints")
    assert asyncio.run(read_published(kafka_bootstrap, name, {}, timeout=10)) == {}
    ensure_topics(settings, kafka_bootstrap)
    p = producer(kafka_bootstrap)
    now = time.time()
    p.send(name, key=b"model/churn", value=envelope(b"old", 10, now))
    p.send(name, key=b"model/churn", value=envelope(b"new", 20, now))
    p.send(name, key=b"step/checkout", value=envelope(b"gone", 5, now))
    p.send(name, key=b"step/checkout", value=None)
    p.send(name, key=b"model/segments", value=envelope(b"seg", 7, now))
    p.flush()
    got = asyncio.run(read_published(kafka_bootstrap, name, {}, timeout=30))
    assert {k: (v.data, v.learned) for k, v in got.items()} == {
        "model/churn": (b"new", 20), "model/segments": (b"seg", 7)}
