"""What every detector is: a small pure class that reads one session's events and raises
``Signal``s, keeping its per-session memory inside the session's state.

A detector declares the event classes it wants (``handles``); the processor passes it only
those, so ten detectors cost one dict lookup per event, not ten calls. Classes that matter only
while something is pending (any event answering a click, page views while in checkout) go in
``follows``: they reach the detector only while its memory slot exists. Friction that shows as
*nothing happening* (a click with no response, a stall in a checkout step) needs time to pass:
a detector with a pending deadline returns it from ``due`` and gets ``tick(state, now)`` once
event time (the stream's watermark, or the session's own next event) reaches it.

Memory: ``memory(state)`` is this detector's slot in ``state.detector_state``. It must hold
only JSON-able builtins (numbers, strings, lists, dicts) and stay small (bounded by the
detector, e.g. the last few clicks), because it is checkpointed with the session.

>>> from detectors.events import Click
>>> from detectors.session import SessionState
>>> class EveryClick(BaseDetector):
...     name = "every_click"
...     handles = (Click,)
...     def update(self, state, event):
...         return [self.signal(state, event.time, event.time, target=event.target)]
>>> s = SessionState(session_id="s1")
>>> [sig] = EveryClick().update(s, Click(id="c", time=3.0, session_id="s1", x=1, y=2,
...                                      target="#pay"))
>>> sig.type, sig.time, sig.evidence
('every_click', 3.0, {'target': '#pay'})
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import msgspec

if TYPE_CHECKING:
    from detectors.session import SessionState

__all__ = ["BaseDetector", "Signal"]


class Signal(msgspec.Struct, frozen=True, kw_only=True):
    """A friction signal: what a detector saw, when, and the evidence for it."""

    #: The friction type, the detector's ``name`` (e.g. "rage_click").
    type: str
    session_id: str
    #: Event time at which it was detectable (when the detector raised it).
    time: float
    #: Event time at which the friction began (e.g. the first of the rage clicks).
    start: float
    #: Checkout step (1-based) where it happened; None outside checkout.
    step: int | None = None
    #: Plain facts for people: times, element, field, decline reasons, counts...
    evidence: dict[str, Any] = {}


class BaseDetector:
    """Defaults for the ``detectors.session.Detector`` protocol; subclass and override."""

    #: Signal type raised, and key of this detector's memory in ``state.detector_state``.
    name: ClassVar[str] = "base"
    #: Event classes ``update`` is called with.
    handles: ClassVar[tuple[type, ...]] = ()
    #: Event classes ``update`` is called with only while this detector has memory in the
    #: session (its ``state.detector_state[name]`` slot exists): for what matters only while
    #: something is pending, e.g. any event answering a click. Delete the slot when nothing
    #: is, and sessions with nothing pending cost a lookup instead of a call.
    follows: ClassVar[tuple[type, ...]] = ()

    def update(self, state: SessionState, event: Any) -> Sequence[Signal]:
        return ()

    def due(self, state: SessionState) -> float | None:
        """Event time at which ``tick`` must run for this session; None: nothing pending.

        Its answer may change only through this detector's own ``update`` or ``tick`` (the
        processor caches the earliest deadline and recomputes it only then)."""
        return None

    def tick(self, state: SessionState, now: float) -> Sequence[Signal]:
        """Event time reached ``now`` (>= ``due``) with no event of this session in between."""
        return ()

    def learn(self, state: SessionState, outcome: Mapping[str, Any]) -> None:
        """The session ended (expired) with ``outcome`` (``detectors.engine.outcome``): learn
        from it. Default: nothing. Online models use it for their delayed labels."""

    def memory(self, state: SessionState) -> dict[str, Any]:
        mem = state.detector_state.get(self.name)
        if mem is None:
            mem = state.detector_state[self.name] = {}
        return mem  # type: ignore[no-any-return]

    def signal(self, state: SessionState, time: float, start: float, step: int | None = None,
               **evidence: Any) -> Signal:
        return Signal(type=self.name, session_id=state.session_id, time=time, start=start,
                      step=step, evidence=evidence)
