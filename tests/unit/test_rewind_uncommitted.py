"""After a recovery, stream partitions with no committed offset are read from their beginning."""

from __future__ import annotations

import asyncio
from typing import Any, NamedTuple

from streams.rebalance import rewind_uncommitted


class TP(NamedTuple):
    topic: str
    partition: int


class FakeConsumer:
    """What Faust's consumer offers here: its assignment, the committed seek (which, as
    aiokafka's, moves only partitions that have a commit), earliest offsets, seek."""

    def __init__(self, committed: dict[TP, int | None]) -> None:
        self.committed = committed
        self.position: dict[TP, int] = {tp: 900 for tp in committed}  # fetched, then dropped

    def assignment(self) -> set[TP]:
        return set(self.committed)

    async def seek_to_committed(self) -> dict[TP, int | None]:
        for tp, offset in self.committed.items():
            if offset:
                self.position[tp] = offset
        return dict(self.committed)

    async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
        return {tp: 3 for tp in tps}  # retention removed 0..2

    async def seek(self, tp: TP, offset: int) -> None:
        self.position[tp] = offset


def run(consumer: Any, topics: set[str]) -> list[Any]:
    return asyncio.run(rewind_uncommitted(consumer, topics))


def test_partitions_without_a_commit_go_back_to_their_beginning_and_others_to_their_commit():
    web0, web1 = TP("fw.web-events", 0), TP("fw.web-events", 1)
    log0 = TP("app-sessions-changelog", 0)
    consumer = FakeConsumer({web0: None, web1: 40, log0: None})
    assert run(consumer, {"fw.web-events"}) == [web0]
    # Without the rewind web0 would go on from 900: what was fetched during recovery, lost.
    assert consumer.position == {web0: 3, web1: 40, log0: 900}  # changelogs are Faust's


def test_a_committed_offset_of_zero_is_no_commit_either():
    web0 = TP("fw.web-events", 0)
    consumer = FakeConsumer({web0: 0})
    assert run(consumer, {"fw.web-events"}) == [web0]
    assert consumer.position[web0] == 3


def test_nothing_to_do_without_stream_partitions():
    log0 = TP("app-sessions-changelog", 0)
    consumer = FakeConsumer({log0: None})
    assert run(consumer, {"fw.web-events"}) == []
    assert consumer.position[log0] == 900
