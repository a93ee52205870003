"""Journeys and incidents in the worker.

The sessions side: ``JourneyStats.flush`` runs on the worker's event-time timer. It hands over
the funnel's windows that closed (``detectors.funnel``, ``incident_lateness`` seconds behind
the furthest partition's event time), adds them to the journey metrics in Prometheus and sends
them to the journey-stats topic, keyed ``journey/step``.

The incidents agent reads that topic. Each step's records (from every worker, and late parts)
are added up per window (``WindowMerger``) and judged by the ``IncidentDetector``; its
documents go to the alerts topic, keyed ``journey/step``, and into
``frictionwatch_incident_open`` and ``frictionwatch_incident_revenue_lost_per_hour``; an
element-level incident (``element`` set) into ``frictionwatch_element_incidents_open`` and
``_opened_total`` instead. The sessions side counts each window's element hits in
``frictionwatch_element_friction_sessions_total`` with bounded element labels
(``detectors.elements.LabelSlots``). Element baselines are checkpointed with the steps' but do
not move with a step's partition on a rebalance (``share_steps``): the new owner learns them
again from its prior. The
topic is keyed by step, so one worker judges each step and an outage opens one incident
however many workers share the traffic. What the detector learned (baselines, open
incidents) is checkpointed with the models, and each step's part is published on the
checkpoints topic, so the step's next owner after a rebalance starts from it (``share_steps``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import faust
import msgspec

from detectors.elements import LabelSlots, split_key
from detectors.funnel import NO_JOURNEY, Funnel, StepBucket
from detectors.incidents import IncidentDetector, WindowMerger
from models import checkpoint
from streams import checkpoints, detection
from streams.deadletter import decode_reason
from streams.guard import Guard, inc_finite, set_finite
from streams.journeys import load_journeys
from streams.metrics import Metrics
from streams.settings import Settings
from streams.topics import partition_for

__all__ = ["JourneyStats", "register_incidents"]

log = logging.getLogger(__name__)

_decode_bucket = msgspec.json.Decoder(StepBucket).decode


class JourneyStats:
    """The funnel's closed windows to Prometheus and the journey-stats topic."""

    def __init__(self, funnel: Funnel, topic: Any, metrics: Metrics, lateness: float,
                 guard: Guard | None = None) -> None:
        self.funnel = funnel
        self.topic = topic
        self.metrics = metrics
        self.lateness = lateness
        self.guard = guard
        #: Which elements get a label value of their own, per step: its 10 most hit, at most
        #: 20 ever (a dashboard's table shows ten; the label set stays bounded).
        self.element_labels = LabelSlots(top=10, slots=20)

    async def flush(self, watermark: float) -> int:
        """Send every window that ended ``lateness`` before ``watermark``; how many."""
        buckets = self.funnel.close(watermark - self.lateness)
        for b in buckets:
            self.count(b)
            value = msgspec.json.encode(b)
            if self.guard is not None:  # size-checked: a dead letter, never a crash
                await self.guard.send(self.topic, b.key.encode(), value, stage="sessions",
                                      what="journey stats")
            else:
                await self.topic.send(key=b.key.encode(), value=value)
        return len(buckets)

    def count(self, b: StepBucket) -> None:
        m = self.metrics
        journey, step = b.journey, b.step
        counters = {"entered": m.step_entered, "passed": m.step_passed}
        with_device = dict.fromkeys(counters, 0)
        for key, n in b.segments.items():
            what, _, segment = key.partition("|")
            dim, _, device = segment.partition("=")
            if what in counters and dim == "device":
                counters[what].labels(journey, step, device).inc(n)
                with_device[what] += n
        for what, total in (("entered", b.entered), ("passed", b.passed)):
            if total > with_device[what]:  # sessions whose device no event named
                counters[what].labels(journey, step, "unknown").inc(total - with_device[what])
        for kind, n in b.signals.items():
            m.step_signals.labels(journey, step, kind).inc(n)
        for key, n in b.elements.items():
            kind, element = split_key(key)
            label = self.element_labels.label(b.key, element, kind, n)
            m.element_friction.labels(journey, step, kind, label).inc(n)
        if b.orders:
            # Finite amounts only: two orders of 1e308 sum to inf, and a counter that took
            # +Inf reads +Inf for the life of the process.
            inc_finite(m.orders.labels(journey), b.orders)
            inc_finite(m.revenue.labels(journey), b.revenue)


