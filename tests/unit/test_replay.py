"""Replay and the paced send loop, without Kafka: lines to messages, pacing on a fake clock,
stop requests; and ``frictionwatch simulate --out`` writing what replay reads."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from streams.adapters import adapt
from streams.cli import app
from streams.replay import ingest_key, parse_line, read_items, replay
from streams.sim import SimMessage, read_truth
from streams.sim.traffic import send_live

SEGMENT = {"type": "track", "event": "Order Completed", "messageId": "m1", "anonymousId": "a1",
           "timestamp": "2026-01-01T00:00:00Z", "context": {"sessionId": "sess-9"},
           "properties": {"revenue": 10}}


class FakeTime:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Sink:
    def __init__(self, clock: FakeTime | None = None) -> None:
        self.sent: list[tuple[bytes, bytes | None, str | None, float]] = []
        self.clock = clock

    async def send(self, value: bytes, key: bytes | None = None,
                   source: str | None = None) -> None:
        self.sent.append((value, key, source, self.clock.now if self.clock else 0.0))


def lines(*items: Any) -> list[bytes]:
    return [i if isinstance(i, bytes) else json.dumps(i).encode() + b"\n" for i in items]


# --- parsing ---------------------------------------------------------------------------------


def test_plain_line_is_sent_byte_for_byte_keyed_by_session() -> None:
    raw = json.dumps(SEGMENT, indent=None).encode()
    item = parse_line(raw + b"\r\n")
    assert item is not None
    assert item.value == raw and item.key == b"sess-9" and item.source is None
    assert not item.bad and not item.envelope
    assert parse_line(raw, "segment").source == "segment"  # type: ignore[union-attr]
    assert parse_line(raw, "auto").source is None  # type: ignore[union-attr]


def test_envelope_line_sends_its_payload_with_its_own_source_and_key() -> None:
    env = {"time": 1.5, "source": "ga4", "key": "s-1",
           "payload": {"client_id": "1.2", "events": [{"name": "page_view"}]}}
    item = parse_line(json.dumps(env).encode(), source="segment")
    assert item is not None and item.envelope
    assert json.loads(item.value) == env["payload"]
    assert (item.key, item.source) == (b"s-1", "ga4")
    # Anything else in the object: not an envelope, a payload (the worker decides).
    other = {"source": "ga4", "payload": {}, "userId": "u1"}
    item = parse_line(json.dumps(other).encode())
    assert item is not None and not item.envelope and item.source is None


def test_bad_and_blank_lines() -> None:
    assert parse_line(b"\n") is None and parse_line(b"  \t ") is None
    bad = parse_line(b"{not json\n", "segment")
    assert bad is not None and bad.bad and bad.value == b"{not json"
    assert bad.source == "segment" and bad.key is None
    invalid_utf8 = parse_line(b'"\xff\xfe"')
    assert invalid_utf8 is not None and invalid_utf8.bad


@pytest.mark.parametrize(
    ("payload", "key"),
    [
        ({"batch": [{"type": "page", "anonymousId": "a2"}]}, b"a2"),
        ({"type": "identify", "userId": "u7"}, b"u7"),
        ([{"type": "click", "id": "e", "time": 1.0, "session_id": "s3", "x": 1, "y": 2}], b"s3"),
        ({"client_id": "1.2", "events": [{"name": "x", "params": {"session_id": "g1"}}]}, b"g1"),
        ({"client_id": "1.2", "events": []}, b"1.2"),
        ({"ticket": {"id": 1, "requester": {"external_id": "c9"}}}, b"c9"),
        ({"ticket": {"id": 1, "requester_id": 42}}, b"42"),
        ({"hello": "world"}, None),
        ("just a string", None),
    ],
)
def test_ingest_key(payload: Any, key: bytes | None) -> None:
    assert ingest_key(payload) == key


def test_unknown_source_is_rejected() -> None:
    with pytest.raises(ValueError):
        list(read_items([b"{}"], source="kafka"))


# --- replay pacing ---------------------------------------------------------------------------


def test_replay_paces_messages_at_the_rate_without_real_sleeping() -> None:
    ft = FakeTime()
    sink = Sink(ft)
    data = lines(*([SEGMENT] * 10))
    stats = asyncio.run(replay(data, sink, rate=5.0, clock=ft.clock, sleep=ft.sleep))
    assert stats.sent == 10
    sent_at = [t - 1000.0 for *_, t in sink.sent]
    assert sent_at == pytest.approx([i / 5.0 for i in range(10)])
    assert stats.elapsed == pytest.approx(1.8)


def test_replay_unpaced_never_waits() -> None:
    ft = FakeTime()
    stats = asyncio.run(replay(lines(*([SEGMENT] * 1200)), Sink(ft), clock=ft.clock,
                               sleep=ft.sleep))
    assert stats.sent == 1200 and ft.now == 1000.0
    assert ft.sleeps == [0, 0]  # only yields to the event loop


def test_replay_counts_bad_lines_and_sends_them_unless_told_not_to() -> None:
    data = lines(SEGMENT, b"garbage\n", b"\n", {"source": "ga4", "payload": {"x": 1}})
    sink = Sink()
    stats = asyncio.run(replay(data, sink))
    assert (stats.sent, stats.bad, stats.skipped, stats.blank, stats.envelopes) == (3, 1, 0, 1, 1)
    assert [v for v, *_ in sink.sent][1] == b"garbage"
    assert stats.by_source == {"auto": 2, "ga4": 1}
    sink = Sink()
    stats = asyncio.run(replay(data, sink, skip_bad=True, source="segment"))
    assert (stats.sent, stats.bad, stats.skipped) == (2, 1, 1)
    assert stats.by_source == {"segment": 1, "ga4": 1}


def test_replay_stops_when_asked() -> None:
    ft = FakeTime()
    sink = Sink(ft)
    progress: list[int] = []

    async def run() -> Any:
        stop = asyncio.Event()

        def on_progress(stats: Any) -> None:
            progress.append(stats.sent)
            if stats.sent >= 3:
                stop.set()

        return await replay(lines(*([SEGMENT] * 100)), sink, rate=2.0, stop=stop,
                            on_progress=on_progress, clock=ft.clock, sleep=ft.sleep,
                            progress_every=0.0)

    stats = asyncio.run(run())
    assert stats.stopped and stats.sent == 3 and len(sink.sent) == 3
    assert progress[-1] == 3


# --- the live loop ---------------------------------------------------------------------------


def test_send_live_keeps_event_time_gaps_divided_by_speed() -> None:
    ft = FakeTime()
    sink = Sink(ft)
    times = [0.0, 0.5, 0.5, 3.0, 10.0]
    msgs = [SimMessage(5000.0 + t, "segment", b"s", {"i": i}) for i, t in enumerate(times)]
    stats = asyncio.run(send_live(msgs, sink, speed=4.0, clock=ft.clock, sleep=ft.sleep))
    sent_at = [t - 1000.0 for *_, t in sink.sent]
    assert sent_at == pytest.approx([t / 4.0 for t in times])
    assert max(ft.sleeps) <= 0.25  # long waits are cut into naps (stop and progress served)
    assert stats.sent == 5 and stats.event_time == 5010.0 and stats.by_source == {"segment": 5}
    assert [(k, s) for _, k, s, _ in sink.sent] == [(b"s", "segment")] * 5


def test_send_live_reports_progress_while_idle_and_stops() -> None:
    ft = FakeTime()
    sink = Sink(ft)
    msgs = [SimMessage(t, "ga4", b"s", {}) for t in (0.0, 60.0, 120.0)]
    reports: list[float] = []

    async def run() -> Any:
        stop = asyncio.Event()

        def on_progress(stats: Any) -> None:
            reports.append(stats.elapsed)
            if stats.elapsed >= 30:
                stop.set()

        return await send_live(msgs, sink, speed=1.0, stop=stop, on_progress=on_progress,
                               clock=ft.clock, sleep=ft.sleep, progress_every=1.0)

    stats = asyncio.run(run())
    # Stopped while waiting for the 60 s message: it goes at once, and nothing after it.
    assert stats.stopped and stats.sent == 2 and sink.sent[1][3] - 1000.0 < 31
    assert len(reports) >= 30  # about once a second while waiting


def test_send_live_unpaced_and_without_headers() -> None:
    sink = Sink()
    msgs = [SimMessage(float(t), "support", None, {"t": t}) for t in range(3)]
    stats = asyncio.run(send_live(msgs, sink, speed=0, headers=False))
    assert stats.sent == 3 and [s for _, _, s, _ in sink.sent] == [None] * 3


# --- the CLI without Kafka -------------------------------------------------------------------


def test_simulate_out_writes_envelopes_replay_reads_and_truth(tmp_path: Path) -> None:
    out, truth = tmp_path / "traffic.jsonl", tmp_path / "truth.jsonl"
    result = CliRunner().invoke(app, [
        "simulate", "--rate", "30", "--duration", "120", "--seed", "5", "--start",
        "2026-03-01T10:00:00Z", "--out", str(out), "--truth", str(truth), "--incident",
        "payment_outage@10+60:decline_rate=1.0", "--friction", "all=0.2"])
    assert result.exit_code == 0, result.output
    raw = out.read_bytes().splitlines()
    assert len(raw) == pytest.approx(30 * 120, rel=0.3)
    items = list(read_items(raw))
    assert all(i.envelope and not i.bad for i in items)
    for item in items:
        out_events = adapt(json.loads(item.value), item.source)
        assert out_events.rejected == [] and len(out_events.events) == 1
    first = json.loads(raw[0])
    assert first["time"] >= 1772359200.0 and set(first) == {"time", "source", "key", "payload"}
    back = read_truth(truth)
    assert back.incidents[0]["params"]["decline_rate"] == 1.0
    assert back.frictions and back.outcomes
    # The same seed and start: the same file.
    again = tmp_path / "again.jsonl"
    CliRunner().invoke(app, [
        "simulate", "--rate", "30", "--duration", "120", "--seed", "5", "--start",
        "2026-03-01T10:00:00Z", "--out", str(again), "--incident",
        "payment_outage@10+60:decline_rate=1.0", "--friction", "all=0.2"])
    assert again.read_bytes() == out.read_bytes()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--incident", "payment_outage@60"], "kind@start+duration"),
        (["--incident", "meteor@1+2"], "unknown incident kind"),
        (["--friction", "rage_click=2"], "TYPE=P"),
        (["--start", "yesterday"], "--start"),
        ([], "--out needs --duration"),
    ],
)
def test_simulate_user_errors(tmp_path: Path, args: list[str], message: str) -> None:
    base = ["simulate", "--out", str(tmp_path / "x.jsonl")]
    if "--out needs" not in message:
        base += ["--duration", "1"]
    result = CliRunner().invoke(app, base + args)
    assert result.exit_code == 2
    assert message in result.output


def test_help_texts_document_the_options() -> None:
    sim = CliRunner().invoke(app, ["simulate", "--help"], terminal_width=200)
    for word in ("--rate", "--duration", "--speed", "--out", "--truth", "--incident",
                 "KIND@START+DURATION", "payment_outage", "--broker", "--seed"):
        assert word in sim.output, word
    rep = CliRunner().invoke(app, ["replay", "--help"], terminal_width=200)
    for word in ("--rate", "--source", "--skip-bad", "envelope", "--broker"):
        assert word in rep.output, word
