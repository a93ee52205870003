"""Journey incidents: a step that breaks for many people at once (a payment provider failing, a
form broken by a release), found online from the funnel's counts (``detectors.funnel``, 15-second
windows by default).

For each journey step, ``IncidentDetector`` watches one rate per *kind*: each friction type
(signals per session entering the step) and the step's conversion (sessions getting past it
per session entering). Rates, not counts, so traffic that swells and ebbs over the day does not
look like an incident. Each kind's baseline is learned online (exponentially weighted counts
with a half-life of ``half_life_minutes``, plus a small prior, so a kind never seen has a low
rate rather than none); it learns only from windows outside an incident, so an outage is never
taken for the new normal (unless it lasts ``max_open_minutes``).

The test is a one-sided CUSUM of the Poisson log-likelihood ratio (Page 1954; Lucas 1985 for
counts): each window adds ``log P(k | rate x ratio) - log P(k | rate)`` for friction, or with
``conversion_drop`` times the rate for conversion, and the sum, floored at 0, opens an
incident when it reaches ``open_at`` nats and the excess over the baseline is at least
``min_count`` events. Under normal traffic each window adds a negative amount on average, so a
false alarm needs a long run of bad luck (``open_at`` = 12 nats: the mean run between false
alarms of one kind is at least e^12, about 160,000, windows). An incident is per step,
whatever kinds it involves (a payment outage raises declines and lowers conversion at once:
one incident). It is updated when another kind joins and every ``update_every`` minutes, and
resolves once its latest ``resolve_after`` minutes with traffic, taken together, look like
the baseline for every kind involved.

Elements too: each step's windows count the sessions meeting a dead, rage or error click on
each element for the first time (``StepBucket.elements``, ``detectors.elements``). Every
element hit at a step is watched the same way (up to ``max_elements`` per step), its rates
per session entering the step against its own baseline, and an element-level incident opens
when many sessions hit the same element (the CUSUM, and at least ``min_count`` sessions
beyond the baseline). Its documents are the step's kind, with ``element`` set (None for a
step incident) and a subject ``journey/step/element/<element>``; they estimate no revenue (the
step's own incident, if the element stops people, does).

Each document says what broke: the kinds with their baseline and current rates, the segments
the friction concentrates in beyond the usual (device, payment provider or method),
sessions affected, and the revenue lost per hour (sessions not getting past the step beyond
the baseline, times their cart value, times the baseline chance that someone past the step
orders). Documents are CloudEvents 1.0 with ids derived from the step and the opening window.

>>> from detectors.funnel import StepBucket
>>> det = IncidentDetector(IncidentConfig(warmup_entries=50))
>>> def minute(i, entered, passed, declines):
...     return StepBucket(journey="shop", step="pay", index=1, start=60.0 * i, seconds=60.0,
...                       entered=entered,
...                       passed=passed, cart_value=80.0 * entered,
...                       signals={"payment_declined": declines} if declines else {})
>>> docs = [d for i in range(30) for d in det.observe(minute(i, 20, 18, i % 7 == 0))]
>>> docs   # thirty normal minutes
[]
>>> opened = det.observe(minute(30, 20, 4, 15))   # the provider fails
>>> [d["data"]["status"] for d in opened], opened[0]["data"]["kinds"][0]["kind"]
(['opened'], 'payment_declined')
>>> more = [d for i in range(31, 34) for d in det.observe(minute(i, 20, 5, 16))]
>>> [d for i in range(34, 40) for d in det.observe(minute(i, 20, 18, 0))][-1]["data"]["status"]
'resolved'
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from detectors.elements import OTHER, split_key
from detectors.funnel import SEGMENT_DIMENSIONS, Funnel, StepBucket

__all__ = ["CONVERSION", "IncidentConfig", "IncidentDetector", "IncidentPipeline", "WindowMerger"]

#: The kind of a drop in a step's conversion (the others are friction types).
CONVERSION = "conversion"


@dataclass(frozen=True)
class IncidentConfig:
    """How incidents are found (see the module); defaults measured with
    ``bench/incident_quality.py``."""

    #: Half-life of the baselines, in minutes of traffic.
    half_life_minutes: float = 60.0
    #: Sessions that must have entered a step before it is watched.
    warmup_entries: float = 100.0
    #: Alternative of the friction test: the rate this many times the baseline.
    friction_ratio: float = 8.0
    #: Alternative of the conversion test: conversion times this.
    conversion_drop: float = 0.5
    #: CUSUM level, in nats, that opens an incident.
    open_at: float = 12.0
    #: Events beyond the baseline (signals, or sessions not getting past) needed to open.
    min_count: float = 5.0
    #: An incident resolves when its latest this many minutes, taken together, look like the
    #: baseline for every kind involved.
    resolve_after: float = 2.0
    #: An update document every so many minutes while an incident lasts.
    update_every: float = 5.0
    #: An incident open this long is taken as the new normal: the baselines restart from now.
    max_open_minutes: float = 240.0
    #: Prior of every friction rate: ``prior_rate`` signals per session, worth
    #: ``prior_entries`` sessions (a kind never seen is rare, not impossible).
    prior_rate: float = 0.01
    prior_entries: float = 50.0
    #: Prior of conversion: as if ``prior_entries`` sessions had passed at this rate.
    prior_conversion: float = 0.8
    #: A segment value is an affected one when it holds this share (0-1) of an incident's
    #: friction, ``segment_lift`` more than usual.
    segment_share: float = 0.8
    segment_lift: float = 0.1
    #: Watch each step's elements too (``StepBucket.elements``): an element-level incident
    #: when many sessions meet click friction on the same element (see the module).
    elements: bool = True
    #: Elements watched per step (the one hit least recently, outside an incident, dropped
    #: first). A step has a few elements people fight with; 20 bound the state.
    max_elements: int = 20
    source: str = "frictionwatch/incidents"

    def __post_init__(self) -> None:
        if not (self.friction_ratio > 1 and 0 < self.conversion_drop < 1):
            raise ValueError("friction_ratio must be > 1 and conversion_drop in (0, 1)")
        if self.half_life_minutes <= 0 or self.open_at <= 0 or self.resolve_after <= 0:
            raise ValueError("half_life_minutes, open_at and resolve_after must be > 0")


@dataclass
class _Kind:
    """One watched rate of a step."""

    #: Exponentially weighted events and exposures (sessions entering): the baseline.
    events: float = 0.0
    exposure: float = 0.0
    cusum: float = 0.0
    #: Events beyond the baseline since the CUSUM last stood at 0.
    excess: float = 0.0


@dataclass
class _Incident:
    id: str
    opened: float
    kinds: dict[str, dict[str, float]]
    #: Windows it has lasted, and how long they were together (seconds).
    windows: int = 0
    seconds: float = 0.0
    #: The latest windows' log-likelihood ratios by kind (for resolving).
    recent: list[dict[str, float]] = field(default_factory=list)
    seq: int = 0
    entered: int = 0
    passed: int = 0
    expected_passed: float = 0.0
    cart_value: float = 0.0
    signals: dict[str, int] = field(default_factory=dict)
    segments: dict[str, int] = field(default_factory=dict)


@dataclass
class _Step:
    journey: str
    step: str
    index: int
    kinds: dict[str, _Kind] = field(default_factory=dict)
    seen: int = 0
    #: Weighted segment counts outside incidents (the segments' usual shares).
    segments: dict[str, float] = field(default_factory=dict)
    incident: _Incident | None = None
    last_start: float = -math.inf
    #: An element of the step (its rates are sessions meeting click friction on it per
    #: session entering the step), or None: the step itself.
    element: str | None = None
    #: Start of the last window in which a session hit the element.
    hit: float = -math.inf


class IncidentDetector:
    """Watches every journey step's windows (``observe``, in time order per step), and the
    elements people meet click friction on at each step (``elements``)."""

    def __init__(self, config: IncidentConfig | None = None) -> None:
        self.config = config or IncidentConfig()
        self.steps: dict[tuple[str, str], _Step] = {}
        #: Watched elements per step: (journey, step) -> element -> its state.
        self.elements: dict[tuple[str, str], dict[str, _Step]] = {}

    def observe(self, rec: StepBucket) -> list[dict[str, Any]]:
        """One closed window of one step; returns the incident documents it causes (the
        step's, then its elements')."""
        if rec.index <= 0:  # signals outside any journey: no step to watch
            return []
        key = (rec.journey, rec.step)
        st = self.steps.get(key)
        if st is None:
            st = self.steps[key] = _Step(rec.journey, rec.step, rec.index)
        if rec.start <= st.last_start:  # a part that came after its window was judged
            return []
        st.last_start = rec.start
        docs = self._judge(st, rec)
        if self.config.elements and (rec.elements or key in self.elements):
            docs += self._judge_elements(st, rec)
        return docs

    def open_elements(self, journey: str, step: str) -> int:
        """Element-level incidents open at ``journey``'s ``step``."""
        watched = self.elements.get((journey, step)) or {}
        return sum(est.incident is not None for est in watched.values())

    def _judge_elements(self, st: _Step, rec: StepBucket) -> list[dict[str, Any]]:
        """The window of each element of the step: its sessions with click friction on it,
        against every session entering the step. Elements hit in this window join those
        watched (no warm-up of their own once the step is past its: a button broken by a
        release is new and broken at once, and the prior is a low rate); every watched one
        sees the window, hit or not, so quiet windows count as calm."""
        hits: dict[str, dict[str, int]] = {}
        for key, n in rec.elements.items():
            kind, element = split_key(key)
            if element != OTHER:
                hits.setdefault(element, {})[kind] = n
        watched = self.elements.setdefault((st.journey, st.step), {})
        cfg = self.config
        for element in hits:
            if element in watched:
                continue
            if len(watched) >= cfg.max_elements:
                calm = [e for e, x in watched.items() if x.incident is None]
                if not calm:
                    continue
                del watched[min(calm, key=lambda e: watched[e].hit)]
            watched[element] = _Step(st.journey, st.step, st.index, seen=st.seen,
                                     element=element)
        docs: list[dict[str, Any]] = []
        for element, est in watched.items():
            counts = hits.get(element)
            if counts:
                est.hit = rec.start
            est.last_start = rec.start
            part = StepBucket(journey=rec.journey, step=rec.step, index=rec.index,
                              start=rec.start, seconds=rec.seconds, entered=rec.entered,
                              cart_value=rec.cart_value, signals=counts or {}, segments={},
                              elements={})
            docs += self._judge(est, part)
        return docs

    def _unhit(self, st: _Step) -> float:
        """The exposure a kind first seen at ``st`` starts from: none for a step's; for an
        element's, the sessions that entered its step before (weighted as baselines are),
        none of whom met it there, or the first windows of a broken element would be taken
        for its baseline."""
        if st.element is None:
            return 0.0
        step = self.steps.get((st.journey, st.step))
        conv = step.kinds.get(CONVERSION) if step is not None else None
        return conv.exposure if conv is not None else 0.0

    def _judge(self, st: _Step, rec: StepBucket) -> list[dict[str, Any]]:
        """One window of a step (or of one of its elements): its documents."""
        if rec.entered == 0 and not rec.signals and rec.passed == 0:
            return []
        cfg = self.config
        for kind in rec.signals:
            if kind not in st.kinds:
                st.kinds[kind] = _Kind(exposure=self._unhit(st))
        if st.element is None:  # an element has no conversion of its own
            st.kinds.setdefault(CONVERSION, _Kind())
        watching = st.seen >= cfg.warmup_entries
        st.seen += rec.entered
        llrs: dict[str, float] = {}
        for kind, k in st.kinds.items():
            # A step nobody has been seen to get past (a journey's last) has no conversion.
            if watching and (kind != CONVERSION or k.events > 0):
                llrs[kind] = self._test(kind, k, rec)
        inc = st.incident
        docs: list[dict[str, Any]] = []
        if inc is None:
            alarmed = [kind for kind, k in st.kinds.items()
                       if k.cusum >= cfg.open_at and k.excess >= cfg.min_count]
            if alarmed:
                inc = st.incident = _Incident(
                    id=_incident_id(st, rec.start), opened=rec.start + rec.seconds,
                    kinds={kind: {} for kind in alarmed})
                self._accumulate(st, inc, rec)
                docs.append(self._doc(st, inc, "opened", rec))
            else:
                self._learn(st, rec)
            return docs
        self._accumulate(st, inc, rec)
        joined = [kind for kind, k in st.kinds.items() if kind not in inc.kinds
                  and k.cusum >= cfg.open_at and k.excess >= cfg.min_count]
        for kind in joined:
            inc.kinds[kind] = {}
        inc.recent.append(llrs)
        span = max(1, round(cfg.resolve_after * 60.0 / rec.seconds))
        del inc.recent[:-span]
        # Back to normal: over the latest windows together, every kind involved looks more
        # like its baseline than like the alternative (pooled, so one ordinary event in a
        # quiet window does not hold the incident open).
        normal = len(inc.recent) == span and all(
            sum(m.get(kind, 0.0) for m in inc.recent) <= 0.0 for kind in inc.kinds)
        if normal or inc.seconds >= cfg.max_open_minutes * 60.0:
            if not normal:  # a new normal: forget the old baselines
                st.kinds = {}
            docs.append(self._doc(st, inc, "resolved", rec))
            st.incident = None
            for k in st.kinds.values():
                k.cusum = k.excess = 0.0
        elif joined or inc.windows % max(1, round(cfg.update_every * 60.0 / rec.seconds)) == 0:
            docs.append(self._doc(st, inc, "updated", rec))
        return docs

    # --- internals -------------------------------------------------------------------------

    def _rate(self, kind: str, k: _Kind) -> float:
        cfg = self.config
        prior = cfg.prior_conversion if kind == CONVERSION else cfg.prior_rate
        return (k.events + prior * cfg.prior_entries) / (k.exposure + cfg.prior_entries)

    def _test(self, kind: str, k: _Kind, rec: StepBucket) -> float:
        """This window's log-likelihood ratio, added to the kind's CUSUM; returned."""
        cfg = self.config
        expected = self._rate(kind, k) * rec.entered
        if kind == CONVERSION:
            seen = rec.passed
            drop = cfg.conversion_drop
            llr = seen * math.log(drop) + (1.0 - drop) * expected
            extra = expected - seen
        else:
            seen = rec.signals.get(kind, 0)
            ratio = cfg.friction_ratio
            llr = seen * math.log(ratio) - (ratio - 1.0) * expected
            extra = seen - expected
        k.cusum = max(0.0, k.cusum + llr)
        k.excess = k.excess + extra if k.cusum > 0 else 0.0
        return llr

    def _learn(self, st: _Step, rec: StepBucket) -> None:
        d = 0.5 ** (rec.seconds / 60.0 / self.config.half_life_minutes)
        for kind, k in st.kinds.items():
            k.events = k.events * d + (rec.passed if kind == CONVERSION
                                       else rec.signals.get(kind, 0))
            k.exposure = k.exposure * d + rec.entered
        seg = st.segments
        for key in seg:
            seg[key] *= d
        for key, n in rec.segments.items():
            seg[key] = seg.get(key, 0.0) + n

    def _accumulate(self, st: _Step, inc: _Incident, rec: StepBucket) -> None:
        inc.windows += 1
        inc.seconds += rec.seconds
        inc.entered += rec.entered
        inc.passed += rec.passed
        conv = st.kinds.get(CONVERSION)
        if conv is not None:
            inc.expected_passed += self._rate(CONVERSION, conv) * rec.entered
        inc.cart_value += rec.cart_value
        for kind, n in rec.signals.items():
            inc.signals[kind] = inc.signals.get(kind, 0) + n
        for key, n in rec.segments.items():
            inc.segments[key] = inc.segments.get(key, 0) + n

    def _downstream(self, st: _Step) -> float:
        """Baseline chance that a session past ``st`` reaches its journey's last step."""
        p = 1.0
        for other in self.steps.values():
            if other.journey == st.journey and other.index > st.index:
                conv = other.kinds.get(CONVERSION)
                if conv is not None and conv.exposure > 0 and other.index < self._last(st):
                    p *= min(1.0, self._rate(CONVERSION, conv))
        return p

    def _last(self, st: _Step) -> int:
        return max(o.index for o in self.steps.values() if o.journey == st.journey)

    def _segments(self, st: _Step, inc: _Incident) -> list[dict[str, Any]]:
        """Where the incident's friction concentrates: segment values holding at least
        ``segment_share`` of it, ``segment_lift`` above their usual share (devices against
        the step's traffic; payment providers and methods against the same friction
        before), the largest rise first. Empty when it hits every segment alike, or only
        conversion fell."""
        whats = [k for k in inc.kinds if k != CONVERSION]
        found: list[dict[str, Any]] = []
        for dim in SEGMENT_DIMENSIONS if whats else ():
            counts = _counts(inc.segments, whats, dim)
            n = sum(counts.values())
            before = _shares(_counts(st.segments, ["entered"] if dim == "device" else whats,
                                     dim))
            for value, c in counts.items():
                share, base = c / n, before.get(value, 0.0)
                cfg = self.config
                if share >= cfg.segment_share and share - base >= cfg.segment_lift:
                    found.append({"dimension": dim, "value": value, "share": round(share, 3),
                                  "baseline_share": round(base, 3)})
        found.sort(key=lambda f: f["baseline_share"] - f["share"])
        return found

    def revenue_lost_per_hour(self, journey: str, step: str) -> float | None:
        """The estimate of the incident open on ``journey``'s ``step`` so far (None: none)."""
        st = self.steps.get((journey, step))
        inc = st.incident if st is not None else None
        return None if st is None or inc is None else round(self._lost(st, inc), 2)

    def _lost(self, st: _Step, inc: _Incident) -> float:
        """Sessions not getting past the step beyond the baseline, per hour, times their cart
        value, times the baseline chance that a session past the step orders."""
        hours = inc.seconds / 3600.0
        if not hours or not inc.entered or st.element is not None:
            return 0.0  # an element's share of the step's loss is not known: the step's says
        missing = max(0.0, inc.expected_passed - inc.passed)
        return missing / hours * (inc.cart_value / inc.entered) * self._downstream(st)

    def _doc(self, st: _Step, inc: _Incident, status: str, rec: StepBucket) -> dict[str, Any]:
        kinds: list[dict[str, Any]] = []
        for kind in inc.kinds:
            base = self._rate(kind, st.kinds[kind]) if kind in st.kinds else 0.0
            seen = inc.passed if kind == CONVERSION else inc.signals.get(kind, 0)
            now = seen / inc.entered if inc.entered else 0.0
            kinds.append({"kind": kind, "baseline_rate": round(base, 4),
                          "current_rate": round(now, 4)})
        missing = max(0.0, inc.expected_passed - inc.passed)
        lost = self._lost(st, inc)
        bad = sum(inc.signals.get(k, 0) for k in inc.kinds if k != CONVERSION)
        now_t = rec.start + rec.seconds
        inc.seq += 1
        main = kinds[0]["kind"]
        subject = f"{st.journey}/{st.step}"
        return {
            "specversion": "1.0",
            "type": f"io.frictionwatch.journey.incident.{status}",
            "source": self.config.source,
            "id": f"{inc.id}-{inc.seq}",
            "time": _iso(now_t),
            "subject": subject if st.element is None else f"{subject}/element/{st.element}",
            "datacontenttype": "application/json",
            "data": {
                "incident_id": inc.id,
                "status": status,
                "reason": main,
                "journey": st.journey,
                "step": st.step,
                #: The element people hit (an element-level incident), or None: the step.
                "element": st.element,
                "started": _iso(inc.opened - rec.seconds),
                "opened": _iso(inc.opened),
                "resolved": _iso(now_t) if status == "resolved" else None,
                "minutes": round(inc.seconds / 60.0, 1),
                "kinds": kinds,
                "segments": self._segments(st, inc),
                "sessions_entered": inc.entered,
                "sessions_affected": int(round(max(bad, missing))),
                "revenue_lost_per_hour": round(lost, 2),
                "summary": _summary(st, main, kinds[0], lost),
            },
        }


