"""Per-session state and the pure processor the worker (and offline replay) runs over it.

``SessionProcessor.apply`` folds a batch of one session's events into its ``SessionState`` and
returns what the detectors raised. It has no I/O: the Faust agent in ``streams.sessions`` loads the
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

import math
import operator
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Protocol

import msgspec

from detectors import events as ev
from detectors.base import BaseDetector, Signal
from detectors.traffic import traffic_source

__all__ = [
    "Detector",
    "SessionProcessor",
    "SessionState",
    "Signal",
    "as_read",
    "decode_lenient",
    "decode_state",
    "encode_state",
    "finite",
    "float_fields",
    "is_replay",
]


# gc=False: a state holds plain data (its dicts and lists never point back at it), so it can
# form no reference cycle; a worker holds 100,000s of them, and untracked they cost 16 bytes
# less each and nothing in each full collection (bench/session_memory.py).
class SessionState(msgspec.Struct, kw_only=True, gc=False):
    """What the worker remembers about one session. Bounded in size by construction."""

    session_id: str
    customer_id: str | None = None
    device: str | None = None
    first_time: float = 0.0
    last_time: float = 0.0
    events: int = 0
    page_views: int = 0
    clicks: int = 0
    #: The last page view: its time and path (or URL). Detectors read it instead of each
    #: keeping its own copy (one event class fewer for them to be called with).
    page_at: float | None = None
    page: str | None = None
    #: The last click: its time and target element.
    click_at: float | None = None
    click_target: str | None = None
    #: The last presence signal's time (``Presence``: a leave, hide or heartbeat); not None
    #: means the session's source sends them, so silence without a leave is presence.
    presence_at: float | None = None
    #: The last heartbeat's time (``Presence`` "here": Snowplow ``page_ping``, a tracker's
    #: "Page Heartbeat"); not None means the source sends them while the page is in use, so
    #: their stopping means the customer went away.
    heartbeat_at: float | None = None
    #: Channel the session came from (``detectors.traffic``), from its first page view.
    source: str | None = None
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
    #: Orders placed in the session.
    orders: int = 0
    #: The session's id (one the source named) came back after the session had expired: this
    #: state continues that session, whose outcome was reported already (``Engine``).
    continued: bool = False
    #: Highest offset applied per origin (an input partition, e.g. "ingest-3"). A replayed
    #: message at or below it is skipped, which makes recovery exact when a crash lands between
    #: the state flush and the offset commit, or an upstream agent re-sends after its own crash.
    #: At most one entry per input partition, so bounded.
    positions: dict[str, int] = {}
    #: Earliest pending detector deadline (event time), cached: detectors' ``due`` may change
    #: only in their own ``update`` or ``tick``, so it is recomputed only then.
    due_at: float | None = None
    #: The abandonment model's latest probability that this session leaves without buying
    #: (None: not scored yet).
    abandon_probability: float | None = None
    #: Friction signals raised in this session, by type.
    friction: dict[str, int] = {}
    #: Per-detector memory, by detector name (kept small by each detector).
    detector_state: dict[str, Any] = {}
    #: Set on an ended session whose follow-up waits (``detectors.followup``): when it is
    #: due (event time). The worker keeps such a state stored until it is sent or
    #: cancelled, so a restart or a rebalance takes the follow-up over (``Engine.adopt``).
    followup_due: float | None = None


class Detector(Protocol):
    """A pure per-session detector (see ``detectors.base``; subclass ``BaseDetector``)."""

    name: ClassVar[str]
    handles: ClassVar[tuple[type, ...]]

    def update(self, state: SessionState, event: Any) -> Sequence[Signal]: ...

    def due(self, state: SessionState) -> float | None: ...

    def tick(self, state: SessionState, now: float) -> Sequence[Signal]: ...

    def learn(self, state: SessionState, outcome: Mapping[str, Any]) -> None: ...


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(SessionState)


class FloatFields(dict[str, Any]):
    """Float field names -> defaults, with ``values_of(state)``: their values, in one C call."""

    def __init__(self, defaults: dict[str, Any]) -> None:
        super().__init__(defaults)
        names = tuple(defaults)
        get = operator.attrgetter(*names) if names else (lambda state: ())
        self.values_of: Callable[[Any], Any] = (
            get if len(names) != 1 else (lambda state: (get(state),)))


def float_fields(cls: type[msgspec.Struct]) -> FloatFields:
    """The float fields of a state struct and their defaults (what a non-finite value, which
    JSON cannot hold, is replaced with)."""
    return FloatFields({f.name: f.default for f in msgspec.structs.fields(cls)
                        if f.type is float or f.type == (float | None)})


def finite(state: Any, fields: FloatFields) -> Any:
    """``state`` with every non-finite value of ``fields`` set back to its default, in place.

    msgspec writes ``inf`` and ``nan`` as ``null``, which a float field cannot read back: a
    state stored with one would fail to load on every later touch, also after a restart.
    Input bounds keep sums finite; this is the last line, on every state write: the sum of
    the values (zeros and Nones left out) is finite when each is, so one check in C does
    for the common case (a loop over nine fields was a third of encoding a session).

    >>> s = SessionState(session_id="s", cart_value=float("inf"))
    >>> finite(s, _FLOATS).cart_value, finite(SessionState(session_id="t"), _FLOATS).cart_value
    (0.0, 0.0)
    """
    if math.isfinite(sum(filter(None, fields.values_of(state)))):
        return state
    for name, default in fields.items():
        v = getattr(state, name)
        if v is not None and not math.isfinite(v):
            setattr(state, name, default)
    return state


def decode_lenient(data: bytes, decoder: msgspec.json.Decoder[Any], cls: type[Any],
                   fields: dict[str, Any]) -> Any:
    """Decode a stored state; one written before states were kept finite (``null`` in a float
    field) is read with those fields at their defaults instead of failing forever."""
    try:
        return decoder.decode(data)
    except msgspec.ValidationError:
        raw = msgspec.json.decode(data)
        if type(raw) is not dict:
            raise
        for name in fields:
            if name in raw and raw[name] is None:
                del raw[name]
        return msgspec.convert(raw, cls)


_FLOATS = float_fields(SessionState)


def encode_state(state: SessionState) -> bytes:
    """The state as JSON; non-finite floats are stored as their defaults (``finite``)."""
    return _encoder.encode(finite(state, _FLOATS))


def decode_state(data: bytes) -> SessionState:
    return decode_lenient(data, _decoder, SessionState, _FLOATS)  # type: ignore[no-any-return]


def as_read(state: SessionState) -> SessionState:
    """``state`` as ``decode_state`` gives it back: detector memory kept already encoded
    (``msgspec.Raw``: the abandonment scorer's earlier snapshots) decoded; ``state`` itself
    when it holds none. What a round trip must equal.

    >>> s = SessionState(session_id="s", detector_state={"m": [msgspec.Raw(b"[1,2]"), [3]]})
    >>> as_read(s).detector_state, decode_state(encode_state(s)) == as_read(s)
    ({'m': [[1, 2], [3]]}, True)
    """
    def opened(value: Any) -> Any:
        if type(value) is msgspec.Raw:
            return msgspec.json.decode(value)
        if type(value) is dict:
            return {k: opened(v) for k, v in value.items()}
        if type(value) is list:
            return [opened(v) for v in value]
        return value

    memory = opened(state.detector_state)
    if memory == state.detector_state:
        return state
    return msgspec.structs.replace(state, detector_state=memory)


def _cart_updated(state: SessionState, e: Any) -> None:
    if e.cart_value is not None:
        state.cart_value = e.cart_value
    elif e.price is not None and e.action != "view":
        # The spec's "Product Added"/"Removed" carry the item, not the cart's total: keep a
        # running value from the items (never below 0: a removal of an item added before the
        # session, or before a total, has nothing to take from).
        change = e.price * e.quantity
        state.cart_value = max(0.0, state.cart_value + (change if e.action == "add" else -change))


def _presence(state: SessionState, e: Any) -> None:
    state.presence_at = e.time
    if e.state == "here":
        state.heartbeat_at = e.time


def _checkout_started(state: SessionState, e: Any) -> None:
    state.checkout_started_at = e.time
    if state.checkout_step == 0:
        state.checkout_step = 1
    state.max_checkout_step = max(state.max_checkout_step, state.checkout_step)
    if e.cart_value is not None:
        state.cart_value = e.cart_value


def _checkout_step(state: SessionState, e: Any) -> None:
    if state.checkout_started_at is None:
        state.checkout_started_at = e.time
    state.checkout_step = e.step
    state.max_checkout_step = max(state.max_checkout_step, e.step)


def _payment_attempted(state: SessionState, e: Any) -> None:
    if not e.success:
        state.payment_failures += 1


def _form_field_error(state: SessionState, e: Any) -> None:
    state.form_errors += 1


def _js_error(state: SessionState, e: Any) -> None:
    state.js_errors += 1


def _order_completed(state: SessionState, e: Any) -> None:
    state.converted = True
    state.revenue += e.revenue
    state.orders += 1


_FOLD_BY_TYPE: dict[type, Any] = {
    ev.CartUpdated: _cart_updated,
    ev.Presence: _presence,
    ev.CheckoutStarted: _checkout_started,
    ev.CheckoutStepViewed: _checkout_step,
    ev.CheckoutStepCompleted: _checkout_step,
    ev.PaymentAttempted: _payment_attempted,
    ev.FormFieldError: _form_field_error,
    ev.JsError: _js_error,
    ev.OrderCompleted: _order_completed,
}


class SessionProcessor:
    """Apply events to session state and run the detectors.

    Parameters
    ----------
    detectors
        Detectors to run on every event, in order.
    """

    def __init__(self, detectors: Sequence[Detector] = ()) -> None:
        self.detectors = tuple(detectors)
        timed = tuple(d for d in self.detectors if type(d).due is not BaseDetector.due)
        self._learners = tuple(d.learn for d in self.detectors
                               if type(d).learn is not BaseDetector.learn)
        self._timed = timed
        self._dues = tuple(d.due for d in timed)
        # Event class -> (bound update, gate, bound due or None) per detector that wants it:
        # one lookup per event and no bound-method object made per call (the hot path,
        # DEVELOPERS.md).
        # A gate is the detector's name for the classes it only ``follows``: it is called for
        # them only while its memory slot exists in the session.
        self._updates: dict[type, tuple[tuple[Any, str | None, Any], ...]] = {
            t: tuple((d.update, None if t in d.handles else d.name,
                      d.due if d in timed else None)
                     for d in self.detectors
                     if t in d.handles or t in getattr(d, "follows", ()))
            for t in ev.EVENT_TYPES.values()
        }

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
        step = self.step
        for e in events:
            found = step(state, e)
            if found:
                signals += found
        if origin is not None:
            name, positions = origin[0], state.positions
            if name not in positions:
                # Interned: every session of an input partition shares its name, instead of
                # keeping the copy parsed from its first message (bench/session_memory.py).
                name = sys.intern(name)
            positions[name] = origin[1]
        return state, signals

    def step(self, state: SessionState, e: Any) -> list[Signal] | None:
        """Fold one event into ``state`` (in place, no replay check): the signals it raised,
        or None. Deadlines that its time passes are ticked first. ``apply`` is this per
        event; ``Engine.feed_many`` calls it directly (the hot path, DEVELOPERS.md)."""
        signals = None
        now = e.time
        due = state.due_at
        if due is not None and due <= now:
            signals = self._tick(state, now) or None
        # The generic session facts (inline: this runs for every event).
        if state.events == 0:
            state.first_time = now
        state.events += 1
        # Events from one client can arrive slightly out of order: keep the latest time.
        if now > state.last_time:
            state.last_time = now
        if e.customer_id and not state.customer_id:
            state.customer_id = e.customer_id
        if e.device and not state.device:
            state.device = e.device
        t = type(e)
        # Clicks and page views are most of the traffic: tested first, the rest by lookup.
        if t is ev.Click:
            state.clicks += 1
            state.click_at = now
            state.click_target = e.target
        elif t is ev.PageView:
            state.page_views += 1
            state.page_at = now
            state.page = e.path or e.url
            if state.source is None:
                state.source = traffic_source(e.url, e.referrer)
        else:
            fold = _FOLD_BY_TYPE.get(t)
            if fold is not None:
                fold(state, e)
        moved: Any = None  # the due of the one timed detector that ran; True: several
        memory = state.detector_state
        for update, gate, due_of in self._updates[t]:
            if gate is not None and gate not in memory:
                continue
            found = update(state, e)
            if found:
                if signals is None:
                    signals = list(found)
                else:
                    signals += found
            if due_of is not None:
                moved = due_of if moved is None else True
        # Only a timed detector's own update (or tick) moves its deadline. If no deadline
        # was pending before, the one that ran has the only one there can be (one call, not
        # one per timed detector: most clicks).
        if moved is not None:
            if moved is not True and state.due_at is None:
                state.due_at = moved(state)
                return signals
            best = None
            for due_of in self._dues:
                due = due_of(state)
                if due is not None and (best is None or due < best):
                    best = due
            state.due_at = best
        return signals

    def finish(self, state: SessionState, outcome: Mapping[str, Any]) -> None:
        """The session ended with ``outcome`` (``detectors.engine.outcome``): detectors that
        learn from outcomes (``learn``) do so now."""
        for learn in self._learners:
            learn(state, outcome)

    def next_due(self, state: SessionState) -> float | None:
        """Earliest deadline any detector has pending for this session (None: none)."""
        return state.due_at

    def advance(self, state: SessionState, now: float) -> list[Signal]:
        """Event time reached ``now`` with no event of this session: run due ticks."""
        due = state.due_at
        if due is not None and due <= now:
            return self._tick(state, now)
        return []

    def _tick(self, state: SessionState, now: float) -> list[Signal]:
        # Each deadline runs at its own due time, not at ``now``: results then do not depend
        # on when the caller got round to it (watermark steps, batching, stream vs backtest).
        # The earliest deadline left is found in the same pass (a tick may set a new one).
        out: list[Signal] = []
        best = None
        for d in self._timed:
            due = d.due(state)
            if due is not None and due <= now:
                out.extend(d.tick(state, due))
                due = d.due(state)
            if due is not None and (best is None or due < best):
                best = due
        state.due_at = best
        return out


def is_replay(positions: dict[str, int], origin: tuple[str, int] | None) -> bool:
    """True when ``origin`` was already applied (its offset is at or below the position)."""
    return origin is not None and origin[1] <= positions.get(origin[0], -1)
