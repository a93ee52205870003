"""Fuzz bench: hostile inputs through the worker's pipeline, every input accounted for.

    python bench/fuzz.py                       # offline: 1,000,000 inputs, both cores
    python bench/fuzz.py --offline 5000 --jobs 1 --seed 3
    python bench/fuzz.py --offline 0 --live 50000          # a real worker, embedded broker
    python bench/fuzz.py --offline 0 --live 50000 --broker host:9092

Inputs come from ``tests/fuzzgen.py`` (the issue's classes of hostile input and mutations of
valid Segment, GA4, help-desk and canonical payloads), deterministic with ``--seed``.

Offline, each input goes through what the worker does with an ingest message, in the same
order and with the same error handling: ``normalize``; the canonical messages encoded and
decoded as on the topics; per session ``Engine.feed`` (a guarded call in the worker: an
exception there is a ``processing_error`` dead letter, counted apart as a bug), the state
encoded for the table and decoded back; per customer ``apply_customer``, triage and the churn
model; the outputs encoded, the Prometheus counters' increments checked; and on a cadence the
worker's timers (event time, model gauges, model checkpoints). An exception where the worker
has no guard "escapes": in the worker it ends the agent or the process. A record larger than
the producer's ``max_request_size`` escapes too (``MessageSizeTooLargeError`` in the worker).

An input is accounted for when normalize answers for it: at least one accepted event or dead
letter, and when some of its events were accepted, one accepted event or dead letter per item
of its batch. Other invariants are counted as violations: accepted events that do not decode
back or hold a non-finite number or a time ``datetime`` cannot represent, dead letters or
canonical messages out of proportion to the input (amplification), state that does not read
back equal, non-finite scores or model weights, non-finite counter increments.

Live (``--live N``): a real worker subprocess (``streams.worker_process``) on an embedded
broker or ``--broker``; half the inputs over HTTP to the collector, half produced to the ingest
topic; then the canonical and dead-letter topics are read until idle and every input is
matched: Kafka inputs by the ``fw-origin`` header and the dead letters' partition/offset, HTTP
inputs by their response counts and their events' ids on the topics; all against normalize run
offline on the same bytes. Prints worker exits and the worker's RSS before and after.

Exit status 1 when an exception escaped or an input is unaccounted for (or the worker died).
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import re
import shutil
import sys
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from fuzzgen import (  # noqa: E402
    FuzzGen,
    Input,
    accounted,
    event_problem,
    finite,
    items_of,
    model_weights_finite,
)

from detectors.customer import (  # noqa: E402
    apply_customer,
    decode_customer,
    encode_customer,
    session_summary,
)
from detectors.engine import Outputs  # noqa: E402
from detectors.events import Ticket, decode_batch, encode_batch  # noqa: E402
from detectors.session import as_read, decode_state, encode_state, is_replay  # noqa: E402
from models import checkpoint  # noqa: E402
from models.triage import TicketTriage  # noqa: E402
from streams import detection  # noqa: E402
from streams.deadletter import encode_dead_letter  # noqa: E402
from streams.normalize import normalize  # noqa: E402
from streams.settings import Settings  # noqa: E402

_dec = msgspec.json.Decoder()
_enc = msgspec.json.Encoder()

#: Inputs between two runs of the worker's timers (event time, model gauges): the worker runs
#: them every 1 s and 5 s, a few thousand messages apart at its rates.
TIMER_EVERY = 500
#: Inputs between two model checkpoints (the worker: every ``model_checkpoint_interval``).
CHECKPOINT_EVERY = 20_000
#: Slack per record in the amplification bounds: a record's own fields (reason, detail,
#: stage, ids) are not the input's copies.
RECORD_SLACK = 8192


@dataclass
class Figures:
    """What a run counted (shards add up with ``merge``)."""

    inputs: int = 0
    accepted: int = 0
    dead: Counter[str] = field(default_factory=Counter)
    #: Dead letters the worker's downstream guards would write (stage:reason).
    downstream: Counter[str] = field(default_factory=Counter)
    #: Exceptions those guards caught (a bug each, input kept): where:type.
    caught: Counter[str] = field(default_factory=Counter)
    #: Exceptions no guard catches: where:type. In the worker each ends an agent or the process.
    escaped: Counter[str] = field(default_factory=Counter)
    unaccounted: int = 0
    unaccounted_kinds: Counter[str] = field(default_factory=Counter)
    violations: Counter[str] = field(default_factory=Counter)
    #: The first input of each failure class: its kind and a prefix of its bytes.
    examples: dict[str, str] = field(default_factory=dict)
    kinds: Counter[str] = field(default_factory=Counter)
    input_bytes: int = 0
    seconds: float = 0.0

    def merge(self, other: Figures) -> None:
        for name in ("inputs", "accepted", "unaccounted", "input_bytes"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in ("dead", "downstream", "caught", "escaped", "unaccounted_kinds",
                     "violations", "kinds"):
            getattr(self, name).update(getattr(other, name))
        for k, v in other.examples.items():
            self.examples.setdefault(k, v)
        self.seconds = max(self.seconds, other.seconds)

    def example(self, key: str, inp: Input) -> None:
        # Numbers in messages (sizes, years) would make one class many.
        key = re.sub(r"\d+", "N", key)
        if key not in self.examples:
            self.examples[key] = f"{inp.kind} source={inp.source} {inp.raw[:160]!r}" + (
                f" ... ({len(inp.raw)} bytes)" if len(inp.raw) > 160 else "")


def _where(where: str, exc: BaseException) -> str:
    return f"{where}:{type(exc).__name__}"


class OfflineWorker:
    """The worker's pipeline over one partition, without Kafka (see the module)."""

    def __init__(self, settings: Settings, fig: Figures) -> None:
        self.settings = settings
        self.fig = fig
        self.processor = detection.processor(settings)
        self.alerting = detection.alerting(settings, self.processor)
        self.engine = detection.engine(settings, self.processor, self.alerting)
        self.sessions: dict[str, bytes] = {}
        self.customers: dict[str, bytes] = {}
        self.churn = detection.churn(settings)
        self.triage = TicketTriage(queues=settings.triage_queues,
                                   default_queue=settings.triage_default_queue) \
            if settings.ticket_triage else None
        models: dict[str, Any] = {"abandonment": detection.scorer(self.processor),
                                  "triage": self.triage, "churn": self.churn}
        self.models = {k: m for k, m in models.items() if m is not None}
        # What the producer accepts in one record (streams.app: producer_max_request_size).
        self.max_record = max(settings.max_payload_bytes * 2, 1_048_576)
        self.offset = 0
        self.now = time.time()

    # --- one input ---------------------------------------------------------------------------

    def feed(self, inp: Input) -> None:
        fig, settings = self.fig, self.settings
        fig.inputs += 1
        fig.kinds[inp.kind] += 1
        fig.input_bytes += len(inp.raw)
        self.offset += 1
        if self.offset % TIMER_EVERY == 0:
            self.now = time.time()
            self.timers()
        if self.offset % CHECKPOINT_EVERY == 0:
            self.checkpoints()
        try:
            norm = normalize(inp.raw, inp.source, max_bytes=settings.max_payload_bytes,
                             max_events=settings.max_events_per_message, now=self.now,
                             topic="fw.ingest", partition=0, offset=self.offset,
                             max_age=settings.max_event_age, max_lead=settings.max_event_lead)
        except Exception as exc:  # noqa: BLE001 - what the harness is here to count
            self._escape("normalize", exc, inp)
            fig.unaccounted += 1
            fig.unaccounted_kinds[inp.kind] += 1
            return
        acc = sum(map(len, norm.web.values())) + sum(map(len, norm.support.values()))
        fig.accepted += acc
        items = items_of(inp.raw, inp.source) if acc else 1
        if not accounted(acc, len(norm.dead), items):
            fig.unaccounted += 1
            fig.unaccounted_kinds[inp.kind] += 1
            fig.example("unaccounted", inp)
        self._dead_letters(norm.dead, inp)
        out = Outputs()
        canonical_bytes = 0
        origin = ("i0", self.offset)
        for sid, evs in norm.web.items():
            decoded = self._on_topic(evs, inp)
            canonical_bytes += decoded[1]
            if decoded[0] is not None:
                self._session(sid, decoded[0], origin, out, inp)
        for cid, evs in norm.support.items():
            decoded = self._on_topic(evs, inp)
            canonical_bytes += decoded[1]
            if decoded[0] is not None:
                self._customer(cid, decoded[0], origin, inp)
        if canonical_bytes > 4 * len(inp.raw) + RECORD_SLACK * max(acc, 1):
            self._violation("canonical_amplification", inp)
        self._store(out, inp)
        self._publish(out, inp)

    def _escape(self, where: str, exc: BaseException, inp: Input) -> None:
        key = _where(where, exc)
        self.fig.escaped[key] += 1
        self.fig.example(f"escaped {key}: {str(exc)[:120]}", inp)

    def _violation(self, key: str, inp: Input) -> None:
        self.fig.violations[key] += 1
        self.fig.example(f"violation {key}", inp)

    def _dead_letters(self, dead: Iterable[Any], inp: Input) -> None:
        total = n = 0
        for d in dead:
            self.fig.dead[d.reason] += 1
            if d.reason == "processing_error":  # normalize's own guard caught a bug
                self.fig.caught[f"normalize:{d.detail.split(':')[0][:40]}"] += 1
                self.fig.example(f"caught normalize: {d.detail[:120]}", inp)
            try:
                size = len(encode_dead_letter(d))
            except Exception as exc:  # noqa: BLE001
                self._escape("send_dead", exc, inp)
                continue
            if size > self.max_record:
                self._escape("send_dead", MessageSizeTooLarge(size), inp)
            total += size
            n += 1
        if n and total > 2 * len(inp.raw) + RECORD_SLACK * n:
            self._violation("dead_letter_amplification", inp)

    def _on_topic(self, evs: list[Any], inp: Input) -> tuple[list[Any] | None, int]:
        """The events as the next agent reads them off their topic (None: a dead letter)."""
        for e in evs:
            problem = event_problem(e)
            if problem is not None:
                self._violation(problem, inp)
                break
        try:
            data = encode_batch(evs)
        except Exception as exc:  # noqa: BLE001
            self._escape("publish", exc, inp)
            return None, 0
        if len(data) > self.max_record:
            self._escape("publish", MessageSizeTooLarge(len(data)), inp)
            return None, len(data)
        try:
            back = decode_batch(data)
        except (msgspec.DecodeError, UnicodeDecodeError, ValueError):
            # The consuming agent's guard: a dead letter (stage sessions/customers).
            self.fig.downstream["decode:invalid_field"] += 1
            self._violation("event_does_not_decode", inp)
            return None, len(data)
        if back != evs:
            self._violation("event_roundtrip_unequal", inp)
        return back, len(data)

    def _session(self, sid: str, evs: list[Any], origin: tuple[str, int], out: Outputs,
                 inp: Input) -> None:
        engine = self.engine
        if sid not in engine.sessions:
            raw = self.sessions.get(sid)
            if raw:
                try:
                    engine.adopt(decode_state(raw))
                except Exception as exc:  # noqa: BLE001
                    self._escape("sessions.adopt", exc, inp)
        try:
            engine.feed(evs, origin, out)
        except Exception as exc:  # noqa: BLE001 - the worker's guard: processing_error
            self.fig.downstream["sessions:processing_error"] += 1
            self.fig.caught[_where("sessions.feed", exc)] += 1
            self.fig.example(f"caught sessions.feed:{type(exc).__name__}: {str(exc)[:120]}",
                             inp)
        out.ticked.add(sid)  # written back like a touched session
        state = engine.sessions.get(sid)
        if state is not None and state.abandon_probability is not None and not (
                0.0 <= state.abandon_probability <= 1.0):
            self._violation("abandonment_score_nonfinite", inp)

    def _store(self, out: Outputs, inp: Input | None) -> None:
        """Write back every session a batch or a timer changed (``streams.sessions``: store)."""
        ended = {o["session_id"] for o in out.outcomes}
        for sid in out.ticked | ended:
            state = self.engine.sessions.get(sid)
            if state is None:
                self.sessions.pop(sid, None)
                continue
            where = "sessions.store" if inp is not None else "timer:event_time.store"
            try:
                data = encode_state(state)
            except Exception as exc:  # noqa: BLE001
                self._escape_any(where, exc, inp)
                continue
            if len(data) > self.max_record:
                self._escape_any(where, MessageSizeTooLarge(len(data)), inp)
            try:
                back = decode_state(data)
            except Exception as exc:  # noqa: BLE001 - read back after a restart: a crash
                self._escape_any("sessions.adopt(after restart)", exc, inp)
                continue
            if back != as_read(state):
                self._violation_any("state_roundtrip_unequal", inp)
            self.sessions[sid] = data

    def _escape_any(self, where: str, exc: BaseException, inp: Input | None) -> None:
        if inp is not None:
            self._escape(where, exc, inp)
        else:
            self.fig.escaped[_where(where, exc)] += 1
            self.fig.example(f"escaped {_where(where, exc)}: {str(exc)[:120]}", TIMER)

    def _violation_any(self, key: str, inp: Input | None) -> None:
        if inp is not None:
            self._violation(key, inp)
        else:
            self.fig.violations[key] += 1

    def _publish(self, out: Outputs, inp: Input | None) -> None:
        """``streams.sessions``: publish_outputs: every record encoded, counters incremented."""
        where = "publish_outputs" if inp is not None else "timer:event_time.publish"
        try:
            for doc in (*out.signals, *out.alerts, *out.chats, *out.experiments, *out.outcomes):
                data = msgspec.json.encode(doc)
                if len(data) > self.max_record:
                    raise MessageSizeTooLarge(len(data))
            for doc in out.alerts:
                _counter(doc["data"]["revenue_at_risk"])
            for o in out.outcomes:
                if o["converted"]:
                    _counter(o["revenue"])
        except NonFiniteCounter:
            self._violation_any("metric_nonfinite", inp)
        except Exception as exc:  # noqa: BLE001
            self._escape_any(where, exc, inp)
        for o in out.outcomes:  # known customers' ended sessions reach their state
            summary = session_summary(o)
            if summary is not None:
                back = self._on_topic([summary], inp or TIMER)[0]
                if back is not None:
                    self._customer(summary.customer_id or "", back, None, inp or TIMER)

    def _customer(self, cid: str, evs: list[Any], origin: tuple[str, int] | None,
                  inp: Input) -> None:
        raw = self.customers.get(cid)
        try:
            state = decode_customer(raw) if raw else None
        except Exception as exc:  # noqa: BLE001 - fold_batch loads outside its guard
            self._escape("customers.load", exc, inp)
            return
        try:  # streams.customers: apply_support, under fold_batch's guard
            if state is None or not is_replay(state.positions, origin):
                if self.triage is not None:
                    for e in evs:
                        if type(e) is Ticket:
                            record = self.triage.on_ticket(e)
                            if record is not None:
                                msgspec.json.encode(record)
                state = apply_customer(state, evs, origin)
                if self.churn is not None:
                    doc = self.churn.update(state)
                    if state.churn_risk is not None and not 0.0 <= state.churn_risk <= 1.0:
                        self._violation("churn_score_nonfinite", inp)
                    if doc is not None:
                        msgspec.json.encode(doc)
        except Exception as exc:  # noqa: BLE001
            self.fig.downstream["customers:processing_error"] += 1
            self.fig.caught[_where("customers.apply", exc)] += 1
            self.fig.example(f"caught customers.apply:{type(exc).__name__}: {str(exc)[:120]}",
                             inp)
            return
        try:
            data = encode_customer(state)
        except Exception as exc:  # noqa: BLE001
            self._escape("customers.store", exc, inp)
            return
        if len(data) > self.max_record:
            self._escape("customers.store", MessageSizeTooLarge(len(data)), inp)
        try:
            back = decode_customer(data)
        except Exception as exc:  # noqa: BLE001 - the next message for this customer
            self._escape("customers.load", exc, inp)
            self.customers[cid] = data
            return
        if back != state:
            self._violation("customer_roundtrip_unequal", inp)
        self.customers[cid] = data

    # --- timers ------------------------------------------------------------------------------

    def timers(self, until: float | None = None) -> None:
        """``event_time`` (deadlines and expiries up to the watermark) and ``gauge_models``."""
        out = Outputs()
        try:
            self.engine.advance(self.engine.watermark if until is None else until, out)
        except Exception as exc:  # noqa: BLE001
            self._escape_any("timer:event_time", exc, None)
        self._store(out, None)
        self._publish(out, None)
        for name, model in self.models.items():
            try:
                model.quality()
            except Exception as exc:  # noqa: BLE001
                self._escape_any(f"timer:gauge_models.{name}", exc, None)
            inner = getattr(model, "model", None)
            if inner is not None and hasattr(inner, "steps") and not model_weights_finite(inner):
                self._violation_any(f"model_nonfinite_weight:{name}", None)

    def checkpoints(self) -> None:
        for name, model in self.models.items():
            try:
                checkpoint.loads(model.checkpoint())
            except Exception as exc:  # noqa: BLE001
                self._escape_any(f"timer:checkpoint_models.{name}", exc, None)

    def finish(self) -> None:
        """Event time runs on past every session's gap: every session expires."""
        watermark = self.engine.watermark
        if math.isfinite(watermark):
            self.timers(watermark + self.settings.session_gap + 3600)
        else:
            self.timers()
        self.checkpoints()


