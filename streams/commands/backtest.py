"""``frictionwatch backtest FILE``: the detection core over a JSONL file, offline."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import msgspec
import typer
from rich import box
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table

from detectors.quality import Quality, Truth, evaluate, split_truth
from models.kpis import merged, total
from models.segments import Segmenter, segment_rows
from streams import detection
from streams.backtest import BacktestResult, run
from streams.commands.common import fail
from streams.settings import load
from streams.sim import read_truth


def backtest(
    file: Annotated[Path, typer.Argument(help="JSONL: one message per line, any supported "
                                         "format, or simulate --out envelopes.",
                                         exists=True, dir_okay=False)],
    truth: Annotated[Path | None, typer.Option(help="Ground truth from simulate --truth: "
                                               "print precision, recall, F1 and time to "
                                               "detect per friction type.",
                                               exists=True, dir_okay=False)] = None,
    alerts_out: Annotated[Path | None, typer.Option(help="Write the alerts it would have sent "
                                                    "(CloudEvents JSONL).")] = None,
    chats_out: Annotated[Path | None, typer.Option(help="Write the chat triggers it would "
                                                   "have sent (CloudEvents JSONL).")] = None,
    signals_out: Annotated[Path | None, typer.Option(help="Write every friction signal "
                                                     "(JSONL).")] = None,
    incidents_out: Annotated[Path | None, typer.Option(help="Write the journey incidents it "
                                                       "would have sent (CloudEvents "
                                                       "JSONL).")] = None,
    dead_letters_out: Annotated[Path | None, typer.Option(help="Write each dead letter (its "
                                                          "message's line, reason, detail "
                                                          "and original) as JSONL.")] = None,
    save_canonical: Annotated[Path | None, typer.Option(help="Also write the adapted "
                                                        "canonical events here; backtests of "
                                                        "that file skip the adapters.")] = None,
    session_gap: Annotated[float | None, typer.Option(help="Idle seconds after which a "
                                                      "session expires (default: the "
                                                      "settings').")] = None,
    models: Annotated[bool, typer.Option(help="Also score sessions with the online "
                                         "abandonment model, as the worker does (its "
                                         "probability and factors go into the alerts); "
                                         "about a third slower.")] = False,
) -> None:
    """Run the same detection core the worker runs over a file of events, offline: friction
    signals, alerts, chat triggers and session outcomes, with a progress bar. With --truth,
    score the detectors against what the simulator injected."""
    settings = load(session_gap=session_gap, abandonment_model=models)
    engine = detection.engine(settings)
    incidents = detection.incidents(settings, engine)
    console = Console(stderr=True)
    size = file.stat().st_size
    canonical = open(save_canonical, "wb") if save_canonical else None  # noqa: SIM115
    dead = open(dead_letters_out, "w") if dead_letters_out else None  # noqa: SIM115
    with open(file, "rb") as f, Progress(
        TextColumn("backtest"), BarColumn(), TaskProgressColumn(), TimeRemainingColumn(),
        console=console, transient=True,
    ) as bar:
        task = bar.add_task("", total=size)
        res = run(f, engine, max_bytes=settings.max_payload_bytes,
                  max_events=settings.max_events_per_message,
                  progress=lambda _: bar.update(task, completed=f.tell()),
                  canonical_out=canonical, incidents=incidents, dead_out=dead,
                  privacy=settings.privacy)
    for w in (canonical, dead):
        if w is not None:
            w.close()
    out = Console()
    _report(out, res, dead_letters_out)
    seg = detection.segments(settings)
    if seg is not None:
        out.print(segments_table(seg, res.outputs.outcomes))
    for path, docs in ((alerts_out, res.outputs.alerts), (chats_out, res.outputs.chats),
                       (signals_out, [_signal(s) for s in res.outputs.signals]),
                       (incidents_out, res.incidents)):
        if path is not None:
            with open(path, "w") as w:
                for d in docs:
                    w.write(json.dumps(d, separators=(",", ":")) + "\n")
    if truth is not None:
        known = read_truth(truth)
        records, ignore = split_truth(known.frictions)
        if not records:
            raise fail(f"{truth} has no friction records")
        signals = res.outputs.signals
        presence = {o.session_id for o in known.outcomes if o.presence}
        notes = []
        if presence:
            signals, records, ignore = _silent_apart(signals, records, ignore, presence)
            notes.append(f"{SILENT}: stalls in sessions whose source sends no presence signal "
                         "(silence only: they do not alert)")
        rows = evaluate(signals, records, ignore=ignore)
        left_out = len(signals) - sum(q.signals for q in rows.values())
        if left_out:
            notes.append(f"{left_out:,} signals are not scored: they are about frictions that "
                         "began before the file or run past its end")
        table = quality_table(rows)
        table.caption = "; ".join(notes) or None
        out.print(table)


#: The quality table's row for stalls known from silence only.
SILENT = "stall (silence)"


def _silent_apart(signals: list[Any], records: list[Truth], ignore: list[Truth],
                  presence: set[str]) -> tuple[list[Any], list[Truth], list[Truth]]:
    """Stalls of sessions outside ``presence`` (their source sends no presence signal) as a
    type of their own, so ``step_stall`` is scored where it can be told from leaving."""
    def sig(s: Any) -> Any:
        return (msgspec.structs.replace(s, type=SILENT)
                if s.type == "step_stall" and s.session_id not in presence else s)

    def tru(t: Truth) -> Truth:
        return (dataclasses.replace(t, friction=SILENT)
                if t.friction == "step_stall" and t.session_id not in presence else t)

    return [sig(s) for s in signals], [tru(t) for t in records], [tru(t) for t in ignore]


def _signal(s: object) -> dict[str, object]:
    return msgspec.to_builtins(s)  # type: ignore[no-any-return]


def _report(console: Console, res: BacktestResult, dead_file: Path | None = None) -> None:
    o = res.outputs
    sessions = merged(o.outcomes)
    kpi = total(sessions)
    abandoned = [x for x in sessions if x["abandoned_step"] is not None]
    console.print(
        f"{res.messages:,} messages, {res.events:,} events in {res.seconds:.2f} s "
        f"({res.events_per_second:,.0f} events/s)\n"
        f"{kpi.sessions:,} sessions, {kpi.conversions:,} converted; {kpi.orders:,} orders, "
        f"revenue {kpi.revenue:,.2f}; {len(abandoned):,} abandoned carts (value "
        f"{sum(x['cart_value'] for x in abandoned):,.2f})\n"
        f"{len(o.signals):,} signals, {len(o.alerts):,} alerts, {len(o.chats):,} chat triggers, "
        f"{sum(d['data']['status'] == 'opened' for d in res.incidents):,} journey incidents"
    )
    if res.dead:
        reasons = ", ".join(f"{n:,} {r}" for r, n in res.dead_reasons.most_common())
        where = (f"written to {dead_file}" if dead_file is not None
                 else "--dead-letters-out FILE writes them")
        console.print(f"{res.dead:,} dead letters: {reasons} ({where})")
    else:
        console.print("0 dead letters")
    counts: dict[str, int] = {}
    for s in o.signals:
        counts[s.type] = counts.get(s.type, 0) + 1
    t = Table(title="friction signals")
    t.add_column("type")
    t.add_column("signals", justify="right")
    for k, v in sorted(counts.items(), key=lambda kv: -kv[1]):
        t.add_row(k, f"{v:,}")
    console.print(t)
    for doc in res.incidents:
        data = doc["data"]
        if data["status"] != "updated":
            console.print(f"incident {data['status']} {doc['time']}: {data['summary']}")


def segments_table(seg: Segmenter, outcomes: list[dict[str, Any]]) -> Table:
    """KPIs by customer segment (``models.segments``: the worker's code, over the outcomes in
    the order they ended), with the time the segments took."""
    t0 = time.perf_counter()
    rows = segment_rows(seg, outcomes)
    took = time.perf_counter() - t0
    t = Table(title="customer segments", box=box.SIMPLE_HEAD, pad_edge=False,
              caption=f"segments learned in {took:.2f} s")
    for col in ("segment", "in words", "customers", "sessions", "conv.", "AOV", "friction"):
        t.add_column(col, justify="left" if col in ("segment", "in words") else "right")
    for r in rows:
        k = r.kpis
        t.add_row(r.segment, r.words, "" if r.customers is None else f"{r.customers:,}",
                  f"{k.sessions:,}", f"{k.conversion_rate:.1%}" if k.sessions else "-",
                  f"{k.average_order_value:,.2f}" if k.orders else "-",
                  f"{r.friction_rate:.1%}" if k.sessions else "-")
    return t


def quality_table(rows: Mapping[str, Quality], title: str = "detection quality") -> Table:
    """Precision, recall, F1 and median time to detect (from the friction's onset, and from
    its first evidence) per type; narrow enough for an 80-column terminal."""
    t = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
    t.add_column("friction", no_wrap=True, min_width=16)
    for col in ("truth", "signals", "prec.", "recall", "F1", "TTD s", "1st ev."):
        t.add_column(col, justify="right", no_wrap=True)
    for name in sorted(rows):
        q = rows[name]
        ttd, ttd0 = q.median_ttd, q.median_ttd_start
        t.add_row(name, str(q.truths), str(q.signals), f"{q.precision:.3f}",
                  f"{q.recall:.3f}", f"{q.f1:.3f}", "-" if ttd is None else f"{ttd:.1f}",
                  "-" if ttd0 is None else f"{ttd0:.1f}")
    return t


def register(app: typer.Typer) -> None:
    app.command("backtest")(backtest)
