"""What ``frictionwatch demo`` watches and shows: the worker's view of simulated traffic.

A ``Watch`` tails, with a plain aiokafka consumer, what the worker writes (friction signals,
dead letters and the sessions table's changelog) and reads the worker's ``/metrics``; ``render``
turns a ``Watch`` into a rich renderable for the live console and the final summary. Nothing
here is needed to run frictionwatch; it only makes the demo legible.
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field

import msgspec
from aiokafka import AIOKafkaConsumer
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Group
from rich.table import Table
from rich.text import Text

from detectors.session import SessionState, decode_state
from streams.deadletter import decode_dead_letter
from streams.settings import Settings
from streams.topics import topic_name

__all__ = ["Watch", "render"]


@dataclass
class Watch:
    """Live counts of what was sent and what the worker did with it."""

    settings: Settings
    bootstrap: str
    worker_url: str
    started: float = field(default_factory=time.monotonic)
    #: what the demo sent: simulated messages (one event each), of which ``history_messages``
    #: were the shop's recent past sent at once, and malformed ones on top
    sent_messages: int = 0
    history_messages: int = 0
    live_started: float | None = None
    sent_bad: int = 0
    injected: Counter[str] = field(default_factory=Counter)
    #: what the worker did (its /metrics)
    events_by_type: Counter[str] = field(default_factory=Counter)
    events_by_source: Counter[str] = field(default_factory=Counter)
    #: what the worker wrote to Kafka
    dead_by_reason: Counter[str] = field(default_factory=Counter)
    signals_by_type: Counter[str] = field(default_factory=Counter)
    alerts_by_reason: Counter[str] = field(default_factory=Counter)
    chats: int = 0
    #: journey incidents opened, and the latest incident document's summary
    incidents: int = 0
    last_incident: str = ""
    sessions: dict[bytes, SessionState] = field(default_factory=dict)
    last_dead: list[str] = field(default_factory=list)
    last_alert: str = ""

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def live_elapsed(self) -> float:
        """Seconds since the live part began (after the history was sent)."""
        return 0.0 if self.live_started is None else time.monotonic() - self.live_started

    def scrape(self) -> None:
        """Read the worker's counters from /metrics (silently keep the last on failure)."""
        try:
            with urllib.request.urlopen(self.worker_url + "/metrics", timeout=2) as r:  # noqa: S310
                text = r.read().decode()
        except OSError:
            return
        by_type: Counter[str] = Counter()
        by_source: Counter[str] = Counter()
        for fam in text_string_to_metric_families(text):
            if fam.name != "frictionwatch_events":
                continue
            for s in fam.samples:
                if s.name.endswith("_total"):
                    by_type[s.labels["type"]] += int(s.value)
                    by_source[s.labels["source"]] += int(s.value)
        self.events_by_type, self.events_by_source = by_type, by_source

    async def tail(self, stop: asyncio.Event) -> None:
        """Follow dead letters, friction signals, alerts, chat triggers and session state
        until ``stop`` is set."""
        prefix = self.settings.topic_prefix
        dead_t = topic_name("dead_letters", prefix)
        signal_t = topic_name("friction_signals", prefix)
        changelog_t = f"{self.settings.app_id}-sessions-changelog"
        consumer = AIOKafkaConsumer(
            dead_t, signal_t, changelog_t, topic_name("alerts", prefix),
            topic_name("chat_triggers", prefix),
            bootstrap_servers=self.bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            # The changelog appears when the worker first writes; look for it often.
            metadata_max_age_ms=2000,
            **self.settings.kafka_client_kwargs(),  # type: ignore[arg-type]
        )
        await consumer.start()
        try:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=250, max_records=5000)
                for tp, records in batches.items():
                    for r in records:
                        self._record(tp.topic, r.key, r.value, dead_t, signal_t)
        finally:
            await consumer.stop()

    def _record(self, topic: str, key: bytes | None, value: bytes | None, dead_t: str,
                signal_t: str) -> None:
        if value is None:
            if key is not None:
                self.sessions.pop(key, None)  # a deleted (expired) session
            return
        try:
            if topic == dead_t:
                d = decode_dead_letter(value)
                self.dead_by_reason[d.reason] += 1
                self.last_dead = [*self.last_dead[-2:], f"{d.reason}: {d.detail[:70]}"]
            elif topic == signal_t:
                self.signals_by_type[msgspec.json.decode(value).get("type", "?")] += 1
            elif topic == topic_name("alerts", self.settings.topic_prefix):
                doc = msgspec.json.decode(value)
                data = doc.get("data", {})
                if str(doc.get("type", "")).startswith("io.frictionwatch.journey.incident"):
                    self.incidents += data.get("status") == "opened"
                    self.last_incident = f"{data.get('status')}: {data.get('summary')}"
                    return
                self.alerts_by_reason[data.get("reason", "?")] += 1
                self.last_alert = (f"{data.get('reason')} in session {data.get('session_id')}, "
                                   f"step {data.get('step')}, revenue at risk "
                                   f"{data.get('revenue_at_risk')}: "
                                   f"{data.get('recommended_action')}")
            elif topic == topic_name("chat_triggers", self.settings.topic_prefix):
                self.chats += 1
            elif key is not None:
                self.sessions[key] = decode_state(value)
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
            pass  # the demo view must not die on a record it cannot read

    def funnel(self) -> dict[str, float]:
        states = self.sessions.values()
        checkout = sum(1 for s in states if s.max_checkout_step > 0)
        converted = sum(1 for s in states if s.converted)
        return {
            "sessions": len(self.sessions),
            "reached checkout": checkout,
            "converted": converted,
            "revenue": sum(s.revenue for s in states),
            "payment failures": sum(s.payment_failures for s in states),
            "form errors": sum(s.form_errors for s in states),
            "js errors": sum(s.js_errors for s in states),
        }


