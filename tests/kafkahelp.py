"""Helpers for integration tests: a worker in a subprocess and topic readers (kafka-python)."""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from streams.broker import free_port
from streams.settings import Settings
from streams.topics import topic_name
from streams.worker_process import WorkerProcess, settings_env  # noqa: F401 - re-exported


def isolated_settings(tmp_path: Path, **extra: Any) -> Settings:
    """Settings with their own topic prefix and app id, so tests share a broker safely."""
    tag = uuid.uuid4().hex[:8]
    return Settings(
        topic_prefix=f"t{tag}.",
        app_id=f"fwtest-{tag}",
        web_host="127.0.0.1",
        web_port=free_port(),
        data_dir=tmp_path / "state",
        partitions=extra.pop("partitions", 2),
        broker_session_timeout=6.0,
        **extra,
    )


def http_get(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - loopback only
        return r.read().decode()


def http_post(url: str, body: bytes, timeout: float = 10.0) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw or b"{}")
        except ValueError:
            return e.code, {"raw": raw.decode(errors="replace")}


def producer(bootstrap: str) -> KafkaProducer:
    return KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)


def read_topic(
    bootstrap: str,
    topic: str,
    until: Callable[[list[Any]], bool],
    timeout: float = 60.0,
) -> list[Any]:
    """Read ``topic`` from the beginning until ``until(records)`` holds or time runs out."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=500,
    )
    try:
        deadline = time.monotonic() + timeout
        tps = _from_beginning(consumer, topic, deadline)
        records: list[Any] = []
        while tps and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=300).values():
                records.extend(batch)
            if until(records):
                break
        return records
    finally:
        consumer.close()


def read_to_end(bootstrap: str, topic: str, timeout: float = 120.0) -> list[Any]:
    """Everything ``topic`` holds now: from the beginning to the end offsets it has when
    called, however long that takes (a fixed time would return a prefix on a slow machine)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False)
    try:
        deadline = time.monotonic() + timeout
        tps = _from_beginning(consumer, topic, deadline)
        ends = consumer.end_offsets(tps) if tps else {}
        records: list[Any] = []
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: not read to its end in {timeout} s")
            for batch in consumer.poll(timeout_ms=300).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


def _from_beginning(consumer: KafkaConsumer, topic: str, deadline: float
                    ) -> list[TopicPartition]:
    """Assign all of ``topic``'s partitions (once it exists), positioned at the beginning."""
    parts = None
    while parts is None and time.monotonic() < deadline:
        parts = consumer.partitions_for_topic(topic)
        if parts is None:
            time.sleep(0.2)
    if parts is None:
        return []
    tps = [TopicPartition(topic, p) for p in parts]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    return tps


def latest_by_key(records: list[Any]) -> dict[bytes, bytes | None]:
    out: dict[bytes, bytes | None] = {}
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        out[r.key] = r.value
    return out


def changelog_topic(settings: Settings, table: str) -> str:
    return f"{settings.app_id}-{table}-changelog"


def topic(settings: Settings, logical: str) -> str:
    return topic_name(logical, settings.topic_prefix)


# --- several workers (tests/integration/test_multi_worker.py, bench/scale.py) ----------------

def worker_settings(settings: Settings, tmp_path: Path, name: str) -> Settings:
    """``settings`` for one more worker of the same group: its own web port and data dir, as
    each replica of a deployment has."""
    return settings.model_copy(update={"web_port": free_port(),
                                       "data_dir": tmp_path / name / "state"})


def processed_messages(worker: WorkerProcess, topic_label: str = "web_events") -> float:
    """``frictionwatch_messages_total`` of one input topic (0 if the worker does not answer)."""
    import re

    try:
        text = worker.metrics_text(timeout=2.0)
    except OSError:
        return 0.0
    m = re.search(rf'^frictionwatch_messages_total\{{topic="{topic_label}"\}} (\S+)$', text,
                  re.M)
    return float(m.group(1)) if m else 0.0