class _Checkpointed:
    """The detector and merger as a checkpointable model (``streams.checkpoints``)."""

    def __init__(self, detector: IncidentDetector, merger: WindowMerger) -> None:
        self.detector = detector
        self.merger = merger

    def checkpoint(self) -> bytes:
        return checkpoint.dumps({"steps": self.detector.steps, "merger": self.merger,
                                 "elements": self.detector.elements})

    def restore(self, data: bytes) -> None:
        saved = checkpoint.loads(data)
        # Checkpoints from before element incidents have no "elements".
        if not isinstance(saved, dict) or not {"steps", "merger"} <= set(saved) <= \
                {"steps", "merger", "elements"}:
            raise checkpoint.CheckpointError("not an incidents checkpoint")
        self.detector.steps = saved["steps"]
        self.detector.elements = saved.get("elements", {})
        self.merger = saved["merger"]


def register_incidents(app: faust.App, settings: Settings, stats_topic: Any, alert_topic: Any,
                       guard: Guard, metrics: Metrics,
                       shared: checkpoints.Shared | None = None) -> IncidentDetector:
    """The incidents agent, its checkpoints, and the gauges of open incidents. ``guard``
    sends (size-checked) and dead letters, and runs the checkpoint timer. With ``shared``
    (the checkpoints topic), each step's baselines follow its journey-stats partition from
    worker to worker (``share_steps``)."""
    detector = IncidentDetector(detection.incident_config(settings))
    state = _Checkpointed(detector, WindowMerger())
    path: Path = settings.data_dir / "models" / "incidents.ckpt"
    checkpoints.restore(state, path)
    for (journey, step), st in detector.steps.items():
        metrics.incident_open.labels(journey, step).set(1 if st.incident else 0)
    # Every step's element-incident series from the start, at 0: an element incident is rare,
    # and a series that appears only with one cannot tell "none" from "not watched".
    steps = {(j.name, name) for j in load_journeys(settings.journeys_file).values()
             for name in j.step_names} | set(detector.elements)
    for journey, step in steps:
        metrics.element_incidents_opened.labels(journey, step)
        metrics.element_incidents_open.labels(journey, step).set(
            detector.open_elements(journey, step))

    @app.agent(stats_topic, name="incidents")
    async def incidents_agent(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            try:
                rec = _decode_bucket(event.value or b"")
            except msgspec.DecodeError as exc:
                await guard.dead([guard.letter(decode_reason(exc), str(exc), "incidents",
                                               event.value, event)])
                continue
            except Exception as exc:  # noqa: BLE001 - e.g. RecursionError: this record only
                await guard.dead([guard.letter("processing_error", f"{type(exc).__name__}: "
                                               f"{exc}", "incidents", event.value, event)])
                continue
            if rec.journey == NO_JOURNEY:
                continue
            try:
                await judge(rec, event)
            except Exception as exc:  # noqa: BLE001 - one record must not end the agent
                guard.errors.exception("agent:incidents", "a journey-stats record failed")
                await guard.dead([guard.letter("processing_error", f"{type(exc).__name__}: "
                                               f"{exc}", "incidents", event.value, event)])

    async def judge(rec: StepBucket, event: Any) -> None:
        late = state.merger.late
        for done in state.merger.add(rec):
            for doc in detector.observe(done):
                await publish(doc, event)
            lost = detector.revenue_lost_per_hour(done.journey, done.step)
            if lost is not None:  # the open incident's estimate, window by window
                set_finite(metrics.incident_revenue_lost.labels(done.journey, done.step), lost)
        inc_finite(metrics.incident_windows_late, state.merger.late - late)

    async def publish(doc: dict[str, Any], event: Any) -> None:
        data = doc["data"]
        journey, step = data["journey"], data["step"]
        if data.get("element") is not None:  # an element's: the step's gauges are not its
            if data["status"] == "opened":
                metrics.element_incidents_opened.labels(journey, step).inc()
            metrics.element_incidents_open.labels(journey, step).set(
                detector.open_elements(journey, step))
            await guard.send(alert_topic, doc["subject"].encode(), msgspec.json.encode(doc),
                             stage="incidents", what="incident alert", at=event)
            log.info("element incident %s %s at %s/%s: %s", data["incident_id"],
                     data["status"], journey, step, data["summary"])
            return
        if data["status"] == "opened":
            metrics.incidents_opened.labels(journey, step).inc()
        is_open = data["status"] != "resolved"
        metrics.incident_open.labels(journey, step).set(1 if is_open else 0)
        set_finite(metrics.incident_revenue_lost.labels(journey, step),
                   data["revenue_lost_per_hour"] if is_open else 0.0)
        await guard.send(alert_topic, doc["subject"].encode(), msgspec.json.encode(doc),
                         stage="incidents", what="incident alert", at=event)
        log.info("incident %s %s at %s/%s: %s", data["incident_id"], data["status"], journey,
                 step, data["summary"])

    publish_steps = share_steps(app, state, stats_topic.get_topic_name(), shared) \
        if shared is not None else None

    @guard.timer(app, settings.model_checkpoint_interval)
    async def checkpoint_incidents() -> None:
        checkpoints.save(state, path)
        if publish_steps is not None:
            await publish_steps()

    return detector


# --- shared across workers: a step's baselines move with its journey-stats partition ---------

def share_steps(app: faust.App, state: _Checkpointed, topic: str, shared: checkpoints.Shared
                ) -> Callable[[], Awaitable[None]]:
    """Each journey step is judged by the worker that owns its journey-stats partition. On
    every rebalance (once recovered, before the streams resume) the steps of partitions that
    moved away are forgotten, and those of partitions that came in are taken from the
    checkpoints topic, where their previous owner published them; returns the function that
    publishes the owned steps (run on the checkpoint timer)."""
    owned: set[int] = set()

    def partition_of(key: str) -> int:
        n = app.consumer.topic_partitions(topic) if app.consumer else None
        # The producer's default partitioner: where the step's records are sent.
        return partition_for(key.encode(), n or app.conf.topic_partitions)

    def held() -> set[str]:
        return {f"{j}/{s}" for j, s in state.detector.steps} | set(state.merger._open)

    async def on_recovered(sender: Any, *args: Any, **kw: Any) -> None:
        nonlocal owned
        now = {tp.partition for tp in app.consumer.assignment() if tp.topic == topic}
        gone, came = owned - now, now - owned
        owned = now
        for key in held():
            if partition_of(key) in gone:
                checkpoints.drop_step(state.detector, state.merger, key)
        if not came:
            return
        prefix = checkpoints.step_key("")
        published = await shared.read()
        n = 0
        for key, value in published.items():
            step = key[len(prefix):]
            if key.startswith(prefix) and partition_of(step) in came:
                n += checkpoints.adopt_step(state.detector, state.merger, step, value)
        if n:
            log.info("took over the incident baselines of %d journey steps", n)

    # Faust's stubs want a keyword-only ``signal`` argument; its senders pass it so.
    app.on_rebalance_complete.connect(cast(Any, on_recovered))

    async def publish() -> None:
        for key in held():
            if partition_of(key) in owned:
                saved = checkpoints.step_checkpoint(state.detector, state.merger, key)
                if saved is not None:
                    await shared.publish(checkpoints.step_key(key), *saved)

    return publish
