"""Support trends end to end: help-desk webhooks through the collector, a day of steady
tickets then a burst about a new topic; the worker writes one support-trends record for it,
keyed by topic, saying no knowledge-base article covers it."""

from __future__ import annotations

import json
import time

import pytest
from kafkahelp import WorkerProcess, http_post, isolated_settings, read_topic, topic

from streams.kafka_io import ensure_topics

pytestmark = pytest.mark.integration

T0 = 1767225600  # 2026-01-01T00:00:00Z


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _ticket(i: int, t: float, subject: str) -> bytes:
    ticket = {"id": i, "requester_id": 700 + i, "subject": subject, "description": subject,
              "status": "new", "created_at": _iso(t), "updated_at": _iso(t)}
    return json.dumps({"ticket": ticket}).encode()


def test_a_ticket_burst_is_written_as_a_rising_topic_without_kb_article(
        tmp_path, kafka_bootstrap) -> None:
    settings = isolated_settings(tmp_path, kb_articles=["Using promo codes"])
    ensure_topics(settings, kafka_bootstrap)
    worker = WorkerProcess(settings, kafka_bootstrap, tmp_path / "worker.log").start()
    try:
        url = worker.url + "/collect/support"
        for i in range(24):  # a day of one ticket an hour
            assert http_post(url, _ticket(i, T0 + i * 3600, "Where is my order?"))[0] == 200
        burst = T0 + 24 * 3600
        for j in range(8):  # then one every 5 minutes about a broken tracking link
            assert http_post(url, _ticket(100 + j, burst + j * 300, "Tracking link 404"))[0] \
                == 200
        records = read_topic(kafka_bootstrap, topic(settings, "support_trends"),
                             until=lambda rs: len(rs) > 0)
    finally:
        worker.stop()
    [rec] = records
    doc = json.loads(rec.value)
    assert rec.key == doc["topic"].encode()
    assert {"tracking link", "404"} <= set(doc["phrases"])
    assert doc["kb_article"] is None and doc["tickets"] >= 5
    assert all(x["ticket_id"] in {str(100 + j) for j in range(8)} for x in doc["examples"])
