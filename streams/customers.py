"""The customers agent: support events and session summaries fold into each customer's state.

The support-events topic is keyed by customer id. Each batch reads each customer's state once
and writes it once (no changelog record per event). On the way, tickets are triaged (the triage
topic) and the churn model scores the customer; a risk that crosses its threshold is a churn
alert. A message replayed after a crash is skipped by its ingest origin.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import faust
import msgspec
from faust.types import EventT

from detectors.customer import CustomerState, apply_customer, decode_customer
from detectors.events import Ticket
from detectors.session import is_replay
from models.churn import ChurnScorer
from models.segments import Segmenter
from models.triage import TicketTriage
from streams import detection
from streams.accounts import forwarded
from streams.context import Context, dead_letter, decode_entries, entry_origin, failed
from streams.deadletter import DeadLetter
from streams.segments import CustomerSegments, SegmentKpis, register_segment_info
from streams.take import take_batches
from streams.trends import TREND_KEY, for_trends, trend_batches

__all__ = ["CustomerModels", "register_customers"]

STAGE = "customers"


@dataclass
class CustomerModels:
    """The online models the customers agent feeds (None when switched off)."""

    triage: TicketTriage | None
    churn: ChurnScorer | None
    segments: Segmenter | None = None


def register_customers(ctx: Context) -> CustomerModels:
    """The customers agent; returns its models, for checkpoints and gauges."""
    settings, metrics, guard, table = ctx.settings, ctx.metrics, ctx.guard, ctx.customers
    triage = TicketTriage(queues=settings.triage_queues,
                          default_queue=settings.triage_default_queue) \
        if settings.ticket_triage else None
    churn = detection.churn(settings)
    segments = detection.segments(settings)
    segmenting = None
    if segments is not None:
        segmenting = CustomerSegments(segments, SegmentKpis(metrics, settings.segments_k))
        register_segment_info(ctx.app, guard, metrics, segments)
    triage_topic, alert_topic = ctx.topics["triage"], ctx.topics["alerts"]
    # What the trends agent learns from, sent on once per batch (streams.trends).
    trend_topic = ctx.topics["trend_events"] if settings.support_trends else None
    trend_events: list[Any] = []
    # The events of customers tied to a B2B account, to the accounts agent (streams.accounts).
    account_topic = ctx.topics["account_events"] if settings.b2b_accounts else None
    m_churn_alerts = metrics.alerts.labels(reason="churn_risk")
    m_churn_risk = metrics.churn_risk
    m_msgs = metrics.messages.labels(topic="support_events")
    ctx.acks.guard(ctx.topics["support_events"].get_topic_name())
    m_applied = metrics.events_applied.labels(agent=STAGE)
    m_batch = metrics.batch_seconds.labels(agent=STAGE)
    m_latency = metrics.processing_latency.labels(agent=STAGE)

    async def apply_support(key: bytes, state: CustomerState | None, evs: list[Any],
                            at: tuple[str, int], msg: Any) -> CustomerState:
        if state is not None and is_replay(state.positions, at):
            return state
        if trend_topic is not None:
            trend_events.extend(for_trends(evs))
        if triage is not None:
            for e in evs:
                if type(e) is Ticket:
                    record = triage.on_ticket(e)
                    if record is not None:
                        await guard.send(triage_topic, key, msgspec.json.encode(record),
                                         stage=STAGE, what="triage record", at=msg)
        was_churned = state is not None and state.churned_at is not None
        # Sessions that ended, each with its customer's segment before it (streams.segments).
        ended = segmenting.before(state, evs) if segmenting is not None else []
        state = apply_customer(state, evs, at)
        if segmenting is not None:
            segmenting.after(state, ended)
        if account_topic is not None:
            to_account = forwarded(state, evs)
            if to_account is not None:
                await guard.send(account_topic, *to_account, stage=STAGE,
                                 what="account events", at=msg)
        if state.churned_at is not None and not was_churned:
            metrics.customers_churned.inc()
        if churn is not None:
            doc = churn.update(state)
            if state.churn_risk is not None and math.isfinite(state.churn_risk):
                m_churn_risk.observe(state.churn_risk)
            if doc is not None:
                m_churn_alerts.inc()
                await guard.send(alert_topic, doc["subject"].encode(), msgspec.json.encode(doc),
                                 stage=STAGE, what="churn alert", at=msg)
        return state

    async def fold_batch(batch: Sequence[EventT]) -> None:
        """Apply each message's events to its customer's state: read each state once, write
        it once per batch."""
        since = ctx.changelogs.mark()
        touched: dict[bytes, tuple[Any, EventT]] = {}
        dead: list[DeadLetter] = []
        applied = 0
        for event in ctx.acks.current(batch):  # streams.acks
            msg = event.message
            entries = decode_entries(event, STAGE, dead)
            if entries is None:
                continue
            for entry in entries:  # one customer's events from one ingest message each
                key = entry.key.encode()
                try:
                    prev = touched.get(key)
                    state = prev[0] if prev is not None else ctx.stored(
                        table, key, decode_customer, STAGE, event, dead)
                    state = await apply_support(key, state, entry.events,
                                                entry_origin(entry, msg, "s"), msg)
                except Exception as exc:  # noqa: BLE001 - a detector bug must not stop it
                    ctx.bug(STAGE)
                    dead.append(dead_letter(event, "processing_error", failed(exc), STAGE))
                    continue
                applied += len(entry.events)
                touched[key] = (state, event)
        m_applied.inc(applied)
        if trend_topic is not None and trend_events:
            for value in trend_batches(trend_events):
                await guard.send(trend_topic, TREND_KEY, value, stage=STAGE,
                                 what="trend events")
            trend_events.clear()
        t1 = time.perf_counter()
        for k, (state, event) in touched.items():
            ctx.write(table, k, state, ctx.dump_customer, STAGE, event, dead)
        # The batch's messages are acknowledged when it ends: only once its states are in the
        # changelog (streams.tables.Changelogs).
        await ctx.changelogs.hold_unless_delivered(batch, guard.errors, "customer state",
                                                   since)
        metrics.state_flush_seconds.observe(time.perf_counter() - t1)
        await guard.dead(dead)
        await ctx.acks.seek_back(ctx.app.consumer)

    @ctx.app.agent(ctx.topics["support_events"], name=STAGE)
    async def customers_agent(stream: faust.StreamT[bytes]) -> None:
        async for batch in take_batches(stream, *ctx.take):
            t0 = time.perf_counter()
            await fold_batch(batch)
            ctx.observe_latency(m_latency, batch)
            m_msgs.inc(len(batch))
            m_batch.observe(time.perf_counter() - t0)

    return CustomerModels(triage, churn, segments)
