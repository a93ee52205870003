"""Which web-events partitions a worker owns, and its session engines kept to exactly those.

A worker holds one ``Engine`` per web-events partition (event time is per partition). When a
rebalance moves a partition away, another worker goes on writing its sessions; an engine
kept here would hold stale sessions, and if the partition came back they would be applied
to instead of the stored ones (state forked, outputs sent twice). So:

- rebalance starts (``on_revoked``; Faust's eager protocol revokes everything): deadline and
  expiry timers stop touching engines until the new assignment has been recovered;
- ``on_assigned`` (Faust's ``on_partitions_assigned`` signal, sent after the tables were told
  the assignment but before their changelogs are read): engines of partitions this worker
  no longer owns are dropped, with their sessions;
- ``adopt`` (on ``app.on_rebalance_complete``, which Faust sends once the tables' active
  partitions are recovered, before the streams resume): the stored sessions of owned
  partitions that the engines do not hold are taken over, so their deadlines run and they
  expire. A taken-over partition's engine starts with no event time: it moves with the
  partition's next messages (replays after a kill included), as the previous owner's did.

>>> from types import SimpleNamespace as TP
>>> own = Ownership("fw.web-events")
>>> engines = {0: "e0", 1: "e1", 2: "e2"}
>>> own.on_assigned([TP(topic="fw.web-events", partition=1), TP(topic="x", partition=2)],
...                 engines)
[0, 2]
>>> engines, own.owned, own.settled
({1: 'e1'}, {1}, False)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["Ownership", "rewind_uncommitted"]


async def rewind_uncommitted(consumer: Any, topics: Iterable[str],
                             positions: dict[Any, int] | None = None) -> list[Any]:
    """Seek the assigned partitions of ``topics`` that have no committed offset to their
    beginning; the partitions rewound.

    Faust drops what its consumer fetched while the tables recovered and then seeks its stream
    partitions back to their committed offsets, but only those that have one
    (``aiokafka.AIOKafkaConsumer.seek_to_committed`` skips the others). A worker killed before
    its group's first commit left none, so its successor went on past the records fetched and
    dropped during its recovery: their events were lost (the SIGKILL crash test, on Apache
    Kafka, once bundles made the first commit come after thousands of events). Call it on
    ``app.on_rebalance_complete``, which Faust sends before it seeks.

    ``positions``, if given, receives the offset each assigned partition of ``topics`` is read
    from now: its commit, or its beginning (``streams.acks`` holds the agents to them)."""
    wanted = set(topics)
    if not any(tp.topic in wanted for tp in consumer.assignment()):
        return []
    committed = await consumer.seek_to_committed()
    fresh = sorted((tp for tp, offset in committed.items() if tp.topic in wanted and not offset),
                   key=lambda tp: (tp.topic, tp.partition))
    if positions is not None:
        positions.update({tp: offset for tp, offset in committed.items()
                          if tp.topic in wanted and offset})
    if fresh:
        log.info("rebalance: %s have no committed offset; read from their beginning", fresh)
        for tp, offset in (await consumer.earliest_offsets(*fresh)).items():
            await consumer.seek(tp, offset)
            if positions is not None:
                positions[tp] = offset
    return fresh


class Ownership:
    """This worker's web-events partitions; ``settled`` is False from the start of a
    rebalance until the stored sessions of its new assignment are adopted."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.owned: set[int] = set()
        #: Nothing is owned before the first assignment: timers wait for it.
        self.settled = False

    def on_revoked(self) -> None:
        self.settled = False

    def on_assigned(self, assigned: Iterable[Any], engines: dict[int, Any]) -> list[int]:
        """Record the new assignment (TopicPartitions of every topic) and drop the engines
        of web-events partitions not in it; the partitions dropped, in order."""
        self.settled = False
        self.owned = {tp.partition for tp in assigned if tp.topic == self.topic}
        dropped = sorted(p for p in engines if p not in self.owned)
        for p in dropped:
            del engines[p]
        if dropped:
            log.info("rebalance: partitions %s of %s moved away; their sessions dropped",
                     dropped, self.topic)
        return dropped

    def adopt(
        self,
        keys: Iterable[bytes],
        partition_of: Callable[[bytes], int],
        held: Callable[[str], bool],
        load: Callable[[bytes], Any],
        take: Callable[[int, Any], None],
    ) -> int:
        """Take over the stored sessions of owned partitions that no engine holds.

        ``keys``: the sessions table's keys (standby or not-yet-deleted keys of other
        partitions are skipped); ``held(session id)``: an engine of this worker has it (a
        session belongs to one partition; asked first, as most keys are held: the safety-net
        timer runs this over every stored key, and the partition of each, a hash, made it a
        pause of 0.5 s every 30 s with 100,000 sessions);
        ``load(key)``: its stored state, or None (none, or unreadable: the caller
        dead-letters it); ``take(partition, state)``: hand it to that partition's engine.
        Returns how many were adopted; the worker is settled afterwards."""
        n = 0
        for key in list(keys):
            if held(key.decode(errors="replace")):
                continue
            p = partition_of(key)
            if p not in self.owned:
                continue
            state = load(key)
            if state is not None:
                take(p, state)
                n += 1
        self.settled = True
        return n
