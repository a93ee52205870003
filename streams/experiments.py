"""The experiments agent: both arms of every holdout, added up per unit and arm.

The sessions agent sends each holdout record (``detectors.holdout``) to the experiments topic,
keyed by unit, so all of a unit's records reach one partition in order. Per input partition a
``models.experiments.Ledger`` keeps the open units and the arm totals; it is written to the
experiments table with the offset of the last record it holds, so after a crash the table's
state is restored and the records replayed since are skipped (as the sessions agent does with
its states' positions): counts are exact across restarts.

A ledger is one record holding every open unit of its partition, so writing it costs as much
as it holds: it is written once per ``Settings.experiments_flush_interval``, not per batch, and
the batches' messages are acknowledged only once it is in the changelog (``streams.dirty``, as
the sessions agent does). Written per batch, at 5,000 events/s it was a tenth of the worker's
CPU with 4,000 open units (py-spy, ``bench/scale.py`` paced), and more with each one.

The totals are Prometheus gauges summed over this worker's partitions; summed over workers in
PromQL they are the experiment's, and recording rules turn them into conversion per arm and
lift with its always-valid interval (``deploy/prometheus/rules/kpis.yml``).
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import faust
import msgspec

from models.experiments import Ledger
from models.lift import ArmStats
from streams import detection
from streams.acks import TakenAcks
from streams.deadletter import DeadLetter, decode_reason
from streams.dirty import DirtyStates
from streams.guard import Guard, set_finite
from streams.metrics import Metrics
from streams.settings import Settings
from streams.tables import Changelogs, set_in_partition
from streams.take import take_batches

__all__ = ["EXPERIMENTS_TABLE", "HoldoutRecord", "register_experiments"]

EXPERIMENTS_TABLE = "experiments"


class HoldoutRecord(msgspec.Struct, kw_only=True):
    """The fields of a holdout record the ledger needs (others pass through unchecked)."""

    type: str
    experiment: str
    arm: str
    unit: str
    unit_kind: str
    time: float | None = None
    exposed_at: float | None = None
    end: float | None = None


class _Saved(msgspec.Struct):
    offset: int
    ledger: msgspec.Raw


def _decode(raw: bytes) -> dict[str, Any]:
    rec = msgspec.json.decode(raw, type=HoldoutRecord)  # validates what the ledger reads
    if rec.type not in ("exposure", "result") or rec.arm not in ("control", "treatment"):
        raise ValueError(f"not a holdout record: type {rec.type!r}, arm {rec.arm!r}")
    if (rec.time if rec.type == "exposure" else rec.exposed_at) is None or (
            rec.type == "result" and rec.end is None):
        raise ValueError(f"a holdout {rec.type} without its times")
    out: dict[str, Any] = msgspec.json.decode(raw)
    return out


def register_experiments(app: faust.App, settings: Settings, topic: Any, guard: Guard,
                         metrics: Metrics, acks: TakenAcks) -> dict[int, Ledger]:
    """The experiments agent, its table and gauges; returns the ledgers by partition.
    ``guard`` sends dead letters, checks the table writes' size and runs the timer; ``acks``
    keeps out of a batch what an earlier generation fetched (``streams.acks``)."""
    acks.guard(topic.get_topic_name())
    table = app.Table(EXPERIMENTS_TABLE, partitions=settings.partitions, key_type=bytes,
                      value_type=bytes)
    changelog = Changelogs(table, app=app)
    ledgers: dict[int, Ledger] = {}
    offsets: dict[int, int] = {}
    watermarks: dict[int, float] = {}
    take = (settings.batch_max_messages, settings.batch_within)

    def ledger_for(partition: int, at: Any, dead: list[DeadLetter]) -> Ledger:
        led = ledgers.get(partition)
        if led is None:
            led = ledgers[partition] = detection.ledger(settings)
            raw = table.get(b"p%d" % partition)
            if raw:
                try:
                    saved = msgspec.json.decode(raw, type=_Saved)
                    led.restore(saved.ledger)
                except Exception as exc:  # noqa: BLE001 - e.g. null where a total belongs
                    # Unreadable (poisoned before it could be refused): counted as a dead
                    # letter, and the partition's ledger starts fresh instead of failing on
                    # every later record, restarts included.
                    led = ledgers[partition] = detection.ledger(settings)
                    dead.append(guard.letter(
                        "processing_error", "stored experiments ledger unreadable, it starts "
                        f"fresh: {type(exc).__name__}: {exc}", "experiments", raw, at))
                else:
                    offsets[partition] = saved.offset
        return led

    async def on_revoked(sender: Any, *args: Any, **kw: Any) -> None:
        # Faust's eager protocol revokes every partition at each rebalance. Each ledger is
        # restored from the table at its partition's next record, so a partition that moved
        # away and came back is not folded into a ledger that missed its new owner's records.
        ledgers.clear()
        offsets.clear()

    app.on_partitions_revoked.connect(cast(Any, on_revoked))

    # Ledgers written once per interval, their messages acknowledged only then: the module
    # docstring says why. A ledger replaced since (a rebalance) is never written.
    dirty = DirtyStates(settings.experiments_flush_interval)
    flushing = asyncio.Lock()

    def write(partition: int, keys: dict[Any, Any], dead: list[DeadLetter]) -> None:
        for key, event in keys.items():
            try:
                saved = msgspec.json.encode(_Saved(offsets[partition],
                                                   msgspec.Raw(ledgers[partition].snapshot())))
            except Exception as exc:  # noqa: BLE001 - kept in memory, written next flush
                guard.errors.exception("agent:experiments", "a ledger failed")
                dead.append(guard.letter("processing_error", f"{type(exc).__name__}: {exc}",
                                         "experiments", b"", event))
                continue
            if guard.fits(key, saved):
                set_in_partition(table, key, saved, event)
            else:  # kept in memory; the table holds the last ledger that fitted
                dead.append(guard.letter(
                    "too_large", f"experiments ledger of {len(saved)} bytes is over the "
                    f"producer's limit {guard.limit}: not written", "experiments", saved,
                    event))

    async def flush() -> None:
        async with flushing:
            dead: list[DeadLetter] = []
            since = changelog.mark()
            written = dirty.write_all(ledgers.get, lambda p, keys: write(p, keys, dead))
            await changelog.acknowledge_when_delivered(dirty, written, guard.errors, "ledger",
                                                       since)
            await guard.dead(dead)

    @app.agent(topic, name="experiments")
    async def experiments_agent(stream: faust.StreamT[bytes]) -> None:
        async for batch in take_batches(stream, *take):
            touched: dict[int, list[Any]] = {}
            dead: list[DeadLetter] = []
            # A stale message would move the offset past records that come again.
            for event in acks.current(batch):  # streams.acks
                msg = event.message
                try:
                    led = ledger_for(msg.partition, event, dead)
                    if msg.offset <= offsets.get(msg.partition, -1):
                        continue  # applied before a crash, replayed since
                    offsets[msg.partition] = msg.offset
                    touched.setdefault(msg.partition, []).append(event)
                    try:
                        rec = _decode(event.value or b"")
                        led.add(rec)  # ValueError: numbers out of bounds, nothing added
                    except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
                        dead.append(guard.letter(decode_reason(exc), str(exc), "experiments",
                                                 event.value, event))
                        continue
                    t = rec["time"] if rec["type"] == "exposure" else rec["end"]
                    watermarks[msg.partition] = max(watermarks.get(msg.partition, 0.0), t)
                except Exception as exc:  # noqa: BLE001 - one record, not the batch
                    guard.errors.exception("agent:experiments", "a holdout record failed")
                    dead.append(guard.letter("processing_error", f"{type(exc).__name__}: "
                                             f"{exc}", "experiments", event.value, event))
            for partition, events in touched.items():
                led = ledgers[partition]
                try:
                    led.close(watermarks.get(partition, 0.0))
                except Exception:  # noqa: BLE001 - the next batch closes them
                    guard.errors.exception("agent:experiments", "a ledger failed to close")
                dirty.mark(partition, led, b"p%d" % partition, events[-1])
                dirty.hold(partition, led, events)
            if dirty.due():
                await flush()
            await guard.dead(dead)
            await acks.seek_back(app.consumer)
            metrics.messages.labels(topic="experiments").inc(len(batch))

    @guard.timer(app, max(settings.experiments_flush_interval, 0.5))
    async def flush_ledgers() -> None:
        """Write the ledgers changed since the last flush when no batch came to do it."""
        if dirty.due() and not flushing.locked():
            await flush()

    experiments_topic = topic.get_topic_name()
    names = [e.name for e in detection.experiments(settings)]

    @guard.timer(app, 5.0)
    async def gauge_experiments() -> None:
        """The arm totals of the partitions this worker holds now (a revoked partition's
        ledger is dropped: its new owner restores it from the table)."""
        assigned = {tp.partition for tp in app.consumer.assignment()
                    if tp.topic == experiments_topic} if app.consumer else set()
        for p in list(ledgers):
            if p not in assigned:
                del ledgers[p]
                offsets.pop(p, None)
        for name in names:
            pending = 0
            for arm in ("control", "treatment"):
                st = ArmStats()
                for led in ledgers.values():
                    st.merge(led.totals[name][arm])
                set_finite(metrics.experiment_units.labels(name, arm), st.units)
                set_finite(metrics.experiment_conversions.labels(name, arm), st.conversions)
                set_finite(metrics.experiment_orders.labels(name, arm), st.orders)
                set_finite(metrics.experiment_revenue.labels(name, arm), st.revenue)
                set_finite(metrics.experiment_delivered.labels(name, arm), st.delivered)
            for led in ledgers.values():
                pending += sum(1 for u in led.pending.values() if u.experiment == name)
            metrics.experiment_pending.labels(name).set(pending)

    return ledgers
