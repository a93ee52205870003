"""Changed states written once per interval, acks held until then; changes of a partition
taken away (its engine replaced) are neither written nor acknowledged."""

from __future__ import annotations

from typing import Any

from streams.dirty import DirtyStates


class Msg:
    def __init__(self, offset: int) -> None:
        self.refcount, self.offset, self.tp = 1, offset, "tp"

    def incref(self) -> None:
        self.refcount += 1


class Event:
    def __init__(self, offset: int) -> None:
        self.message = Msg(offset)

    def ack(self) -> bool:
        self.message.refcount -= 1
        return self.message.refcount == 0


def test_acks_wait_for_the_write_and_a_lost_partition_is_dropped() -> None:
    now = [0.0]
    acked: list[Any] = []
    d = DirtyStates(interval=2.0, clock=lambda: now[0], on_acked=acked.append)
    a, b = object(), object()
    e0, e1 = Event(1), Event(2)
    d.hold(0, a, [e0])
    d.mark(0, a, "s1", e0)
    d.hold(1, b, [e1])
    d.mark(1, b, "s2", e1)
    assert not (e0.ack() or e1.ack())  # the batches end: Faust's acks are not the last ones
    assert not d.due()
    now[0] = 2.0
    assert d.due()
    written: list[tuple[int, list[str]]] = []
    # Partition 1 was revoked and its engine dropped: nothing of it is written or acked.
    assert d.flush({0: a}.get, lambda p, keys: written.append((p, list(keys)))) == 1
    assert written == [(0, ["s1"])]
    assert acked == [e0] and e1.message.refcount == 1
    assert not d.pending and not d.due()


def test_changes_made_on_a_replaced_engine_are_not_written() -> None:
    d = DirtyStates(interval=0.0)
    old, new = object(), object()
    d.mark(0, old, "s1", None)
    d.mark(0, new, "s2", None)  # the partition came back: a new engine
    written: list[list[str]] = []
    d.flush(lambda p: new, lambda p, keys: written.append(list(keys)))
    assert written == [["s2"]]
