"""Offsets are committed only past messages an agent applied, in the current generation.

Faust commits a partition up to the end of the first run of consecutive acknowledged offsets.
Two kinds of message are acknowledged without any agent having applied them:

- Faust acknowledges the messages its streams drop (fetched before the group's latest
  rebalance, or while flow was stopped for one) "so the lag does not grow". The partition is
  then sought back to its committed offset and those records come again, but with them
  acknowledged, Faust could commit past them first; when the worker was killed or the group
  rebalanced again before they came, they were lost. On Apache Kafka under load, the crash test
  lost the events of 398 sessions this way (a worker that came in for a killed one took its
  partitions twice, the dead member still in the group the first time).
- ``take_events`` may hold a message in a batch across a rebalance. Applied after it, by a
  worker that got the partition back, it moves its states' per-origin positions past records
  that come again, and those are skipped as replays.

- A partition's stream can resume past records it never delivered: Faust drops a record it
  fetched while the tables recovered, and its consumer then drops the same record fetched
  again (below its "read offset", which its fetch loop set after our seek back), so the
  stream went on from the next fetch. In the crash test the successor of a killed worker
  started both web-events partitions at offset 12 of 63. Faust also counts such a jump as
  a "gap" that it may commit past, as if acknowledged.

So on the guarded topics (those whose agents keep state: sessions, customers, experiments),
``current`` is the only way into a batch. From each recovery (``expect``) until the next
rebalance it holds each partition to its order: it keeps the events fetched in the current
generation at or below the partition's next expected offset, marks them taken, and on a jump
past that offset sets the partition aside to be sought back (``seek_back``). The consumer
refuses the acknowledgement of any message not taken and records no gaps for these topics.
A refused message is read again, by its partition's owner, from the committed offset.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any
from weakref import WeakSet

log = logging.getLogger(__name__)

__all__ = ["TakenAcks"]


class TakenAcks:
    """Which messages the agents took, and a consumer that acknowledges only those.

    >>> from types import SimpleNamespace as NS
    >>> acks = TakenAcks(NS(consumer_generation_id=4))
    >>> acks.guard("web")
    >>> class Msg:  # as Faust's messages: weakly referenceable, hashed by identity
    ...     def __init__(self, offset, generation_id=4, topic="web"):
    ...         self.topic, self.offset, self.generation_id = topic, offset, generation_id
    ...         self.tp = (topic, 0)
    >>> acks.expect({("web", 0): 10})  # recovered: the partition is read from offset 10
    >>> old, new, other = Msg(10, generation_id=3), Msg(10), Msg(10, topic="alerts")
    >>> [e.message.offset for e in acks.current([NS(message=old), NS(message=new)])]
    [10]
    >>> acks.allows(old), acks.allows(new), acks.allows(other)
    (False, True, True)
    >>> [e.message.offset for e in acks.current([NS(message=Msg(o)) for o in (9, 11, 13, 14)])]
    [9, 11]
    >>> acks.holes  # 12 never came: the partition goes back to it
    {('web', 0): 12}
    """

    def __init__(self, app: Any, refused: Any = None) -> None:
        self.app = app
        self.topics: set[str] = set()
        self.taken: WeakSet[Any] = WeakSet()
        #: guarded partition -> the next offset its agent may apply (None: before the first
        #: recovery, or during a rebalance: nothing is taken)
        self.next: dict[Any, int] | None = None
        #: partitions whose stream jumped past ``next``: where to seek them back to
        self.holes: dict[Any, int] = {}
        #: a Prometheus counter of the acknowledgements refused, if given
        self.refused = refused

    def guard(self, topic: str) -> None:
        """Acknowledge messages of ``topic`` only once ``current`` has handed them on."""
        self.topics.add(topic)

    def revoked(self) -> None:
        """A rebalance began: nothing is taken until the next ``expect``."""
        self.next = None
        self.holes.clear()

    def expect(self, positions: Mapping[Any, int]) -> None:
        """Recovered: each assigned partition is read from ``positions[tp]`` (its commit, or
        its beginning; ``streams.rebalance.rewind_uncommitted``)."""
        self.next = {tp: offset for tp, offset in positions.items() if tp[0] in self.topics}
        self.holes.clear()

    def current(self, batch: Iterable[Any]) -> list[Any]:
        """The events of ``batch`` an agent may apply now, marked taken: fetched in the current
        consumer generation, after a recovery, in their partition's order. A partition that
        jumped is set aside until ``seek_back``."""
        generation, nxt, holes = self.app.consumer_generation_id, self.next, self.holes
        kept = []
        for event in batch:
            msg = event.message
            if msg.generation_id != generation or nxt is None or msg.tp in holes:
                continue
            want = nxt.get(msg.tp)
            if want is not None and msg.offset > want:
                holes[msg.tp] = want
                continue
            if want is None or msg.offset == want:
                nxt[msg.tp] = msg.offset + 1
            self.taken.add(msg)
            kept.append(event)
        return kept

    async def seek_back(self, consumer: Any) -> None:
        """Seek the partitions that jumped back to the offset they should go on from."""
        holes, self.holes = self.holes, {}
        for tp, offset in holes.items():
            log.warning("%s went on past offset %d, which no agent applied: reading it "
                        "again from there", tp, offset)
            await consumer.seek(tp, offset)

    def allows(self, message: Any) -> bool:
        return message.topic not in self.topics or message in self.taken

    def install(self) -> None:
        """Make the app's Kafka consumer refuse acknowledgements ``allows`` does not allow.
        Call before the app starts (the consumer is created then)."""
        transport = self.app.transport
        base = transport.Consumer
        acks = self

        class Consumer(base):  # type: ignore[misc, valid-type]
            def ack(self, message: Any) -> bool:
                if not acks.allows(message):
                    if acks.refused is not None:
                        acks.refused.inc()
                    return False
                return bool(super().ack(message))

            async def _add_gap(self, tp: Any, offset_from: int, offset_to: int) -> None:
                # Faust commits past a "gap" as if acknowledged. These topics have none (no
                # compaction, no transactions): a jump is a dropped read, sought back.
                if tp.topic not in acks.topics:
                    await super()._add_gap(tp, offset_from, offset_to)

        transport.Consumer = Consumer