class WindowMerger:
    """Adds up the records of one step and window that arrive from several workers, or late,
    and hands each window over once a record of a later window of the same step arrives:
    what the incidents agent runs before the detector.

    >>> m = WindowMerger()
    >>> def part(start, entered):
    ...     return StepBucket(journey="j", step="s", index=1, start=start, seconds=30.0,
    ...                       entered=entered)
    >>> m.add(part(0.0, 2)), m.add(part(0.0, 3))
    ([], [])
    >>> [r.entered for r in m.add(part(30.0, 1))]
    [5]
    """

    def __init__(self) -> None:
        self._open: dict[str, dict[float, StepBucket]] = {}
        self._closed: dict[str, float] = {}
        #: Records that came after their window was handed over (dropped).
        self.late = 0

    def add(self, rec: StepBucket) -> list[StepBucket]:
        key = rec.key
        if rec.start <= self._closed.get(key, -math.inf):
            self.late += 1
            return []
        windows = self._open.setdefault(key, {})
        have = windows.get(rec.start)
        if have is None:
            windows[rec.start] = rec
        else:
            have.merge(rec)
        done = sorted(w for w in windows if w < rec.start)
        if not done:
            return []
        self._closed[key] = done[-1]
        return [windows.pop(w) for w in done]

    def flush(self) -> Iterable[StepBucket]:
        """Every window still open (end of input), in order."""
        for key, windows in self._open.items():
            for w in sorted(windows):
                self._closed[key] = w
                yield windows[w]
        self._open = {}


