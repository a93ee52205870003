"""Per-session state and the pure processor the worker (and offline replay) runs over it.

``SessionProcessor.apply`` folds a batch of one session's events into its ``SessionState`` and
returns what the detectors raised. It has no I/O: the Faust agent in ``streams.app`` loads the
state from a table, calls ``apply`` and writes the state back once per batch.

Detectors plug in through the ``Detector`` protocol; they keep their own per-session memory in
``SessionState.detector_state[detector.name]`` so that it is checkpointed with the session.

>>> from detectors.events import CheckoutStepViewed, OrderCompleted, PageView
>>> proc = SessionProcessor()
>>> state, out = proc.apply(None, [
...     PageView(id="1", time=10.0, session_id="s1", url="/"),
...     CheckoutStepViewed(id="2", time=20.0, session_id="s1", step=1),
...     OrderCompleted(id="3", time=90.0, session_id="s1", revenue=42.5),
... ], origin=("ingest-0", 7))
>>> state.events, state.checkout_step, state.revenue, state.converted, state.positions
(3, 1, 42.5, True, {'ingest-0': 7})

A message from an origin at or below the position already applied is a replay; it is skipped:

>>> again, _ = proc.apply(state, [PageView(id="4", time=95.0, session_id="s1")],
...                       origin=("ingest-0", 7))
>>> again.events
3
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Protocol

import msgspec

from detectors import events as ev
from detectors.base import BaseDetector, Signal

__all__ = [
    "Detector",
    "SessionProcessor",
    "SessionState",
    "Signal",
    "decode_state",
    "encode_state",
    "is_replay",
]


class SessionState(msgspec.Struct, kw_only=True):
    """What the worker remembers about one session. Bounded in size by construction."""

    session_id: str
    customer_id: str | None = None
    device: str | None = None
    first_time: float = 0.0
    last_time: float = 0.0
    events: int = 0
    page_views: int = 0
    clicks: int = 0
    #: Last known cart value (from cart or checkout events).
    cart_value: float = 0.0
    #: Current checkout step (0 = not in checkout) and the furthest step reached.
    checkout_step: int = 0
    max_checkout_step: int = 0
    checkout_started_at: float | None = None
    payment_failures: int = 0
    form_errors: int = 0
    js_errors: int = 0
    converted: bool = False
    revenue: float = 0.0
    #: Highest offset applied per origin (an input partition, e.g. "ingest-3"). A replayed
    #: message at or below it is skipped, which makes recovery exact when a crash lands between
    #: the state flush and the offset commit, or an upstream agent re-sends after its own crash.
    #: At most one entry per input partition, so bounded.
    positions: dict[str, int] = {}
    #: Earliest pending detector deadline (event time), cached: detectors' ``due`` may change
    #: only in their own ``update`` or ``tick``, so it is recomputed only then.
    due_at: float | None = None
    #: Friction signals raised in this session, by type.
    friction: dict[str, int] = {}
    #: Per-detector memory, by detector name (kept small by each detector).
    detector_state: dict[str, Any] = {}


class Detector(Protocol):
    """A pure per-session detector (see ``detectors.base``; subclass ``BaseDetector``)."""

    name: ClassVar[str]
    handles: ClassVar[tuple[type, ...]]

    def update(self, state: SessionState, event: Any) -> Sequence[Signal]: ...

    def due(self, state: SessionState) -> float | None: ...

    def tick(self, state: SessionState, now: float) -> Sequence[Signal]: ...


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(SessionState)


def encode_state(state: SessionState) -> bytes:
    return _encoder.encode(state)


def decode_state(data: bytes) -> SessionState:
    return _decoder.decode(data)


def _fold(state: SessionState, e: Any) -> None:
    """Update the generic session facts for one event (no detection here)."""
    if state.events == 0:
        state.first_time = e.time
    state.events += 1
    # Events from one client can arrive slightly out of order; keep the latest time seen.
    if e.time > state.last_time:
        state.last_time = e.time
    if e.customer_id and not state.customer_id:
        state.customer_id = e.customer_id
    if e.device and not state.device:
        state.device = e.device
    t = type(e)
    if t is ev.Click:
        state.clicks += 1
    elif t is ev.PageView:
        state.page_views += 1
    elif t is ev.CartUpdated:
        if e.cart_value is not None:
            state.cart_value = e.cart_value
    elif t is ev.CheckoutStarted:
        state.checkout_started_at = e.time
        if state.checkout_step == 0:
            state.checkout_step = 1
        state.max_checkout_step = max(state.max_checkout_step, state.checkout_step)
        if e.cart_value is not None:
            state.cart_value = e.cart_value
    elif t is ev.CheckoutStepViewed or t is ev.CheckoutStepCompleted:
        if state.checkout_started_at is None:
            state.checkout_started_at = e.time
        state.checkout_step = e.step
        state.max_checkout_step = max(state.max_checkout_step, e.step)
    elif t is ev.PaymentAttempted:
        if not e.success:
            state.payment_failures += 1
    elif t is ev.FormFieldError:
        state.form_errors += 1
    elif t is ev.JsError:
        state.js_errors += 1
    elif t is ev.OrderCompleted:
        state.converted = True
        state.revenue += e.revenue


class SessionProcessor:
    """Apply events to session state and run the detectors.

    Parameters
    ----------
    detectors
        Detectors to run on every event, in order.
    """

    def __init__(self, detectors: Sequence[Detector] = ()) -> None:
        self.detectors = tuple(detectors)
        # Event class -> the detectors that want it, so each event costs one lookup.
        self._by_type: dict[type, tuple[Detector, ...]] = {
            t: tuple(d for d in self.detectors if t in d.handles) for t in ev.EVENT_TYPES.values()
        }
        self._timed = tuple(d for d in self.detectors if type(d).due is not BaseDetector.due)
        # Event classes a timed detector sees: only they (and ticks) can move a deadline.
        self._moves_due = frozenset(t for t, ds in self._by_type.items()
                                    if any(d in self._timed for d in ds))

    def apply(
        self,
        state: SessionState | None,
        events: Sequence[Any],
        origin: tuple[str, int] | None = None,
    ) -> tuple[SessionState, list[Signal]]:
        """Fold ``events`` (one Kafka message's worth, one session) into ``state``.

        ``origin`` is where the message came from: (input partition id, offset). A message at
        or below the position already applied for that origin is a replay and is skipped
        (state returned unchanged, no signals). Deadlines that an event's time passes are
        ticked before the event is applied.
        """
        if state is None:
            state = SessionState(session_id=events[0].session_id if events else "")
        elif origin is not None and is_replay(state.positions, origin):
            return state, []
        signals: list[Signal] = []
        by_type = self._by_type
        moves_due = self._moves_due
        for e in events:
            due = state.due_at
            if due is not None and due <= e.time:
                self._tick(state, e.time, signals)
            _fold(state, e)
            t = type(e)
            for d in by_type[t]:
                found = d.update(state, e)
                if found:
                    signals.extend(found)
            if t in moves_due:
                state.due_at = self._compute_due(state)
        if origin is not None:
            state.positions[origin[0]] = origin[1]
        return state, signals

    def next_due(self, state: SessionState) -> float | None:
        """Earliest deadline any detector has pending for this session (None: none)."""
        return state.due_at

    def advance(self, state: SessionState, now: float) -> list[Signal]:
        """Event time reached ``now`` with no event of this session: run due ticks."""
        signals: list[Signal] = []
        due = state.due_at
        if due is not None and due <= now:
            self._tick(state, now, signals)
        return signals

    def _compute_due(self, state: SessionState) -> float | None:
        best = None
        for d in self._timed:
            t = d.due(state)
            if t is not None and (best is None or t < best):
                best = t
        return best

    def _tick(self, state: SessionState, now: float, out: list[Signal]) -> None:
        # Each deadline runs at its own due time, not at ``now``: results then do not depend
        # on when the caller got round to it (watermark steps, batching, stream vs backtest).
        # The earliest deadline left is found in the same pass (a tick may set a new one).
        best = None
        for d in self._timed:
            due = d.due(state)
            if due is not None and due <= now:
                out.extend(d.tick(state, due))
                due = d.due(state)
            if due is not None and (best is None or due < best):
                best = due
        state.due_at = best


def is_replay(positions: dict[str, int], origin: tuple[str, int] | None) -> bool:
    """True when ``origin`` was already applied (its offset is at or below the position)."""
    return origin is not None and origin[1] <= positions.get(origin[0], -1)