#: Stands for "a timer" where a failure names the input it came from.
TIMER = Input("timer", b"", None)


class MessageSizeTooLarge(Exception):
    """What the producer raises for a record over ``max_request_size``."""

    def __init__(self, size: int) -> None:
        super().__init__(f"a record of {size} bytes is over the producer's max request size")


class NonFiniteCounter(Exception):
    pass


def _counter(amount: Any) -> None:
    """Prometheus' ``Counter.inc``: it raises on a negative amount; a non-finite one sticks
    (+Inf for the life of the process)."""
    if amount < 0:
        raise ValueError("Counters can only be incremented by non-negative amounts.")
    if not finite(amount):
        raise NonFiniteCounter()


# --- offline runs ------------------------------------------------------------------------------


def offline_shard(args: tuple[int, int, int, bool, int]) -> Figures:
    """``n`` inputs of seed ``seed``/shard ``shard`` through one ``OfflineWorker``."""
    seed, shard, n, exemplars, huge = args
    fig = Figures()
    gen = FuzzGen(seed=seed * 1000 + shard, huge=huge)
    worker = OfflineWorker(Settings(), fig)
    t0 = time.perf_counter()
    for inp in gen.inputs(n, with_exemplars=exemplars):
        worker.feed(inp)
    worker.finish()
    fig.seconds = time.perf_counter() - t0
    return fig


