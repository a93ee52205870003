"""The ``deliver`` loop: read alerts and chat triggers in a consumer group of its own
(``<app id>-deliver``), hand each to every destination that takes its topic, and commit its
offset only once every one of those deliveries is done.

Done means delivered, dropped (expired, nothing to address, delivered before), or given up
and written to the dead-letter topic (reason ``undeliverable``, stage ``deliver``). A crash
before the commit re-reads the document after the restart; the journal of recent deliveries
(``streams.deliver.journal``, written before the commit) keeps it from going out twice, and the
document's id travels as the idempotency key where the API has one.

Documents of one partition are delivered one after another, in order; a destination that
answers 429 holds its partitions back for as long as it asks (back-pressure, not loss).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from streams.deadletter import encode_dead_letter, make_dead_letter
from streams.deliver import policy, sender
from streams.deliver.journal import Journal
from streams.metrics import DeliveryMetrics, Metrics
from streams.settings import Settings
from streams.topics import DeadLetterReason, topic_name

__all__ = ["Deliverer", "DocResult", "deliver_group", "destinations_from"]

log = logging.getLogger(__name__)

#: Logical topics ``deliver`` reads.
TOPICS = ("alerts", "chat_triggers")
FETCH_TIMEOUT_MS = 500
#: Documents taken per fetch: each is delivered before the next fetch, so a small number keeps
#: a rebalance from waiting long.
FETCH_MAX_RECORDS = 50


def deliver_group(settings: Settings) -> str:
    return f"{settings.app_id}-deliver"


def destinations_from(settings: Settings) -> list[sender.Destination]:
    """The destinations the settings configure completely (an incomplete one is skipped with
    a warning, never half-used)."""
    out: list[sender.Destination] = []
    s = settings
    if s.deliver_slack_webhook_url:
        out.append(sender.slack(s.deliver_slack_webhook_url, frozenset(s.deliver_slack_topics)))
    if s.deliver_intercom_token or s.deliver_intercom_admin_id:
        if s.deliver_intercom_token and s.deliver_intercom_admin_id:
            out.append(sender.intercom(s.deliver_intercom_url, s.deliver_intercom_token,
                                       s.deliver_intercom_admin_id, s.deliver_intercom_version,
                                       frozenset(s.deliver_intercom_topics)))
        else:
            log.warning("Intercom needs both FRICTIONWATCH_DELIVER_INTERCOM_TOKEN and "
                        "_INTERCOM_ADMIN_ID: not delivering to it")
    if s.deliver_zendesk_url or s.deliver_zendesk_token:
        if s.deliver_zendesk_url and s.deliver_zendesk_email and s.deliver_zendesk_token:
            out.append(sender.zendesk(s.deliver_zendesk_url, s.deliver_zendesk_email,
                                      s.deliver_zendesk_token,
                                      frozenset(s.deliver_zendesk_topics)))
        else:
            log.warning("Zendesk needs FRICTIONWATCH_DELIVER_ZENDESK_URL, _EMAIL and _TOKEN: "
                        "not delivering to it")
    if s.deliver_webhook_url:
        out.append(sender.webhook(s.deliver_webhook_url, s.deliver_webhook_secret,
                                  frozenset(s.deliver_webhook_topics)))
    return out


@dataclass(frozen=True, slots=True)
class DocResult:
    """What became of one document: (destination, outcome) pairs, and the dead letters to
    write (reason, detail)."""

    outcomes: list[tuple[str, str]]
    dead: list[tuple[DeadLetterReason, str]]


class _Commit(ConsumerRebalanceListener):  # type: ignore[misc]
    """Before partitions go to another member, what is done on them is committed."""

    def __init__(self, deliverer: Deliverer) -> None:
        self.deliverer = deliverer

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.deliverer.commit()

    async def on_partitions_assigned(self, assigned: Any) -> None:
        pass


class Deliverer:
    def __init__(self, settings: Settings, bootstrap: str,
                 destinations: list[sender.Destination], metrics: Metrics,
                 delivery_metrics: DeliveryMetrics, *, journal: Journal | None = None,
                 rng: random.Random | None = None) -> None:
        self.settings = settings
        self.bootstrap = bootstrap
        self.destinations = destinations
        self.metrics = metrics
        self.dm = delivery_metrics
        path = Path(settings.data_dir) / "deliver" / "delivered.log"
        self.journal = journal if journal is not None else Journal(
            path, settings.deliver_dedupe_size)
        self.rng = rng or random.Random()
        self.backoff = policy.Backoff(
            base=settings.deliver_backoff_base,
            cap=max(settings.deliver_backoff_max, settings.deliver_backoff_base),
            attempts=settings.deliver_attempts, max_retry_after=settings.deliver_max_retry_after)
        prefix = settings.topic_prefix
        self.logical = {topic_name(t, prefix): t for t in TOPICS}
        self.dead_topic = topic_name("dead_letters", prefix)
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        self.session: aiohttp.ClientSession | None = None
        #: Next offset to commit per partition: every document before it is done.
        self._done: dict[TopicPartition, int] = {}
        self._last_commit = time.monotonic()
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        kw = self.settings.kafka_client_kwargs()
        s = self.settings
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=deliver_group(s),
            client_id=f"{s.app_id}-deliver", enable_auto_commit=False,
            auto_offset_reset=s.deliver_start, max_poll_records=FETCH_MAX_RECORDS,
            session_timeout_ms=int(s.broker_session_timeout * 1000),
            heartbeat_interval_ms=int(min(3.0, s.broker_session_timeout / 5) * 1000),
            rebalance_timeout_ms=int(s.broker_rebalance_timeout * 1000),
            # A delivery may wait for retries for minutes: the poll interval must allow it.
            max_poll_interval_ms=int(max(300.0, s.deliver_max_retry_after * s.deliver_attempts
                                         + 60) * 1000), **kw)
        self.producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap,
                                         client_id=f"{s.app_id}-deliver", acks="all", **kw)
        self.session = aiohttp.ClientSession()
        await self.producer.start()
        await self.consumer.start()
        wanted = sorted({t for d in self.destinations for t in d.topics}) or list(TOPICS)
        self.consumer.subscribe([topic_name(t, s.topic_prefix) for t in wanted],
                                listener=_Commit(self))

    def stop_soon(self) -> None:
        self._stopping.set()

    async def stop(self) -> None:
        self._stopping.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.commit(), 5.0)
        for client in (self.consumer, self.producer):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.stop()
        if self.session is not None:
            await self.session.close()

    async def run(self) -> None:
        assert self.consumer is not None
        while not self._stopping.is_set():
            batches = await self.consumer.getmany(timeout_ms=FETCH_TIMEOUT_MS,
                                                  max_records=FETCH_MAX_RECORDS)
            for tp, records in batches.items():
                for record in records:
                    await self.handle(record)
                    self._done[tp] = record.offset + 1
            if time.monotonic() - self._last_commit >= self.settings.deliver_commit_interval:
                await self.commit()

    async def commit(self) -> None:
        self._last_commit = time.monotonic()
        if not self._done or self.consumer is None:
            return
        assigned = self.consumer.assignment()
        offsets = {tp: OffsetAndMetadata(o, "") for tp, o in self._done.items()
                   if tp in assigned}
        self._done = {}
        if offsets:
            try:
                await self.consumer.commit(offsets)
            except KafkaError as exc:
                # A rebalance in between: the next owner re-reads these documents and the
                # journal (or the idempotency key) keeps them from going out twice.
                log.warning("offset commit failed (%s): documents may be read again", exc)

    async def handle(self, record: Any) -> DocResult:
        """Deliver one Kafka record everywhere it goes; dead-letter what could not be."""
        topic = self.logical.get(record.topic, "alerts")
        result = await self.deliver(record.value or b"", topic)
        for dest, outcome in result.outcomes:
            self.dm.deliveries.labels(destination=dest, outcome=outcome).inc()
        for reason, detail in result.dead:
            await self._dead_letter(reason, detail, record)
        return result

    async def deliver(self, raw: bytes, topic: str) -> DocResult:
        """One document (its bytes, from the logical ``topic``) to each destination."""
        try:
            doc = msgspec.json.decode(raw)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            return DocResult([], [("not_json", f"deliver: {exc}")])
        if not isinstance(doc, Mapping) or not isinstance(doc.get("id"), str) or not doc["id"]:
            return DocResult([], [("missing_id", "deliver: a document without a string id")])
        targets = [d for d in self.destinations if topic in d.topics]
        if not self.destinations:
            log.info("no destination configured: %s %s not sent", topic, doc["id"])
            return DocResult([("none", "not_configured")], [])
        done = await asyncio.gather(*(self._one(d, doc) for d in targets))
        outcomes = [(d.name, outcome) for d, (outcome, _) in zip(targets, done, strict=True)]
        dead: list[tuple[DeadLetterReason, str]] = [
            ("undeliverable", detail) for outcome, detail in done
            if outcome in ("rejected", "exhausted")]
        return DocResult(outcomes, dead)

    async def _one(self, dest: sender.Destination, doc: Mapping[str, Any]) -> tuple[str, str]:
        key = f"{dest.name}:{doc['id']}"
        if key in self.journal:
            return "duplicate", ""
        now = time.time()
        if policy.expired(doc, now):
            return "expired", ""
        try:
            request = dest.request(doc, now)
        except (TypeError, ValueError, KeyError) as exc:
            # A document of an unexpected shape: kept on the dead-letter topic, never a crash.
            return "rejected", f"{dest.name}: no request could be made of it: {exc}"[:300]
        if request is None:
            return "skipped", ""
        assert self.session is not None
        started = time.monotonic()
        res = await sender.send(self.session, request, self.backoff, self.rng,
                                timeout=self.settings.deliver_timeout,
                                expires_at=policy.expires_at(doc))
        self.dm.attempts.labels(destination=dest.name).inc(res.attempts)
        self.dm.seconds.labels(destination=dest.name).observe(time.monotonic() - started)
        if res.outcome in ("delivered", "rejected", "exhausted"):
            # Written before the offset is committed: a restart finds it here.
            self.journal.add(key)
        if res.outcome != "delivered":
            log.warning("%s %s: %s after %d attempt(s) (%s)", dest.name, doc["id"],
                        res.outcome, res.attempts, res.detail)
        return res.outcome, f"{dest.name}: {res.outcome} after {res.attempts} attempt(s): " \
                            f"{res.detail}"

    async def _dead_letter(self, reason: DeadLetterReason, detail: str, record: Any) -> None:
        assert self.producer is not None
        letter = make_dead_letter(reason, detail, "deliver", record.value or b"", time.time(),
                                  record.topic, record.partition, record.offset)
        await self.producer.send_and_wait(self.dead_topic, encode_dead_letter(letter))
        self.metrics.dead_letters.labels(reason=reason, stage="deliver").inc()
