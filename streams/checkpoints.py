"""Model checkpoints on the worker's disk: restored when it starts, written on a timer, so a
restart does not forget what the online models learned (``models.checkpoint`` is the format).

>>> import tempfile
>>> from pathlib import Path
>>> from models.abandonment import AbandonmentScorer
>>> path = Path(tempfile.mkdtemp()) / "abandonment.ckpt"
>>> restore(AbandonmentScorer(), path)  # nothing saved yet: starts fresh
False
>>> save(AbandonmentScorer(), path), restore(AbandonmentScorer(), path)
(True, True)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from pathlib import Path
from typing import Any

import msgspec

from models import checkpoint
from models.checkpoint import CheckpointError

__all__ = ["Published", "Shared", "adopt_model", "adopt_step", "drop_step", "envelope", "model_key",
           "read_published", "restore", "save", "step_checkpoint", "step_key", "unwrap"]

log = logging.getLogger(__name__)


def save(model: Any, path: Path) -> bool:
    """Write ``model.checkpoint()`` to ``path`` atomically (a crash leaves the old one).

    A model that refuses to checkpoint (``CheckpointError``: a non-finite weight) is not
    written: the last good checkpoint stays, and the refusal is logged. False: not written.
    """
    try:
        data = model.checkpoint()
    except CheckpointError as exc:
        log.error("not checkpointing %s (%s): the last good checkpoint stays", path, exc)
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return True


def restore(model: Any, path: Path) -> bool:
    """Load ``path`` into ``model`` if it holds a usable checkpoint; False: starting fresh."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return False
    try:
        model.restore(data)
    except CheckpointError as exc:
        log.warning("not restoring %s (%s): the model starts fresh", path, exc)
        return False
    except Exception as exc:  # noqa: BLE001 - a damaged file must not keep the worker down
        log.warning("not restoring %s (%s: %s): the model starts fresh", path,
                    type(exc).__name__, exc)
        return False
    return True


# --- shared checkpoints: the compacted checkpoints topic -------------------------------------
#
# Disk checkpoints survive a restart of the same worker. When partitions move to another
# worker (a kill, a scale-out), that worker's disk has nothing of them; so every worker also
# publishes what it learned to the compacted ``checkpoints`` topic (streams.topics), and a
# worker that starts or takes over partitions begins from the latest published state.
#
# Keys: ``model/<name>`` for the online models and the detectors' learned thresholds (one
# logical model each: every worker learns its own copy from its partitions' traffic, and a
# worker adopts a published copy that learned more than its own), and
# ``incidents/<journey>/<step>`` for each journey step's incident baselines, published only by
# the worker that owns the step's journey-stats partition and adopted by its next owner.


class Published(msgspec.Struct, frozen=True):
    """One value of the checkpoints topic."""

    #: Examples the state learned: of two copies of a model, the one that learned more wins.
    learned: int
    #: Publication time (unix seconds), for people reading the topic.
    at: float
    #: ``models.checkpoint`` bytes.
    data: bytes


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(Published).decode


def envelope(data: bytes, learned: int, at: float) -> bytes:
    """The topic value for a checkpoint."""
    return _encode(Published(learned=learned, at=at, data=data))


def unwrap(raw: bytes | None) -> Published | None:
    """A topic value, or None: a tombstone or not one of ours (skipped, never fatal)."""
    if not raw:
        return None
    try:
        return _decode(raw)
    except (msgspec.DecodeError, ValueError):
        return None


def model_key(name: str) -> str:
    return f"model/{name}"


def step_key(journey_step: str) -> str:
    return f"incidents/{journey_step}"


def examples(model: Any) -> int:
    """Examples ``model`` learned: its ``learned``, summed when it counts per kind (B2B)."""
    learned = getattr(model, "learned", 0)
    return int(sum(learned.values()) if isinstance(learned, dict) else learned)


def adopt_model(model: Any, published: Published | None, name: str = "") -> bool:
    """Restore ``model`` from ``published`` if that copy learned more than ``model`` has;
    True if it did. A checkpoint that does not load leaves the model as it was."""
    if published is None or published.learned <= examples(model):
        return False
    try:
        model.restore(published.data)
    except Exception as exc:  # noqa: BLE001 - a bad checkpoint must not keep the worker down
        log.warning("not adopting the published %s (%s: %s): the model goes on as it was",
                    name, type(exc).__name__, exc)
        return False
    log.info("adopted the published %s (%d examples learned)", name, published.learned)
    return True