class IncidentPipeline:
    """A funnel's windows through the merger and the detector in one process (the backtest,
    the benches): what the worker does across its sessions agent (``Funnel.close`` as event
    time passes, ``lateness`` seconds behind) and its incidents agent (merger, detector)."""

    def __init__(self, funnel: Funnel | None, config: IncidentConfig | None = None,
                 lateness: float = 15.0) -> None:
        self.funnel = funnel
        self.lateness = lateness
        self.merger = WindowMerger()
        self.detector = IncidentDetector(config)

    def advance(self, watermark: float) -> list[dict[str, Any]]:
        """Event time reached ``watermark``: the documents of the windows that closed."""
        if self.funnel is None:
            return []
        return self._observe(self.funnel.close(watermark - self.lateness))

    def finish(self) -> list[dict[str, Any]]:
        """End of input: every window left."""
        docs = self.advance(math.inf)
        for rec in self.merger.flush():
            docs += self.detector.observe(rec)
        return docs

    def _observe(self, records: Iterable[StepBucket]) -> list[dict[str, Any]]:
        docs: list[dict[str, Any]] = []
        for rec in records:
            for done in self.merger.add(rec):
                docs += self.detector.observe(done)
        return docs


def _counts(counts: dict[str, Any], whats: list[str], dim: str) -> dict[str, float]:
    """Segment counts of ``whats`` along ``dim``, by value."""
    totals: dict[str, float] = {}
    for what in whats:
        prefix = f"{what}|{dim}="
        for key, n in counts.items():
            if key.startswith(prefix):
                value = key[len(prefix):]
                totals[value] = totals.get(value, 0.0) + n
    return totals


def _shares(totals: dict[str, float]) -> dict[str, float]:
    total = sum(totals.values())
    return {v: n / total for v, n in totals.items()} if total else {}


def _summary(st: _Step, kind: str, rates: dict[str, Any], lost: float) -> str:
    now, usual = rates["current_rate"], rates["baseline_rate"]
    if st.element is not None:
        return (f"{st.journey} / {st.step}: {now * 100:.0f} of 100 sessions entering meet a "
                f"{kind.replace('_', ' ')} on {st.element}, usually {usual * 100:.1f}")
    if kind == CONVERSION:
        what = f"{now:.0%} of sessions get past it, usually {usual:.0%}"
    else:
        what = (f"{now * 100:.0f} {kind.replace('_', ' ')} signals per 100 sessions entering, "
                f"usually {usual * 100:.1f}")
    return f"{st.journey} / {st.step}: {what}; about {lost:,.0f} of revenue lost per hour"


def _incident_id(st: _Step, start: float) -> str:
    where = f"{st.journey}/{st.step}" + (f"/element/{st.element}" if st.element else "")
    raw = f"{where}/{start:.0f}".encode()
    return "inc_" + hashlib.sha1(raw, usedforsecurity=False).hexdigest()[:16]


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
