"""Journey funnels, a short window at a time: how many sessions entered each step, how many got
past it, the friction they met there, orders and revenue, with the segments they came from.

``Funnel`` is fed by the journey tracker (a session entering a step further on than it has
been) and by the engine (the friction signals it raises, counted at the step the session is
in). It keeps one ``StepBucket`` per journey step per window of event time (``bucket_seconds``,
15 by default); ``close(upto)`` hands over, in order, the windows that ended by ``upto`` (the
caller's watermark, less some lateness). A count that arrives for a window already handed
over starts a new record for it, which the next ``close`` hands over: consumers add records
of the same window up (``StepBucket.merge``). Journey incidents are found in those records
(``detectors.incidents``), and the worker exports them to Prometheus.

Counts are per *first* entry: a session that goes back and forth in checkout enters and
passes each step once, so ``passed / entered`` is the step's conversion.

>>> from detectors.events import CheckoutStepViewed, OrderCompleted
>>> from detectors.journey import Journey, JourneyTracker
>>> from detectors.session import SessionProcessor
>>> journey = Journey.from_dict({"name": "shop", "profile": "retail", "steps": [
...     {"name": "pay", "events": ["checkout_step_viewed"], "step": 3},
...     {"name": "order", "events": ["order_completed"]}]})
>>> funnel = Funnel(bucket_seconds=60)
>>> proc = SessionProcessor([JourneyTracker([journey], funnel=funnel)])
>>> state, _ = proc.apply(None, [
...     CheckoutStepViewed(id="1", time=30.0, session_id="s", step=3, device="mobile"),
...     OrderCompleted(id="2", time=70.0, session_id="s", revenue=25.0)])
>>> [(b.step, b.start, b.entered, b.passed, b.orders, b.revenue) for b in funnel.close(120)]
[('pay', 0.0, 1, 0, 0, 0.0), ('pay', 60.0, 0, 1, 0, 0.0), ('order', 60.0, 1, 0, 1, 25.0)]
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import msgspec

from detectors import events as ev
from detectors.base import Signal
from detectors.elements import bump_element, element_of

if TYPE_CHECKING:
    from detectors.session import SessionState

__all__ = ["NO_JOURNEY", "SEGMENT_DIMENSIONS", "Funnel", "StepBucket", "segment_key"]

#: Journey and step name of signals raised outside any journey (browsing).
NO_JOURNEY = "none"
#: Segments counted: the session's device, and a payment signal's provider and method.
SEGMENT_DIMENSIONS = ("device", "provider", "method")
#: Elements one window of one step counts by name: a 15-second window holds a handful; 100
#: bound a record (and the journey-stats message) whatever the traffic.
MAX_BUCKET_ELEMENTS = 100


def segment_key(what: str, dim: str, value: str) -> str:
    """Key of a segment count in ``StepBucket.segments``: what was counted (``entered``,
    ``passed`` or a friction type) in which segment, e.g. ``payment_declined|provider=stripe``."""
    return f"{what}|{dim}={value}"


class StepBucket(msgspec.Struct, kw_only=True):
    """One journey step in one window of event time (``start``, Unix seconds; ``seconds``)."""

    journey: str
    step: str
    #: Position of the step in its journey, 1-based (0: outside any journey).
    index: int
    start: float
    seconds: float
    #: Sessions that entered the step for the first time, and that got past it.
    entered: int = 0
    passed: int = 0
    #: Sum of the cart values of the sessions entering.
    cart_value: float = 0.0
    #: Orders placed entering this step (a journey's order step), and their revenue.
    orders: int = 0
    revenue: float = 0.0
    #: Friction signals raised while sessions were in the step, by type.
    signals: dict[str, int] = {}
    #: Counts by segment (``segment_key``), bounded by ``SEGMENT_DIMENSIONS``' values.
    segments: dict[str, int] = {}
    #: Sessions that met click friction on an element for the first time (at this step), by
    #: ``type|element`` (``detectors.elements``); at most ``MAX_BUCKET_ELEMENTS`` keys, the
    #: rest under ``type|other``.
    elements: dict[str, int] = {}

    @property
    def key(self) -> str:
        """``journey/step``: the key of the journey-stats topic."""
        return f"{self.journey}/{self.step}"

    def merge(self, other: StepBucket) -> None:
        """Add another record of the same step and window (a late part, another worker's)."""
        self.entered += other.entered
        self.passed += other.passed
        self.cart_value += other.cart_value
        self.orders += other.orders
        self.revenue += other.revenue
        for name, counts in (("signals", other.signals), ("segments", other.segments),
                             ("elements", other.elements)):
            mine = getattr(self, name)
            for k, n in counts.items():
                mine[k] = mine.get(k, 0) + n


class Funnel:
    """Step counts per window (see the module). Memory: the records of the windows not handed
    over yet, at most one per journey step per window."""

    def __init__(self, bucket_seconds: float = 15.0) -> None:
        if bucket_seconds <= 0:
            raise ValueError("bucket_seconds must be > 0")
        self.bucket_seconds = bucket_seconds
        self._open: dict[tuple[float, str, str], StepBucket] = {}

    def _record(self, journey: str, step: str, index: int, t: float) -> StepBucket:
        size = self.bucket_seconds
        start = t - t % size
        key = (start, journey, step)
        rec = self._open.get(key)
        if rec is None:
            rec = self._open[key] = StepBucket(journey=journey, step=step, index=index,
                                               start=start, seconds=size, signals={},
                                               segments={}, elements={})
        return rec

    def entered(self, state: SessionState, journey: str, index: int, step: str,
                passed: tuple[int, str] | None, event: Any) -> None:
        """``state``'s session entered ``step`` of ``journey`` for the first time at ``event``,
        coming from ``passed`` (index and name of the furthest step it had been in), if any."""
        t = event.time
        device = state.device
        rec = self._record(journey, step, index, t)
        rec.entered += 1
        rec.cart_value += state.cart_value
        if type(event) is ev.OrderCompleted:
            rec.orders += 1
            rec.revenue += event.revenue
        if device:
            _bump(rec.segments, segment_key("entered", "device", device))
        if passed is not None:
            prev = self._record(journey, passed[1], passed[0], t)
            prev.passed += 1
            if device:
                _bump(prev.segments, segment_key("passed", "device", device))

    def signals(self, state: SessionState, signals: Iterable[Signal],
                hits: Iterable[tuple[str, str, str]] = ()) -> None:
        """Count signals at the step ``state``'s session is in (``NO_JOURNEY`` outside), and
        ``hits``, the session's first click friction on elements
        (``detectors.elements.record_hits``), by element."""
        mem = state.detector_state.get("journey")
        if mem and "journey" in mem:
            journey, step, index = mem["journey"], mem["step_name"], mem["step"]
        else:
            journey, step, index = NO_JOURNEY, NO_JOURNEY, 0
        device = state.device
        left = {(kind, element) for kind, _, element in hits}
        for sig in signals:
            rec = self._record(journey, step, index, sig.time)
            _bump(rec.signals, sig.type)
            seg = rec.segments
            if device:
                _bump(seg, segment_key(sig.type, "device", device))
            evidence = sig.evidence
            providers = evidence.get("providers")
            if providers:
                _bump(seg, segment_key(sig.type, "provider", str(providers[0])))
            method = evidence.get("method")
            if method:
                _bump(seg, segment_key(sig.type, "method", str(method)))
            if left:  # each hit once, in the window of its first signal
                hit = (sig.type, element_of(sig))
                if hit in left:
                    left.discard(hit)
                    bump_element(rec.elements, hit[0], str(hit[1]), MAX_BUCKET_ELEMENTS)

    def close(self, upto: float) -> list[StepBucket]:
        """The records of every window that ended by ``upto``, oldest first (then by journey
        and step position); they are forgotten here."""
        size = self.bucket_seconds
        done = [k for k in self._open if k[0] + size <= upto]
        if not done:
            return []
        out = [self._open.pop(k) for k in done]
        out.sort(key=lambda r: (r.start, r.journey, r.index))
        return out


def _bump(counts: dict[str, int], key: str) -> None:
    counts[key] = counts.get(key, 0) + 1
