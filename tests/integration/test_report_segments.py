"""``frictionwatch report --broker`` names customer segments with the workers' segmenter, as
last published on the checkpoints topic, so its segment ids are the dashboards'."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
from kafkahelp import isolated_settings, producer, topic

from models.segments import Segmenter
from streams.checkpoints import envelope
from streams.kafka_io import ensure_topics
from streams.report import gather_kafka

pytestmark = pytest.mark.integration


def test_the_report_takes_the_latest_published_segmenter(kafka_bootstrap: str,
                                                         tmp_path: Path) -> None:
    settings = isolated_settings(tmp_path)
    assert gather_kafka(settings, kafka_bootstrap, timeout=30).segmenter is None  # no topic
    ensure_topics(settings, kafka_bootstrap)
    rng = random.Random(1)
    old, new = Segmenter(), Segmenter()
    for i in range(400):
        x = {"recency": rng.random(), "frequency": 3 * rng.random(), "spend": 5 * rng.random(),
             "friction": 0.1, "support": 0.0}
        new.learn_one(x)
        if i < 100:
            old.learn_one(x)
    p = producer(kafka_bootstrap)
    for seg in (old, new):  # the later one is the latest state
        p.send(topic(settings, "checkpoints"), key=b"model/segments",
               value=envelope(seg.checkpoint(), seg.learned, time.time()))
    p.flush()
    got = gather_kafka(settings, kafka_bootstrap, timeout=30).segmenter
    assert got is not None and got.learned == 400 and got.segments() == new.segments()
    other_k = settings.model_copy(update={"segments_k": 3})
    assert gather_kafka(other_k, kafka_bootstrap, timeout=30).segmenter is None
