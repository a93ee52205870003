"""Readiness tells the truth: a worker whose broker is gone answers 503 with the reason, while
liveness still answers 200."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from kafkahelp import WorkerProcess, isolated_settings

from streams.broker import EmbeddedBroker
from streams.kafka_io import ensure_topics

pytestmark = pytest.mark.integration


def get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:  # noqa: S310 - loopback
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def test_health_is_503_with_the_reason_when_the_broker_is_gone(tmp_path):  # type: ignore[no-untyped-def]
    # A broker of its own, so stopping it leaves the other tests' broker alone.
    broker = EmbeddedBroker().start()
    worker = None
    try:
        settings = isolated_settings(tmp_path)
        ensure_topics(settings, broker.bootstrap_servers)
        worker = WorkerProcess(settings, broker.bootstrap_servers, tmp_path / "worker.log")
        worker.start()
        code, body = get(worker.url + "/health")
        assert code == 200 and body["status"] == "ok", body
        assert body["assigned_partitions"] > 0

        broker.stop()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            code, body = get(worker.url + "/health")
            if code == 503:
                break
            time.sleep(0.5)
        assert code == 503, body
        assert body["status"] == "unready" and body["app"] == settings.app_id
        assert "assigned_partitions" in body
        assert any(r.startswith("broker unreachable") for r in body["reasons"]), body
        assert body["broker"]["reachable"] is False
        # The process still serves: liveness is not readiness.
        assert get(worker.url + "/health/live")[0] == 200
        # What the worker's starter reads treats an unready worker as owning nothing.
        assert worker.assigned_partitions() == 0
    finally:
        if worker is not None:
            worker.kill()
        broker.stop()
