"""Backtest: any format in, the same core as the worker; the canonical file it can save gives
identical results, faster."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

from detectors.alerting import Alerting
from detectors.engine import Engine
from detectors.session import SessionProcessor
from models.kpis import total
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


def _event_log(gap_min: int = 45) -> list[str]:
    """Rows as a public e-commerce event log holds them (views, carts, purchases): no
    ``messageId``, times written ``2019-10-01 00:00:12 UTC`` or as epoch milliseconds, each
    row's session named in ``properties.session_id``; "Product Added" carries the item, no
    cart total. Session 0 pauses ``gap_min`` minutes (longer than the session gap) and comes
    back to buy; sessions 1 and 2 leave with their carts."""
    rows = []
    for s in range(3):
        steps = [("page", None, 0), ("track", "Product Viewed", 10),
                 ("track", "Product Added", 20), ("track", "Product Added", 30)]
        if s == 0:
            steps += [("track", "Order Completed", 60 * gap_min)]
        for i, (kind, name, second) in enumerate(steps):
            t = 1569888000 + s * 60 + second
            stamp: object = (datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
                             if i % 2 == 0 else t * 1000)
            call = {"type": kind, "anonymousId": f"user-{s}", "timestamp": stamp,
                    "properties": {"session_id": f"sess-{s}", "product_id": f"p{i}",
                                   "price": 12.5, "quantity": 2}}
            if name:
                call["event"] = name
            if name == "Order Completed":
                call["properties"] = {"session_id": f"sess-{s}", "order_id": "o1",
                                      "revenue": 50.0}
            rows.append(json.dumps(call))
    return rows


def test_an_event_log_export_backtests_whole_with_its_own_sessions() -> None:
    """Issue 15's acceptance line: no messageId, space-separated UTC times, explicit session
    ids: 0 dead letters and one session per named id, though one pauses past the gap."""
    res = run(io.BytesIO("\n".join(_event_log()).encode()), _engine())
    assert (res.dead, dict(res.dead_reasons)) == (0, {})
    assert res.events == 13
    k = total(res.outputs.outcomes)
    assert (k.sessions, k.conversions, k.orders, k.revenue) == (3, 1, 1, 50.0)
    by_id = {o["session_id"]: o for o in res.outputs.outcomes if not o["continued"]}
    assert sorted(by_id) == ["sess-0", "sess-1", "sess-2"]
    # The running cart value from the items: two adds of 2 x 12.50.
    assert [by_id[s]["cart_value"] for s in ("sess-1", "sess-2")] == [50.0, 50.0]
    assert [by_id[s]["abandoned_step"] for s in ("sess-1", "sess-2")] == [0, 0]


def test_explicit_session_ids_split_on_idle_time_only_when_configured() -> None:
    rows = "\n".join(_event_log()).encode()
    engine = Engine(SessionProcessor(), Alerting(), session_gap=600, explicit_gap=0)
    assert total(run(io.BytesIO(rows), engine).outputs.outcomes).sessions == 4
    # Past the explicit gap, a named id that comes back is a session of its own again.
    late = "\n".join(_event_log(gap_min=300)).encode()
    assert total(run(io.BytesIO(late), _engine()).outputs.outcomes).sessions == 4


def test_a_session_derived_from_a_device_id_is_split_on_idle_time() -> None:
    rows = [json.loads(r) for r in _event_log()]
    for r in rows:
        del r["properties"]["session_id"]  # the anonymousId is then the session
    res = run(io.BytesIO("\n".join(map(json.dumps, rows)).encode()), _engine())
    assert res.dead == 0
    assert total(res.outputs.outcomes).sessions == 4
    assert not any(o["continued"] for o in res.outputs.outcomes)

def test_the_summary_names_what_was_sold_and_why_lines_were_dead(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from streams.cli import app

    data = tmp_path / "log.jsonl"
    bad = ['{"type": "track", "event": "Teleported", "anonymousId": "a", '
           '"timestamp": "2019-10-01 00:00:00 UTC"}', "{broken"]
    data.write_text("\n".join([*_event_log(), *bad]) + "\n")
    dead = tmp_path / "dead.jsonl"
    result = CliRunner().invoke(app, ["backtest", str(data), "--dead-letters-out", str(dead)],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "3 sessions, 1 converted; 1 orders, revenue 50.00; 2 abandoned carts (value " \
           "100.00)" in result.output
    assert "2 dead letters: 1 unknown_event, 1 not_json (written to" in result.output
    rows = [json.loads(line) for line in dead.read_text().splitlines()]
    assert [(r["message"], r["reason"]) for r in rows] == [(14, "unknown_event"),
                                                           (15, "not_json")]
    assert rows[1]["original"] == "{broken"


def test_the_quality_table_fits_80_columns_and_says_what_it_leaves_out(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from streams.cli import app
    from streams.sim import write_truth

    sim = Simulator(SimConfig(seed=4, events_per_second=60, duration=600))
    data = tmp_path / "traffic.jsonl"
    data.write_text("".join(json.dumps(m.envelope()) + "\n" for m in sim.messages()))
    truth = tmp_path / "truth.jsonl"
    write_truth(sim, truth)
    result = CliRunner().invoke(app, ["backtest", str(data), "--truth", str(truth)],
                                env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    table = result.output[result.output.index("detection quality"):]
    assert "…" not in table and max(map(len, table.splitlines())) <= 80
    assert "payment_declined" in table and "1st ev." in table
    # Stalls where only silence tells are a row of their own, and the caption says so.
    assert "stall (silence)" in table and "no presence signal" in table
