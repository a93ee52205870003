"""Backtest: any format in, the same core as the worker; the canonical file it can save gives
identical results, faster."""

from __future__ import annotations

import io
import json

from detectors.alerting import Alerting
from detectors.engine import Engine
from detectors.session import SessionProcessor
from streams import detection
from streams.backtest import run
from streams.settings import Settings
from streams.sim import Incident, SimConfig, Simulator


def _engine() -> Engine:
    return Engine(SessionProcessor(), Alerting(), session_gap=600)


def _file(seed: int = 5) -> bytes:
    sim = Simulator(SimConfig(seed=seed, events_per_second=40, duration=300))
    lines = [json.dumps(m.envelope()) for m in sim.messages()]
    lines.insert(10, "{broken")
    lines.insert(20, json.dumps({"type": "track", "event": "Teleported", "messageId": "m",
                                 "anonymousId": "a", "timestamp": "2026-01-01T00:00:00Z"}))
    return "\n".join(lines).encode()


def test_bad_lines_are_dead_letters_and_the_rest_flows() -> None:
    res = run(io.BytesIO(_file()), _engine())
    assert res.dead == 2 and set(res.dead_reasons) == {"not_json", "unknown_event"}
    assert res.events == res.messages - 2 > 5000
    assert len(res.outputs.outcomes) > 100 and any(o["converted"] for o in res.outputs.outcomes)


def test_saved_canonical_file_gives_identical_results() -> None:
    saved = io.BytesIO()
    first = run(io.BytesIO(_file()), _engine(), canonical_out=saved)
    again = run(io.BytesIO(saved.getvalue()), _engine())
    assert again.dead == 0 and again.events == first.events
    assert again.outputs.outcomes == first.outputs.outcomes
    assert again.outputs.signals == first.outputs.signals


def test_journey_incidents_are_found_offline_as_the_worker_finds_them() -> None:
    sim = Simulator(SimConfig(seed=6, events_per_second=100, duration=900,
                              incidents=(Incident("broken_field", 600, 240),)))
    raw = "\n".join(json.dumps(m.envelope()) for m in sim.messages()).encode()
    settings = Settings(abandonment_model=False, incident_warmup_entries=30)
    eng = detection.engine(settings)
    res = run(io.BytesIO(raw), eng, incidents=detection.incidents(settings, eng))
    opened = [d["data"] for d in res.incidents if d["data"]["status"] == "opened"]
    assert [(i["step"], i["reason"]) for i in opened] == [("shipping", "form_error_loop")]


def test_an_event_log_export_without_message_ids_backtests_whole() -> None:
    """Rows as a public e-commerce event log holds them: no ``messageId``, times written
    ``2019-10-01 00:00:12 UTC`` or as epoch milliseconds, each session's id given."""
    rows = []
    for s in range(3):
        for i, (kind, name) in enumerate([("page", None), ("track", "Product Viewed"),
                                          ("track", "Product Added"),
                                          ("track", "Checkout Started")]):
            stamp: object = f"2019-10-01 00:0{s}:{10 * i:02d} UTC"
            if i == 3:
                stamp = 1569888000_000 + s * 60_000 + 30_000
            call = {"type": kind, "anonymousId": f"user-{s}", "timestamp": stamp,
                    "context": {"sessionId": f"sess-{s}"},
                    "properties": {"product_id": "p1", "price": 10.0, "quantity": 1,
                                   "revenue": 10.0, "value": 10.0}}
            if name:
                call["event"] = name
            rows.append(json.dumps(call))
    res = run(io.BytesIO("\n".join(rows).encode()), _engine())
    assert (res.dead, dict(res.dead_reasons)) == (0, {})
    assert res.events == 12
    assert sorted(o["session_id"] for o in res.outputs.outcomes) == ["sess-0", "sess-1", "sess-2"]
