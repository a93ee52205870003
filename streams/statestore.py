"""Local table state (``FRICTIONWATCH_STORE=rocksdb://``) checked against its changelog topics
before the worker starts, and removed on request (``frictionwatch worker --reset-state``).

Faust keeps each table partition in a RocksDB database under its table directory, with the
offset of the last changelog record it applied. When that offset lies beyond the end of the
changelog topic, the local state belongs to data the broker no longer has (the topics were
deleted, the broker's data was wiped, or this is another cluster): Faust then either stops
with a bare ``ConsistencyError`` (when the changelog still holds some records) or, on an empty
changelog, starts on the stale state without a word. Both are refused here, with the command
that fixes it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Ahead", "local_offsets", "ahead_of_changelog", "reset_state", "describe"]

#: Where Faust's RocksDB store keeps a partition's last applied changelog offset
#: (``faust.stores.rocksdb.Store.offset_key``).
OFFSET_KEY = b"__faust\0offset__"


@dataclass(frozen=True)
class Ahead:
    """One table partition whose local state is ahead of its changelog topic."""

    topic: str
    partition: int
    persisted: int
    end: int


def local_offsets(tabledir: Path) -> dict[tuple[str, int], int]:
    """``(table, partition) -> last applied changelog offset`` of the RocksDB tables in
    ``tabledir`` (Faust names them ``<table>-<partition>.db``). Opened read-only."""
    from rocksdict import AccessType, Options, Rdict

    out: dict[tuple[str, int], int] = {}
    for path in sorted(tabledir.glob("*-*.db")):
        table, _, partition = path.name.removesuffix(".db").rpartition("-")
        if not partition.isdigit():
            continue
        db = Rdict(str(path), options=Options(raw_mode=True),
                   access_type=AccessType.read_only())
        try:
            raw = db.get(OFFSET_KEY)
        finally:
            db.close()
        if raw is not None:
            out[(table, int(partition))] = int(raw)
    return out


def ahead_of_changelog(
    offsets: dict[tuple[str, int], int], changelog: dict[str, str], ends: dict[tuple[str, int], int]
) -> list[Ahead]:
    """The partitions whose persisted offset is at or past their changelog's end offset.

    ``changelog`` maps a table to its changelog topic; ``ends`` holds the topics' end offsets
    (the next offset to be written; a missing topic or partition counts as empty).

    >>> ahead_of_changelog({("sessions", 0): 41, ("sessions", 1): 7},
    ...                    {"sessions": "app-sessions-changelog"},
    ...                    {("app-sessions-changelog", 0): 42})
    [Ahead(topic='app-sessions-changelog', partition=1, persisted=7, end=0)]
    """
    out = []
    for (table, partition), persisted in sorted(offsets.items()):
        topic = changelog.get(table)
        if topic is None:
            continue  # not one of this app's tables
        end = ends.get((topic, partition), 0)
        # Faust applied the record at ``persisted``, so the topic must reach past it.
        if persisted >= end:
            out.append(Ahead(topic, partition, persisted, end))
    return out


def changelog_ends(bootstrap: str, topics: Iterable[str], client_kwargs: dict[str, object]
                   ) -> dict[tuple[str, int], int]:
    """End offsets of every partition of ``topics`` on the broker (missing topics: none)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             **client_kwargs)
    try:
        tps = [TopicPartition(t, p) for t in topics
               for p in sorted(consumer.partitions_for_topic(t) or ())]
        ends = consumer.end_offsets(tps) if tps else {}
        return {(tp.topic, tp.partition): int(end) for tp, end in ends.items()}
    finally:
        consumer.close()


def reset_state(tabledir: Path) -> bool:
    """Remove the local table state (the table directory, nothing else). True if there was
    any; the worker then rebuilds it from the changelog topics."""
    if not tabledir.exists():
        return False
    shutil.rmtree(tabledir)
    return True


def describe(ahead: list[Ahead], tabledir: Path, bootstrap: str, fix: str) -> str:
    """What to tell the user: which state, why it cannot be used, and the command that fixes
    it."""
    first = ahead[0]
    n = len(ahead) - 1
    more = f" (and {n} more partition{'s' if n > 1 else ''})" if n else ""
    return (
        f"the local table state in {tabledir} is ahead of its changelog on {bootstrap}: "
        f"{first.topic}[{first.partition}] was applied up to offset {first.persisted}, but the "
        f"topic ends at {first.end}{more}. The broker no longer has the data this state was "
        "built from (its topics or data were removed, or it is another cluster), so the worker "
        "cannot recover it.\n"
        "To drop the local state and rebuild it from the broker's changelog, run (with the "
        f"same FRICTIONWATCH_* settings):\n  {fix}"
    )
