"""The experiments agent: arm totals from the holdout records, exact after a SIGKILL and a
restart, and bad records dead-lettered."""

from __future__ import annotations

import json
import math
import random
import re
import time

import pytest
from kafkahelp import WorkerProcess, isolated_settings, producer, read_topic, topic

from detectors.holdout import Experiment
from models.experiments import Ledger
from streams import detection
from streams.deadletter import decode_dead_letter
from streams.kafka_io import ensure_topics

pytestmark = pytest.mark.integration


def _records(exp: Experiment, first: int, n: int, rng: random.Random) -> list[dict[str, object]]:
    """An exposure and a result for each of ``n`` anonymous-session units."""
    out: list[dict[str, object]] = []
    for i in range(first, first + n):
        unit, t = f"s:sess-{i}", 1_767_225_600.0 + i
        arm = exp.arm(unit)
        revenue = round(rng.uniform(20, 200), 2) if rng.random() < 0.3 else 0.0
        base = {"experiment": exp.name, "arm": arm, "unit": unit, "unit_kind": "session",
                "session_id": f"sess-{i}"}
        out.append({**base, "type": "exposure", "intervention": "chat", "time": t,
                    "delivered": arm == "treatment", "id": f"x{i}"})
        out.append({**base, "type": "result", "exposed_at": t, "end": t + 1800,
                    "converted": revenue > 0, "orders": int(revenue > 0), "revenue": revenue})
    return out


def _gauges(worker: WorkerProcess) -> dict[tuple[str, str], float]:
    text = worker.metrics_text()
    found = re.findall(r'^frictionwatch_experiment_(units|conversions|revenue)'
                       r'\{arm="(\w+)",experiment="chat_offer"\} (\S+)$', text, re.M)
    return {(what, arm): float(v) for what, arm, v in found}


def _wait_for(worker: WorkerProcess, units: int, timeout: float = 90) -> dict[tuple[str, str],
                                                                                float]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        g = _gauges(worker)
        if g.get(("units", "control"), 0) + g.get(("units", "treatment"), 0) >= units:
            time.sleep(6)  # one more gauge round: anything counted twice would show
            return _gauges(worker)
        time.sleep(0.5)
    raise AssertionError(f"gauges did not reach {units} units: {_gauges(worker)}\n"
                         f"{worker.log_tail()}")


def _expected(settings: object, records: list[dict[str, object]]) -> dict[tuple[str, str],
                                                                          float]:
    led = detection.ledger(settings)  # type: ignore[arg-type]
    for r in records:
        led.add(r)
    led.close(math.inf)
    return _totals(led)


def _totals(led: Ledger) -> dict[tuple[str, str], float]:
    out = {}
    for arm, st in led.totals["chat_offer"].items():
        out[("units", arm)] = float(st.units)
        out[("conversions", arm)] = float(st.conversions)
        out[("revenue", arm)] = st.revenue
    return out


def _close(a: dict[tuple[str, str], float], b: dict[tuple[str, str], float]) -> bool:
    return a.keys() == b.keys() and all(math.isclose(a[k], b[k], abs_tol=0.01) for k in a)


def test_arm_totals_are_exact_across_a_sigkill_and_restart(kafka_bootstrap, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # No offset commit before the kill: the restart replays every record the table holds.
    settings = isolated_settings(tmp_path, commit_interval=60.0, holdout_control_share=0.3)
    ensure_topics(settings, kafka_bootstrap)
    exp = detection.experiments(settings)[0]
    rng = random.Random(5)
    first, second = _records(exp, 0, 300, rng), _records(exp, 300, 100, rng)
    p = producer(kafka_bootstrap)
    name = topic(settings, "experiments")

    def send(records: list[dict[str, object]]) -> None:
        for r in records:
            p.send(name, key=str(r["unit"]).encode(), value=json.dumps(r).encode())
        p.flush()

    send(first)
    p.send(name, key=b"s:bad", value=b'{"type": "exposure", "arm": "maybe"}')
    p.flush()
    w1 = WorkerProcess(settings, kafka_bootstrap, tmp_path / "w1.log").start()
    got = _wait_for(w1, 300)
    assert _close(got, _expected(settings, first)), (got, _expected(settings, first))
    # Killed before its next offset commit: the second worker is handed records the table
    # already holds, and must skip them.
    w1.kill()
    w2 = WorkerProcess(settings, kafka_bootstrap, tmp_path / "w2.log").start()
    try:
        send(second)
        got = _wait_for(w2, 400)
    finally:
        w2.stop()
    want = _expected(settings, first + second)
    assert _close(got, want), (got, want)
    assert got[("units", "control")] > 60 and got[("units", "treatment")] > 200
    dead = [decode_dead_letter(r.value) for r in
            read_topic(kafka_bootstrap, topic(settings, "dead_letters"),
                       until=lambda rs: len(rs) >= 1)]
    assert [(d.reason, d.stage) for d in dead] == [("invalid_field", "experiments")]
