"""``frictionwatch simulate --out`` then ``frictionwatch replay`` into a running worker: every
simulated payload becomes one canonical event, and a bad line is dead-lettered, not lost."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from kafkahelp import http_get, settings_env

from streams.sim import read_truth

pytestmark = pytest.mark.integration


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streams.cli", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def metric_values(text: str, name: str) -> dict[str, float]:
    """``{labels: value}`` of one metric family in Prometheus text format (non-zero ones)."""
    return {m.group(1): float(m.group(2))
            for m in re.finditer(rf"^{name}\{{(.*)\}} (\S+)$", text, re.M)
            if float(m.group(2))}


def test_simulated_file_replays_through_the_worker(worker, kafka_bootstrap, tmp_path: Path):
    traffic, truth = tmp_path / "traffic.jsonl", tmp_path / "truth.jsonl"
    made = cli("simulate", "--rate", "40", "--duration", "60", "--seed", "3",
               "--start", "2026-02-01T12:00:00Z", "--incident", "payment_outage@10+40",
               "--out", str(traffic), "--truth", str(truth))
    assert made.returncode == 0, made.stderr
    lines = traffic.read_text().splitlines()
    sources = Counter(json.loads(line)["source"] for line in lines)
    assert len(lines) > 1000 and sources["segment"] and sources["ga4"]
    assert read_truth(truth).outcomes
    with traffic.open("a") as f:
        f.write("this line is not JSON\n\n")

    sent = cli("replay", str(traffic), "--rate", "0",
               env=settings_env(worker.settings, kafka_bootstrap))
    assert sent.returncode == 0, sent.stderr
    assert f"sent {len(lines) + 1:,} messages" in sent.stderr
    assert "1 lines were not JSON" in sent.stderr and "1 blank lines skipped" in sent.stderr

    # Every payload is one canonical event, counted under its fw-source header.
    deadline = time.monotonic() + 45
    while True:
        text = http_get(worker.url + "/metrics")
        events = metric_values(text, "frictionwatch_events_total")
        by_source: Counter[str] = Counter()
        for labels, value in events.items():
            by_source[labels.split('"')[1]] += int(value)  # source="...",type="..."
        dead = metric_values(text, "frictionwatch_dead_letters_total")
        if (by_source == sources and dead) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert by_source == sources, worker.log_tail()
    assert dead == {'reason="not_json",stage="normalize"': 1.0}
    assert events['source="segment",type="order_completed"'] >= 1
