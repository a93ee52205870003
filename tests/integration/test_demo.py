"""``frictionwatch demo`` runs to its summary and the worker keeps up with what it sent."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid

import pytest

pytestmark = pytest.mark.integration


def test_demo_runs_to_summary(kafka_bootstrap: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    tag = uuid.uuid4().hex[:8]
    env = {
        "FRICTIONWATCH_TOPIC_PREFIX": f"demo{tag}.",
        "FRICTIONWATCH_APP_ID": f"fwdemo-{tag}",
        "FRICTIONWATCH_PARTITIONS": "2",
        "FRICTIONWATCH_BROKER_SESSION_TIMEOUT": "6",
        "COLUMNS": "120",
    }
    truth = tmp_path / "truth.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "streams.cli", "demo", "--broker", kafka_bootstrap,
         "--duration", "8", "--speed", "10", "--bad-every", "50", "--truth", str(truth),
         "--history", "3"],
        env={**__import__("os").environ, **env}, capture_output=True, text=True, timeout=180,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    # The summary is wrapped to the terminal's width, so a sentence may span lines.
    flat = " ".join(out.split())
    m = re.search(r"The demo sent ([\d,]+) messages of shop traffic, one event each "
                  r"\(([\d,]+) of them the shop's past 3 minutes", flat)
    assert m, out
    sent, history = (int(g.replace(",", "")) for g in m.groups())
    assert sent > history > 100
    m = re.search(r"The worker processed ([\d,]+) events", flat)
    assert m and int(m.group(1).replace(",", "")) == sent, out
    m = re.search(r"sent ([\d,]+) of the ([\d,]+) malformed messages to the dead-letter topic",
                  flat)
    assert m and m.group(1) == m.group(2) != "0", out
    assert truth.exists() and truth.read_text().count('"record":"outcome"') > 10
    m = re.search(r"([\d,]+) session alerts and ([\d,]+) chat offers sent", flat)
    assert m, out
    alerts, chats = (int(g.replace(",", "")) for g in m.groups())
    assert 0 <= chats <= alerts  # at most one chat offer per alert
