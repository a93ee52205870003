"""Plain Kafka clients outside the Faust worker: topic creation and a fast ingest producer.

The simulator, replay and the benches produce with aiokafka directly; the worker uses Faust's
producer. Topic creation uses kafka-python's admin client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiokafka import AIOKafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from streams.settings import Settings
from streams.topics import SOURCE_HEADER, TOPICS, topic_name

log = logging.getLogger(__name__)

__all__ = ["drop_topics", "ensure_topics", "IngestProducer"]


def _admin(settings: Settings, bootstrap: str, timeout: float) -> KafkaAdminClient:
    return KafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id=f"{settings.app_id}-admin",
        request_timeout_ms=int(timeout * 1000),
        **settings.kafka_client_kwargs(),  # type: ignore[arg-type]
    )


def ensure_topics(settings: Settings, bootstrap: str, timeout: float = 30.0) -> list[str]:
    """Create every declared topic that does not exist yet; return the full names.

    Idempotent. Partition count and replication come from settings, so all session- and
    customer-keyed topics are co-partitioned.
    """
    names = [topic_name(t, settings.topic_prefix) for t in TOPICS]
    admin = _admin(settings, bootstrap, timeout)
    try:
        existing = set(admin.list_topics())
        missing = [
            NewTopic(n, settings.partitions, settings.replication_factor,
                     # A compacted topic keeps the latest value of each key for good.
                     topic_configs={"cleanup.policy": "compact"} if spec.compacted else {})
            for n, spec in zip(names, TOPICS.values(), strict=True)
            if n not in existing
        ]
        if missing:
            # Another process may win the race to create them.
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(missing, timeout_ms=int(timeout * 1000))
    finally:
        admin.close()
    return names


def drop_topics(settings: Settings, bootstrap: str, timeout: float = 30.0) -> list[str]:
    """Delete the declared topics and the app's own (Faust's changelogs and leader topic:
    ``<app_id>-...``) that exist; return their names. For benches and tests that make a
    throwaway prefix and app id per run: a broker kept across runs otherwise holds every
    run's gigabyte of changelogs, and later runs on it were slower (``bench/latency.py``).
    A deletion the broker refuses is logged, and nothing is returned."""
    declared = {topic_name(t, settings.topic_prefix) for t in TOPICS}
    admin = _admin(settings, bootstrap, timeout)
    try:
        ours = sorted(n for n in admin.list_topics()
                      if n in declared or n.startswith(f"{settings.app_id}-"))
        if ours:
            try:
                admin.delete_topics(ours, timeout_ms=int(timeout * 1000))
            except KafkaError as e:
                log.warning("could not delete %d topics: %s", len(ours), e)
                return []
    finally:
        admin.close()
    return ours


class IngestProducer:
    """Send raw payloads to the ingest topic (async context manager).

    >>> # async with IngestProducer(settings, bootstrap) as p:
    >>> #     await p.send(b'{"type":"page", ...}', key=b"anon-1", source="segment")
    """

    def __init__(self, settings: Settings, bootstrap: str, linger_ms: int = 5) -> None:
        self.settings = settings
        self.topic = topic_name("ingest", settings.topic_prefix)
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            client_id=f"{settings.app_id}-ingest",
            linger_ms=linger_ms,
            max_request_size=max(settings.max_payload_bytes * 2, 1_048_576),
            **settings.kafka_client_kwargs(),
        )
        self._pending: list[asyncio.Future[Any]] = []

    async def __aenter__(self) -> IngestProducer:
        await self._producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.flush()
        finally:
            await self._producer.stop()

    async def send(self, value: bytes, key: bytes | None = None, source: str | None = None) -> None:
        """Queue one message; ``flush`` waits for delivery."""
        headers = [(SOURCE_HEADER, source.encode())] if source else None
        fut = await self._producer.send(self.topic, value, key=key, headers=headers)
        self._pending.append(fut)
        # Bound memory when a caller sends much faster than the broker acknowledges.
        if len(self._pending) >= 10_000:
            await self.flush()

    async def flush(self) -> None:
        pending, self._pending = self._pending, []
        if pending:
            await asyncio.gather(*pending)