def run_offline(n: int, seed: int = 0, jobs: int = 2, huge: int = 400_000) -> Figures:
    """``n`` inputs split over ``jobs`` processes (shard 0 starts with the issue's
    exemplars)."""
    jobs = max(1, min(jobs, n))
    shards = [(seed, i, n // jobs + (1 if i < n % jobs else 0), i == 0, huge)
              for i in range(jobs)]
    t0 = time.perf_counter()
    if jobs == 1:
        figs = [offline_shard(shards[0])]
    else:
        with multiprocessing.get_context("spawn").Pool(jobs) as pool:
            figs = pool.map(offline_shard, shards)
    total = Figures()
    for f in figs:
        total.merge(f)
    total.seconds = time.perf_counter() - t0
    return total


def print_offline(fig: Figures, out: Any = sys.stdout) -> None:
    p = lambda *a: print(*a, file=out)  # noqa: E731
    rate = fig.inputs / fig.seconds if fig.seconds else 0.0
    p(f"offline: inputs {fig.inputs:,} ({fig.input_bytes / 1e6:,.0f} MB) in "
      f"{fig.seconds:,.1f} s = {rate:,.0f} inputs/s")
    p(f"  accepted events {fig.accepted:,}; dead letters {sum(fig.dead.values()):,}")
    for reason, n in sorted(fig.dead.items()):
        p(f"    {reason:18} {n:,}")
    if fig.downstream:
        p(f"  downstream dead letters: {dict(sorted(fig.downstream.items()))}")
    p(f"  exceptions escaping: {sum(fig.escaped.values()):,} (must be 0)")
    for k, n in fig.escaped.most_common():
        p(f"    {k}: {n:,}")
    p(f"  caught by the agents' guards (bugs): {sum(fig.caught.values()):,}")
    for k, n in fig.caught.most_common():
        p(f"    {k}: {n:,}")
    p(f"  inputs unaccounted for: {fig.unaccounted:,} (must be 0)"
      + (f" {dict(fig.unaccounted_kinds)}" if fig.unaccounted else ""))
    p(f"  invariant violations: {sum(fig.violations.values()):,}")
    for k, n in fig.violations.most_common():
        p(f"    {k}: {n:,}")
    if fig.examples:
        p("  first input of each failure:")
        for k, v in sorted(fig.examples.items()):
            p(f"    {k}\n      {v}")
    p(f"  input classes: {dict(fig.kinds.most_common())}")


# --- live runs ---------------------------------------------------------------------------------

#: Seconds without a new record on the read topics that count as idle (the worker has done
#: what it will do). tansu under-reports end offsets, so reading stops at idle, not at them.
IDLE_SECONDS = 20.0
#: Event-time gap of the live worker's sessions: short, so state expires and RSS can come back.
LIVE_SESSION_GAP = 60.0
#: Valid inputs sent before the start RSS is read: imports, models, caches, the allocator's
#: arenas and the sessions and customers a steady stream keeps must have grown first, or the
#: "after" reading measures that ramp rather than what hostile input leaves behind (measured:
#: 50,000 valid inputs after a 2,000 warm-up still grew RSS by 14%).
WARMUP = 20_000


@dataclass
class Live:
    inputs: int = 0
    http: int = 0
    kafka: int = 0
    accounted: int = 0
    unaccounted: int = 0
    unaccounted_kinds: Counter[str] = field(default_factory=Counter)
    #: Inputs accounted for whose counts differ from normalize run offline on the same bytes.
    mismatched: int = 0
    http_status: Counter[int] = field(default_factory=Counter)
    accepted: int = 0
    dead: int = 0
    downstream: Counter[str] = field(default_factory=Counter)
    #: Dead letters of the collector read off the topic, and those its answers announced.
    collector_dead: int = 0
    http_dead: int = 0
    worker_exits: int = 0
    exit_detail: str = ""
    warmup: int = 0
    rss_start_kb: int = 0
    rss_end_kb: int = 0
    #: What the worker holds (its gauges) when each RSS is read.
    state_start: dict[str, float] = field(default_factory=dict)
    state_end: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    examples: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.unaccounted == 0 and self.worker_exits == 0


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


#: Gauges of what the worker keeps, printed beside its RSS.
_STATE_GAUGES = ("frictionwatch_sessions_active", "frictionwatch_customers_known")


def _state_gauges(worker: Any) -> dict[str, float]:
    try:
        text = worker.metrics_text()
    except OSError:
        return {}
    return {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
            if line.split(" ", 1)[0] in _STATE_GAUGES}


def _post(url: str, body: bytes) -> tuple[int, dict[str, Any]]:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:  # noqa: S310 - loopback only
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    except OSError as e:  # the worker is gone or refused: no answer at all
        return 0, {"error": repr(e)}
    try:
        body_out = _dec.decode(raw or b"{}")
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        body_out = {"raw": raw[:200].decode(errors="replace")}
    return status, body_out if type(body_out) is dict else {"raw": body_out}


def _endpoint(source: str | None) -> tuple[str, str | None]:
    """The collector path for an input and the source that path implies."""
    from streams.collector import ENDPOINTS

    path = f"/collect/{source}" if source in ("segment", "ga4", "support") else "/collect"
    return path, ENDPOINTS[path]


def run_live(n: int, seed: int, broker: str | None, huge: int, exemplars: bool = True,
             only: set[str] | None = None, warmup: int = WARMUP) -> Live:
    """``n`` inputs through a worker subprocess; see the module."""
    import contextlib
    import tempfile
    import uuid
    from concurrent.futures import ThreadPoolExecutor

    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    from streams.broker import EmbeddedBroker, free_port
    from streams.bundle import decode_bundle, parse_origin
    from streams.deadletter import decode_dead_letter
    from streams.topics import SOURCE_HEADER, topic_name
    from streams.worker_process import WorkerError, WorkerProcess

    live = Live(warmup=warmup)
    tag = uuid.uuid4().hex[:8]
    tmp = Path(tempfile.mkdtemp(prefix="fw-fuzz-"))
    settings = Settings(topic_prefix=f"fz{tag}.", app_id=f"fwfuzz-{tag}", web_host="127.0.0.1",
                        web_port=free_port(), data_dir=tmp / "state", partitions=2,
                        broker_session_timeout=6.0, session_gap=LIVE_SESSION_GAP,
                        # One client sends everything: the per-client limit would refuse most.
                        rate_limit=0)
    limit = settings.max_payload_bytes
    names = {k: topic_name(k, settings.topic_prefix)
             for k in ("ingest", "web_events", "support_events", "dead_letters")}
    gen = FuzzGen(seed=seed, huge=huge, only=only)
    warm = FuzzGen(seed=seed + 1, only={"valid"})
    inputs = [*warm.inputs(warmup), *gen.inputs(n, with_exemplars=exemplars)]
    # What normalize says offline: (accepted events, dead letters, accepted ids), per input.
    expected: list[tuple[int, int, list[str]]] = []
    via_http = [i % 2 == 0 for i in range(len(inputs))]
    for inp, http in zip(inputs, via_http, strict=True):
        source = _endpoint(inp.source)[1] if http else inp.source
        try:
            norm = normalize(inp.raw, source, max_bytes=limit,
                             max_events=settings.max_events_per_message, now=time.time(),
                             max_age=settings.max_event_age, max_lead=settings.max_event_lead)
            ids = [e.id for evs in (*norm.web.values(), *norm.support.values()) for e in evs]
            expected.append((len(ids), len(norm.dead), ids))
        except Exception:  # noqa: BLE001 - counted when the worker's answer is compared
            expected.append((-1, -1, []))

    stack = contextlib.ExitStack()
    with stack:
        if broker is None:
            broker = stack.enter_context(EmbeddedBroker()).bootstrap_servers
        worker = WorkerProcess(settings, broker, tmp / "worker.log")
        try:
            worker.start(timeout=180)
        except WorkerError as exc:
            live.worker_exits = 1
            live.exit_detail = str(exc)[-2000:]
            return live
        stack.callback(worker.stop)
        assert worker.proc is not None
        pid = worker.proc.pid
        producer = KafkaProducer(bootstrap_servers=broker, linger_ms=5,
                                 max_request_size=4 * 1024 * 1024)
        stack.callback(producer.close)
        consumer = KafkaConsumer(bootstrap_servers=broker, auto_offset_reset="earliest",
                                 enable_auto_commit=False, fetch_max_bytes=64 * 1024 * 1024,
                                 max_partition_fetch_bytes=64 * 1024 * 1024)
        stack.callback(consumer.close)
        responses: dict[int, tuple[int, dict[str, Any]]] = {}
        origins: dict[tuple[int, int], int] = {}
        observed_acc: Counter[tuple[int, int]] = Counter()
        observed_dead: Counter[tuple[int, int]] = Counter()
        observed_ids: Counter[str] = Counter()
        collector_dead = 0
        records = 0

        def send(lo: int, hi: int) -> None:
            """Inputs [lo, hi): the HTTP ones from a pool of clients, the rest produced."""
            with ThreadPoolExecutor(8) as pool:
                futures = {}
                for i in range(lo, hi):
                    inp = inputs[i]
                    if via_http[i]:
                        path = _endpoint(inp.source)[0]
                        futures[i] = pool.submit(_post, worker.url + path, inp.raw)
                    else:
                        headers = [(SOURCE_HEADER, inp.source.encode())] if inp.source else []
                        futures[i] = producer.send(names["ingest"], value=inp.raw,
                                                   headers=headers)
                producer.flush()
                for i, fut in futures.items():
                    if via_http[i]:
                        responses[i] = fut.result()
                    else:
                        try:
                            meta = fut.get(timeout=60)  # type: ignore[attr-defined]
                            origins[(meta.partition, meta.offset)] = i
                        except Exception as exc:  # noqa: BLE001 - not on Kafka: unaccounted
                            live.examples.setdefault(f"produce failed: {exc!r}"[:150],
                                                     inputs[i].kind)

        def read_to_idle() -> None:
            nonlocal collector_dead, records
            if not consumer.assignment():
                tps = []
                deadline = time.monotonic() + 60
                for key in ("web_events", "support_events", "dead_letters"):
                    parts = None
                    while parts is None and time.monotonic() < deadline:
                        parts = consumer.partitions_for_topic(names[key])
                        if parts is None:
                            consumer.topics()  # refresh metadata
                            time.sleep(0.5)
                    tps += [TopicPartition(names[key], p) for p in parts or ()]
                consumer.assign(tps)
                consumer.seek_to_beginning(*tps)
            last = time.monotonic()
            while time.monotonic() - last < IDLE_SECONDS:
                for batch in consumer.poll(timeout_ms=500).values():
                    last = time.monotonic()
                    for r in batch:
                        records += 1
                        if r.topic == names["dead_letters"]:
                            d = decode_dead_letter(r.value)
                            if d.stage == "collector":
                                collector_dead += 1
                            elif d.stage == "normalize" and d.topic == names["ingest"]:
                                observed_dead[(d.partition or 0, d.offset or 0)] += 1
                            else:
                                live.downstream[f"{d.stage}:{d.reason}"] += 1
                            continue
                        for entry in decode_bundle(r.value, r.key):
                            origin = parse_origin(entry.origin)
                            if origin:
                                p = int(origin[0].lstrip("i"))
                                observed_acc[(p, origin[1])] += len(entry.events)
                            else:
                                # The collector's events and the worker's own session
                                # summaries: extra ids match no input and are harmless
                                # (canonical inputs may hold summaries too, and must be
                                # found).
                                observed_ids.update(e.id for e in entry.events)
                if worker.proc is not None and worker.proc.poll() is not None:
                    break

        t0 = time.perf_counter()
        send(0, warmup)
        read_to_idle()
        live.rss_start_kb = _rss_kb(pid)
        live.state_start = _state_gauges(worker)
        chunk = 2000  # bounded in flight: the worker's pace, not the client's
        for lo in range(warmup, len(inputs), chunk):
            if worker.proc.poll() is not None:
                break
            send(lo, min(lo + chunk, len(inputs)))
        read_to_idle()
        time.sleep(5.0)  # the worker's 1 s and 5 s timers run on what came last
        read_to_idle()
        live.rss_end_kb = _rss_kb(pid)
        live.state_end = _state_gauges(worker)
        live.seconds = time.perf_counter() - t0
        if worker.proc.poll() is not None:
            live.worker_exits = 1
            live.exit_detail = f"exit status {worker.proc.returncode}; log {worker.log_path}\n" \
                + _crash_lines(worker.log_path)

        # --- accounting -------------------------------------------------------------------
        by_input: dict[int, tuple[int, int]] = {i: (observed_acc[po], observed_dead[po])
                                                for po, i in origins.items()}
        for i, inp in enumerate(inputs):
            exp_acc, exp_dead, ids = expected[i]
            if via_http[i]:
                live.http += 1
                status, body = responses.get(i, (0, {}))
                live.http_status[status] += 1
                acc = int(body.get("accepted", 0) or 0)
                rejected = body.get("rejected")
                dead = len(rejected) if type(rejected) is list else 0
                if status == 413:
                    dead = max(dead, 1)
                found = all(observed_ids[x] > 0 for x in ids)
                for x in ids:
                    observed_ids[x] -= 1
                ok = status in (200, 400, 413) and acc + dead >= 1 and found
                live.http_dead += dead
            else:
                live.kafka += 1
                acc, dead = by_input.get(i, (0, 0))
                ok = acc + dead >= 1
            live.inputs += 1
            live.accepted += acc
            live.dead += dead
            if ok:
                live.accounted += 1
                if (acc, dead) != (exp_acc, exp_dead):
                    live.mismatched += 1
                    live.examples.setdefault(
                        f"mismatch {inp.kind}: got {(acc, dead)}, offline {(exp_acc, exp_dead)}",
                        f"{inp.raw[:120]!r}")
            else:
                live.unaccounted += 1
                live.unaccounted_kinds[inp.kind] += 1
                live.examples.setdefault(
                    f"unaccounted {inp.kind} via {'http' if via_http[i] else 'kafka'}",
                    f"{inp.raw[:120]!r}")
        live.collector_dead = collector_dead
        live.examples.setdefault("records read", str(records))
    if not live.worker_exits:  # keep the worker's log only when it is evidence
        shutil.rmtree(tmp, ignore_errors=True)
    return live


def _crash_lines(log: Path, limit: int = 12) -> str:
    """The log's lines that name an error (the first ``limit``), without asyncio's noise at
    shutdown."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    found = [line[:300] for line in lines
             if ("Error" in line or "Crashed" in line or "crashed" in line)
             and "Event loop is closed" not in line]
    return "\n".join(found[:limit])


def print_live(live: Live, out: Any = sys.stdout) -> None:
    p = lambda *a: print(*a, file=out)  # noqa: E731
    p(f"live: inputs {live.inputs:,} ({live.http:,} over HTTP, {live.kafka:,} on the ingest "
      f"topic; {live.warmup:,} of them valid warm-up) in {live.seconds:,.1f} s")
    p(f"  accounted {live.accounted:,}; unaccounted {live.unaccounted:,} (must be 0)"
      + (f" {dict(live.unaccounted_kinds)}" if live.unaccounted else ""))
    p(f"  differing from normalize offline: {live.mismatched:,}")
    p(f"  accepted events {live.accepted:,}; dead letters {live.dead:,}; downstream dead "
      f"letters {dict(live.downstream)}")
    p(f"  HTTP statuses: {dict(sorted(live.http_status.items()))}; collector dead letters "
      f"on the topic {live.collector_dead:,}, announced in the answers {live.http_dead:,}")
    p(f"  worker exits: {live.worker_exits} (must be 0)")
    if live.rss_start_kb:
        ratio = live.rss_end_kb / live.rss_start_kb
        p(f"  worker RSS: {live.rss_start_kb / 1024:,.0f} MB after warm-up, "
          f"{live.rss_end_kb / 1024:,.0f} MB after the run: ratio {ratio:.2f} "
          f"(target within 10%); held then: {live.state_start} and {live.state_end}")
    for k, v in live.examples.items():
        p(f"  {k}: {v}")
    if live.exit_detail:
        p("  worker log tail:\n" + live.exit_detail)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--offline", type=int, default=1_000_000, metavar="N",
                    help="inputs through the offline pipeline (default 1,000,000; 0: none)")
    ap.add_argument("--live", type=int, default=0, metavar="N",
                    help="inputs through a live worker, half HTTP, half Kafka (default 0)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2, help="offline processes (default 2)")
    ap.add_argument("--broker", default=None,
                    help="Kafka bootstrap servers for --live (default: an embedded broker)")
    ap.add_argument("--huge", type=int, default=400_000,
                    help="largest huge string (default 400,000, the issue's size)")
    ap.add_argument("--no-exemplars", action="store_true",
                    help="--live: leave out the issue's reproducers (each may end the worker)")
    ap.add_argument("--warmup", type=int, default=WARMUP, metavar="N",
                    help=f"--live: valid inputs before the start RSS is read (default {WARMUP:,})")
    ap.add_argument("--only", default=None, metavar="CLASSES",
                    help="--live: only these input classes, comma-separated (e.g. valid,mutate)")
    args = ap.parse_args(argv)
    failed = False
    if args.offline:
        fig = run_offline(args.offline, args.seed, args.jobs, args.huge)
        print_offline(fig)
        failed |= bool(fig.escaped) or fig.unaccounted > 0
    if args.live:
        only = set(args.only.split(",")) if args.only else None
        live = run_live(args.live, args.seed, args.broker, args.huge,
                        exemplars=not args.no_exemplars, only=only, warmup=args.warmup)
        print_live(live)
        failed |= not live.ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
