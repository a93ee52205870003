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


def test_a_flush_in_slices_stops_at_a_rebalance_and_the_rest_waits_for_the_next() -> None:
    """Slices let the event loop run; a rebalance that starts between two of them stops the
    flush: what is left of an owned partition (keys and held events) is written by the next
    flush, and only the partitions written in full are acknowledged."""
    import asyncio

    d = DirtyStates(interval=0.0)
    a, b = object(), object()
    ea, eb = Event(1), Event(2)
    d.hold(0, a, [ea])
    d.hold(1, b, [eb])
    for i in range(5):
        d.mark(0, a, f"a{i}", ea)
        d.mark(1, b, f"b{i}", eb)
    written: list[list[str]] = []
    settled = [True]

    def write(partition: int, keys: dict[Any, Any]) -> None:
        written.append(list(keys))
        if len(written) == 3:  # a rebalance begins while the third slice is written
            settled[0] = False

    owners = {0: a, 1: b}
    kept = asyncio.run(d.write_in_slices(owners.get, write, lambda: settled[0], size=2))
    assert written == [["a0", "a1"], ["a2", "a3"], ["a4"]]
    assert [p.owner for p in kept] == [a]  # partition 0 in full; 1 not begun
    assert d.acknowledge(kept) == 1 and ea.message.refcount == 1
    assert list(d.pending[1].keys) == [f"b{i}" for i in range(5)] and d.pending[1].held == [eb]

    # The rebalance took partition 1 away meanwhile: the next flush drops it unwritten.
    settled[0] = True
    written.clear()
    d.mark(0, a, "a9", ea)
    kept = asyncio.run(d.write_in_slices({0: a}.get, write, lambda: True, size=2))
    assert written == [["a9"]] and [p.owner for p in kept] == [a]
    assert eb.message.refcount == 2  # never acknowledged here: its next owner re-reads it


def test_a_slice_cut_short_goes_back_with_its_events() -> None:
    import asyncio

    d = DirtyStates(interval=0.0)
    a = object()
    e = Event(1)
    d.hold(0, a, [e])
    for i in range(5):
        d.mark(0, a, f"s{i}", e)
    calls = [0]

    def go_on() -> bool:
        calls[0] += 1
        return calls[0] < 4  # before the take, the first slice, the second; then a rebalance

    written: list[list[str]] = []
    kept = asyncio.run(d.write_in_slices({0: a}.get, lambda p, k: written.append(list(k)),
                                         go_on, size=2))
    assert written == [["s0", "s1"], ["s2", "s3"]] and kept == []
    assert list(d.pending[0].keys) == ["s4"] and d.pending[0].held == [e]


def test_a_flush_that_first_runs_in_a_rebalance_writes_and_takes_nothing() -> None:
    """A flush started beside the agent may first get the loop once a rebalance began (the
    partitions being revoked, their engines not dropped yet): it must not write, or its
    states could reach the changelog after the partitions' next owners read it back. What
    was marked stays pending, with its events, for the first flush after the rebalance."""
    import asyncio

    d = DirtyStates(interval=0.0)
    a, e = object(), Event(1)
    d.hold(0, a, [e])
    d.mark(0, a, "s0", e)
    written: list[list[str]] = []
    kept = asyncio.run(d.write_in_slices({0: a}.get, lambda p, k: written.append(list(k)),
                                         lambda: False))
    assert written == [] and kept == []
    assert list(d.pending[0].keys) == ["s0"] and d.pending[0].held == [e] and d.due()


def test_with_a_lock_batches_run_between_slices_and_keep_their_changes_for_the_next() -> None:
    """A flush given the lock the batches hold writes a slice at a time, and a batch that
    waits for the lock runs after the slice under way, not after the whole flush. Each key
    is written as it was when its slice ran; a key a batch changed meanwhile is marked again,
    its event held for the next flush, and only the events taken at the start are
    acknowledged by this one."""
    import asyncio

    d = DirtyStates(interval=0.0)
    a = object()
    first, later = Event(1), Event(2)
    d.hold(0, a, [first])
    for i in range(6):
        d.mark(0, a, f"s{i}", first)
    state = {f"s{i}": 0 for i in range(6)}
    log: list[str] = []

    written = asyncio.Event()

    def write(partition: int, keys: dict[Any, Any]) -> None:
        log.append("write " + ",".join(f"{k}={state[k]}" for k in keys))
        written.set()

    async def main() -> list[Any]:
        lock = asyncio.Lock()
        flush = asyncio.ensure_future(d.write_in_slices({0: a}.get, write, lambda: True,
                                                        size=2, lock=lock))

        async def batch() -> None:
            await written.wait()  # comes while the flush writes its first slice
            async with lock:
                state["s5"] = 1  # a change to a key the flush has not reached yet
                d.hold(0, a, [later])
                d.mark(0, a, "s5", later)
                log.append("batch")

        await asyncio.gather(batch(), flush)
        return flush.result()

    kept = asyncio.run(main())
    assert log == ["write s0=0,s1=0", "batch", "write s2=0,s3=0", "write s4=0,s5=1"]
    assert d.acknowledge(kept) == 1 and first.message.refcount == 1
    assert list(d.pending[0].keys) == ["s5"] and d.pending[0].held == [later]
    assert later.message.refcount == 2  # held for the next flush
