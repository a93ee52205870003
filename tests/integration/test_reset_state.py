"""RocksDB table state that outlives the broker's data: the worker refuses it with the command
that fixes it, and ``frictionwatch worker --reset-state`` removes it (nothing else) and starts.

Two embedded brokers stand for "the broker" before and after its data was lost: the state is
built on A, and B has never seen it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kafkahelp import (
    WorkerProcess,
    changelog_topic,
    isolated_settings,
    producer,
    read_topic,
    settings_env,
    topic,
)

from streams.app import SESSIONS_TABLE
from streams.broker import EmbeddedBroker
from streams.kafka_io import ensure_topics
from streams.settings import Settings
from streams.statestore import local_offsets
from streams.topics import SOURCE_HEADER

pytestmark = pytest.mark.integration


def worker_cmd(settings: Settings, bootstrap: str, log: Path, *args: str
               ) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "streams.cli", "worker", *args],
                                env=settings_env(settings, bootstrap), stdout=out, stderr=out,
                                stdin=subprocess.DEVNULL)


def test_state_ahead_of_changelog_is_refused_with_the_fix_and_reset_state_starts(
    tmp_path: Path,
) -> None:
    pytest.importorskip("rocksdict")
    settings = isolated_settings(tmp_path, store="rocksdb://", commit_interval=0.5,
                                 abandonment_model=False)
    tabledir = settings.data_dir / "v1" / "tables"
    keep = settings.data_dir / "models" / "keep.txt"  # other state under the data dir

    with EmbeddedBroker() as a:
        ensure_topics(settings, a.bootstrap_servers)
        with WorkerProcess(settings, a.bootstrap_servers, tmp_path / "a.log"):
            p = producer(a.bootstrap_servers)
            for i in range(40):
                call = {"type": "track", "event": "Element Clicked", "messageId": f"m{i}",
                        "anonymousId": f"a{i % 4}", "context": {"sessionId": f"s{i % 4}"},
                        "timestamp": "2026-12-05T10:00:00Z", "properties": {"x": 1, "y": 2}}
                p.send(topic(settings, "ingest"), key=f"a{i % 4}".encode(),
                       value=json.dumps(call).encode(), headers=[(SOURCE_HEADER, b"segment")])
            p.flush()
            p.close()
            read_topic(a.bootstrap_servers, changelog_topic(settings, SESSIONS_TABLE),
                       until=lambda rs: len(rs) >= 4, timeout=60)
    assert local_offsets(tabledir), "the worker on broker A left no RocksDB state"
    keep.parent.mkdir(parents=True, exist_ok=True)
    keep.write_text("not table state")

    with EmbeddedBroker() as b:
        ensure_topics(settings, b.bootstrap_servers)
        # On a broker without that data the worker refuses, and says how to fix it.
        refused = worker_cmd(settings, b.bootstrap_servers, tmp_path / "b1.log")
        try:
            rc = refused.wait(timeout=90)
        finally:
            if refused.poll() is None:
                refused.kill()
                refused.wait()
        log = (tmp_path / "b1.log").read_text(errors="replace")
        assert rc != 0, log[-3000:]
        assert "ahead of its changelog" in log and "ConsistencyError" not in log, log[-3000:]
        assert "frictionwatch worker --reset-state" in log, log[-3000:]

        # --reset-state removes the table state, only that, and the worker starts.
        started = worker_cmd(settings, b.bootstrap_servers, tmp_path / "b2.log", "--reset-state")
        probe = WorkerProcess(settings, b.bootstrap_servers, tmp_path / "b2.log")
        probe.proc = started
        try:
            deadline = time.monotonic() + 90
            while probe.assigned_partitions() == 0 and time.monotonic() < deadline:
                assert started.poll() is None, probe.log_tail()
                time.sleep(0.2)
            assert probe.assigned_partitions() > 0, probe.log_tail()
        finally:
            probe.stop()
        assert "removed the local table state" in probe.log_tail()
        assert keep.read_text() == "not table state"