async def read_published(bootstrap: str, topic: str, client_kwargs: dict[str, Any],
                         timeout: float = 15.0, idle: float = 1.0) -> dict[str, Published]:
    """Every key's latest value on the checkpoints ``topic``: read from the beginning, without
    a consumer group, until the end offsets are reached and no record came for ``idle``
    seconds (some brokers under-report end offsets), or ``timeout`` passes. Empty if the topic
    does not exist (yet) or the broker cannot be reached."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", **client_kwargs)
    latest: dict[str, Published] = {}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        await asyncio.wait_for(consumer.start(), timeout)
        # A consumer with no subscription keeps no metadata for the topic, and ``topics()``
        # returns a fresh copy without storing it: ask for it and read that copy.
        cluster = await consumer._client.fetch_all_metadata()
        parts = cluster.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        if not tps:
            return latest
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        quiet_since = loop.time()
        while loop.time() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for r in records:
                    if r.key is None:
                        continue
                    value = unwrap(r.value)
                    if value is None:
                        latest.pop(r.key.decode(errors="replace"), None)
                    else:
                        latest[r.key.decode(errors="replace")] = value
            now = loop.time()
            if batches:
                quiet_since = now
            positions = [await consumer.position(tp) for tp in tps]
            if all(p >= ends[tp] for p, tp in zip(positions, tps, strict=True)) \
                    and now - quiet_since >= idle:
                break
    except Exception as exc:  # noqa: BLE001 - no shared state is a cold start, not a crash
        log.warning("checkpoints topic %s not read (%s: %s): starting from local state",
                    topic, type(exc).__name__, exc)
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()
    return latest


def step_checkpoint(detector: Any, merger: Any, key: str) -> tuple[bytes, int] | None:
    """One journey step's incident state (``key`` is ``journey/step``): its baselines and
    its windows not yet judged; with the windows it has seen. None: nothing of it here."""
    journey, _, step = key.partition("/")
    st = detector.steps.get((journey, step))
    if st is None:
        return None
    saved = {"step": st, "open": merger._open.get(key, {}),
             "closed": merger._closed.get(key)}
    return checkpoint.dumps(saved), int(st.seen)


def adopt_step(detector: Any, merger: Any, key: str, published: Published) -> bool:
    """Take over one journey step's incident state from the checkpoints topic; True if it
    was loaded (a step this worker already holds is replaced: its owner published later)."""
    try:
        saved = checkpoint.loads(published.data)
        st = saved["step"]
    except Exception as exc:  # noqa: BLE001 - one bad step starts fresh, the others go on
        log.warning("not adopting incident step %s (%s: %s)", key, type(exc).__name__, exc)
        return False
    detector.steps[(st.journey, st.step)] = st
    merger._open[key] = dict(saved.get("open") or {})
    if saved.get("closed") is not None:
        merger._closed[key] = saved["closed"]
    else:
        merger._closed.pop(key, None)
    return True


def drop_step(detector: Any, merger: Any, key: str) -> None:
    """Forget a journey step whose journey-stats partition moved to another worker."""
    journey, _, step = key.partition("/")
    detector.steps.pop((journey, step), None)
    merger._open.pop(key, None)
    merger._closed.pop(key, None)


class Shared:
    """This worker's end of the checkpoints topic: ``publish`` one value, ``read`` them all.

    ``topic`` is the Faust topic (sends go through ``guard``: size-checked, a failure is a
    dead letter), ``bootstrap`` and ``client_kwargs`` are for the plain reader."""

    def __init__(self, topic: Any, guard: Any, bootstrap: str, client_kwargs: dict[str, Any]
                 ) -> None:
        self.topic = topic
        self.guard = guard
        self.bootstrap = bootstrap
        self.client_kwargs = client_kwargs

    async def publish(self, key: str, data: bytes, learned: int) -> bool:
        return bool(await self.guard.send(self.topic, key.encode(),
                                          envelope(data, learned, time.time()),
                                          stage="checkpoints", what=f"checkpoint {key}"))

    async def publish_model(self, name: str, model: Any) -> bool:
        """Publish ``model.checkpoint()``; False if it refused (``CheckpointError``)."""
        try:
            data = model.checkpoint()
        except CheckpointError as exc:
            log.error("not publishing %s (%s): the last published stays", name, exc)
            return False
        return await self.publish(model_key(name), data, examples(model))

    async def read(self) -> dict[str, Published]:
        return await read_published(self.bootstrap, self.topic.get_topic_name(),
                                    self.client_kwargs, idle=0.3)
