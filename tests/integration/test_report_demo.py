"""``frictionwatch report --broker`` draws its page from what a worker wrote during a demo."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from streams.report import PLOTS

pytestmark = pytest.mark.integration

PNG = b"\x89PNG\r\n\x1a\n"


def test_report_from_the_demos_topics(kafka_bootstrap: str, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    env = {
        **os.environ,
        "FRICTIONWATCH_TOPIC_PREFIX": f"rep{tag}.",
        "FRICTIONWATCH_APP_ID": f"fwrep-{tag}",
        "FRICTIONWATCH_PARTITIONS": "2",
        "FRICTIONWATCH_BROKER_SESSION_TIMEOUT": "6",
        # 80 shop seconds of demo: with the default 30-minute gap no session would end, and
        # there would be no outcomes (labels) or holdout results to report.
        "FRICTIONWATCH_SESSION_GAP": "20",
        "FRICTIONWATCH_HOLDOUT_CONTROL_SHARE": "0.5",
        "COLUMNS": "200",
    }
    demo = subprocess.run(
        [sys.executable, "-m", "streams.cli", "demo", "--broker", kafka_bootstrap,
         "--duration", "8", "--speed", "10"],
        env=env, capture_output=True, text=True, timeout=180,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    out = tmp_path / "report"
    proc = subprocess.run(
        [sys.executable, "-m", "streams.cli", "report", "--broker", kafka_bootstrap,
         "--out", str(out)],
        env=env, capture_output=True, text=True, timeout=120,
    )
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text
    assert f"wrote {out / 'index.html'}" in text
    assert re.search(r"chat_offer: [\d,]+ control / [\d,]+ treatment units", text), text
    for name in PLOTS.values():
        raw = (out / name).read_bytes()
        assert raw.startswith(PNG) and len(raw) > 5_000, name
    page = (out / "index.html").read_text()
    for name in PLOTS.values():
        assert f"src='{name}'" in page
    assert 'class="lift"' in page and "absolute conversion lift" in page
    assert f"rep{tag}.experiments" in page  # it read the worker's topics, not another's
    m = re.search(r"([\d,]+) sessions ended, ([\d,]+) session alerts, ([\d,]+) holdout", page)
    assert m, page
    sessions, alerts, records = (int(g.replace(",", "")) for g in m.groups())
    # The worker's session outcomes, alerts and holdout records came through.
    assert sessions > 0 and alerts > 0 and records > 0