def _counter_table(title: str, counts: Counter[str], empty: str, top: int = 12) -> Table:
    t = Table(title=title, title_justify="left", expand=True, show_edge=False)
    t.add_column("", no_wrap=True, overflow="ellipsis")
    t.add_column("count", justify="right")
    for k, v in counts.most_common(top):
        t.add_row(k, f"{v:,}")
    if not counts:
        t.add_row(Text(empty, style="dim"), "")
    return t


def render(w: Watch, final: bool = False) -> Group:
    """The live view (and, with ``final``, the closing summary)."""
    processed = sum(w.events_by_type.values())
    head = Text.assemble(
        ("frictionwatch demo" + (" summary" if final else ""), "bold"),
        f"   {w.elapsed:5.0f} s   Kafka {w.bootstrap}   worker {w.worker_url}\n",
        f"sent {w.sent_messages:,} messages of shop traffic (one event each; "
        f"{w.history_messages:,} of them history) + {w.sent_bad} malformed   worker processed "
        f"{processed:,} events ({processed / max(w.elapsed, 1e-9):,.0f}/s)",
    )
    f = w.funnel()
    funnel = Table(title="sessions (worker state)", title_justify="left", expand=True,
                   show_edge=False)
    funnel.add_column("")
    funnel.add_column("", justify="right")
    for k, v in f.items():
        funnel.add_row(k, f"{v:,.2f}" if k == "revenue" else f"{int(v):,}")
    if f["sessions"]:
        funnel.add_row("conversion", f"{f['converted'] / f['sessions']:.1%}")
    # Two by two, so it stays readable in an 80-column terminal.
    grid = Table.grid(expand=True, padding=(0, 2))
    grid.add_column(ratio=1)
    grid.add_column(ratio=1)
    grid.add_row(
        _counter_table("events by type (worker)", w.events_by_type, "waiting for the worker"),
        funnel,
    )
    grid.add_row(
        _counter_table("friction injected (ground truth)", w.injected, "none yet"),
        Group(
            _counter_table("flagged by the worker", w.signals_by_type,
                           "none: no detectors configured"),
            _counter_table(f"alerts by reason ({w.chats:,} chat offers)", w.alerts_by_reason,
                           "none yet"),
            _counter_table("dead letters by reason", w.dead_by_reason, "none"),
        ),
    )
    parts: list[Text | Table] = [head, grid]
    if w.last_alert:
        parts.append(Text("latest alert: " + w.last_alert, style="dim"))
    if w.last_incident:
        parts.append(Text(f"journey incidents opened: {w.incidents}; latest "
                          + w.last_incident, style="bold"))
    if w.last_dead:
        parts.append(Text("latest dead letter: " + w.last_dead[-1], style="dim"))
    return Group(*parts)

