"""Click friction: rage clicks, dead clicks and error clicks.

Each detector is a small pure class (``detectors.base.BaseDetector``) whose ``name`` is the
friction type the simulator's truth uses, so a backtest can match signals to truth by type and
session. Per-session memory lives in ``state.detector_state[name]`` as short lists of numbers and
strings (JSON-able, bounded); ``update`` costs a few microseconds per event.

==================  ===================================================================
rage_click          >= 3 clicks within 1 s, pairwise within 30 px: one signal per burst
                    (none on +/- steppers; on text, >= 4: a triple click selects)
dead_click          the client SDK's dead-click report, or silence for 1 s after a click on
                    an element whose silent clicks SDKs report as dead
error_click         a click followed by a JS error within 1 s
==================  ===================================================================

>>> from detectors.events import Click, JsError
>>> from detectors.session import SessionProcessor
>>> proc = SessionProcessor([RageClickDetector(), ErrorClickDetector()])
>>> clicks = [Click(id=str(i), time=10 + i / 10, session_id="s", x=100, y=200, target="#pay")
...           for i in range(5)]
>>> state, signals = proc.apply(None, clicks)
>>> [(s.type, s.start, s.time, s.evidence["clicks"]) for s in signals]
[('rage_click', 10.0, 10.2, 3)]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from detectors import events as ev
from detectors.base import BaseDetector, Signal
from detectors.noise import IgnoreList, click_kind

if TYPE_CHECKING:
    from detectors.session import SessionState

__all__ = ["DeadClickDetector", "ErrorClickDetector", "RageClickDetector"]

#: Element kinds on which a double or triple click selects text (``detectors.noise``).
_SELECTABLE = frozenset({"text", "editable"})


class RageClickDetector(BaseDetector):
    """Rage clicks: ``count`` or more clicks within ``window_s`` seconds, all within
    ``radius_px`` of each other. One signal per burst: raised by the click that completes
    the threshold; later clicks that continue the burst (each within ``window_s`` of the
    previous one and ``radius_px`` of the completing click) are part of it.

    Parameters
    ----------
    count
        Clicks that make a burst. Default 3: posthog-js ``RAGE_CLICK_CLICK_COUNT = 3``
        (``src/extensions/rageclick.ts``; newer versions make it configurable).
    window_s
        Seconds from the first to the last click of the burst. Default 1.0: posthog-js
        ``RAGE_CLICK_TIMEOUT_MS = 1000``. posthog-js chains clicks (each within 1 s of the
        previous one); here the whole burst must fit in the window, as the issue states it.
    radius_px
        Greatest distance (Euclidean, CSS px) between any two clicks of the burst. Default 30:
        posthog-js ``RAGE_CLICK_THRESHOLD_PX = 30`` (which measures |dx| + |dy| to the previous
        click).

    selection_clicks
        Bursts of up to this many clicks on text (an element holding text that does nothing
        when clicked, such as ``p`` or ``span``, or a text-editing surface: ``textarea``,
        text-like ``input``, ``[contenteditable]``) are text selection, not rage: a double
        click selects a word, a triple click the paragraph. Default 3; 0: off. posthog-js
        (``rageclick.ignore_text_selection``, 1.382 and later) drops every burst on an editing
        surface; here a fourth click is rage wherever it lands, since nothing selects more.
    ignore_steppers
        Ignore bursts on +/- quantity steppers (``detectors.noise.click_kind``), which are
        built to be clicked repeatedly, as posthog-js does (``"+"`` and ``"-"`` in its
        ``rageclick.content_ignorelist``). Default True.
    ignore
        Elements and pages whose clicks are not counted at all
        (``detectors.noise.IgnoreList``, or its ``{"selectors", "paths", "ids"}`` form).

    Evidence: ``target``, ``clicks`` (at the time of the signal), ``x``/``y`` of the first
    click, ``first`` and ``last`` click times. ``Signal.start`` is the first click,
    ``Signal.time`` the click that completed the threshold.

    Memory: ``state.detector_state["rage_click"]``, at most ``max(count - 1,
    selection_clicks)`` recent clicks as one
    flat list ``[t, x, y, t, x, y]`` (a list per click and a dict around them cost a session
    about 250 bytes more: bench/session_memory.py); ``["rage_click.b"]``, the burst in progress
    ``[last click time, x, y]`` after a signal.

    >>> from detectors.events import Click
    >>> from detectors.session import SessionState
    >>> det, s = RageClickDetector(), SessionState(session_id="s")
    >>> out = [det.update(s, Click(id=str(i), time=t, session_id="s", x=10 + i, y=10,
    ...                            target="button#pay"))
    ...        for i, t in enumerate([1.0, 1.3, 1.6, 1.8, 5.0])]
    >>> [len(o) for o in out]
    [0, 0, 1, 0, 0]
    >>> out[2][0].evidence
    {'target': 'button#pay', 'clicks': 3, 'x': 10, 'y': 10, 'first': 1.0, 'last': 1.6}
    >>> det.update(s, Click(id="x", time=6.5, session_id="s", x=300, y=10))  # one, far away
    ()
    >>> triple = [det.update(s, Click(id=f"t{i}", time=9 + i / 10, session_id="s", x=50, y=50,
    ...                               target="p.description")) for i in range(4)]
    >>> [len(o) for o in triple]  # a triple click selects the paragraph; a fourth is rage
    [0, 0, 0, 1]
    >>> [len(det.update(s, Click(id=f"q{i}", time=20 + i / 5, session_id="s", x=80, y=80,
    ...                          target="button.qty-plus"))) for i in range(6)]
    [0, 0, 0, 0, 0, 0]
    """

    name = "rage_click"
    handles: ClassVar[tuple[type, ...]] = (ev.Click,)

    def __init__(self, count: int = 3, window_s: float = 1.0, radius_px: float = 30.0,
                 selection_clicks: int = 3, ignore_steppers: bool = True,
                 ignore: IgnoreList | Mapping[str, Any] | None = None) -> None:
        if count < 2:
            raise ValueError("count must be >= 2")
        if window_s <= 0 or radius_px <= 0:
            raise ValueError("window_s and radius_px must be > 0")
        if selection_clicks < 0:
            raise ValueError("selection_clicks must be >= 0")
        self.count = count
        self.window_s = window_s
        self.radius_px = radius_px
        self.selection_clicks = selection_clicks
        self.ignore_steppers = ignore_steppers
        self.ignore = IgnoreList.from_spec(ignore)
        self._r2 = radius_px * radius_px
        # Clicks remembered: enough to make a burst, or to see one go past a triple click.
        self._keep = max(count - 1, selection_clicks)

    def update(self, state: SessionState, event: Any) -> Sequence[Signal]:
        ignore = self.ignore
        if ignore is not None and ignore.matches(event.target, event.url or state.page):
            return ()
        memory = state.detector_state
        recent = memory.get("rage_click")
        if type(recent) is dict:  # stored before the flat form
            recent = _flat_rage_memory(memory, recent)
        t, x, y = event.time, event.x, event.y
        if x is None or y is None:
            return self._by_target(state, event)
        r2, window = self._r2, self.window_s
        burst = memory.get("rage_click.b")
        if burst is not None:
            dx, dy = x - burst[1], y - burst[2]
            if 0.0 <= t - burst[0] <= window and dx * dx + dy * dy <= r2:
                burst[0] = t  # the burst goes on: no new signal
                return ()
            del memory["rage_click.b"]
        if not recent or not 0.0 <= t - recent[-3] <= window:
            memory["rage_click"] = [t, x, y]  # the common case: no click just before this one
            return ()
        kept: list[Any] = []
        for i in range(0, len(recent), 3):
            ct, cx, cy = recent[i], recent[i + 1], recent[i + 2]
            dx, dy = x - cx, y - cy
            if 0.0 <= t - ct <= window and dx * dx + dy * dy <= r2:
                kept += (ct, cx, cy)
        clicks = len(kept) // 3 + 1
        if clicks >= self.count:
            why = self._not_rage(event, clicks)
            if why == "stepper":
                memory["rage_click"] = []
                memory["rage_click.b"] = [t, x, y]  # the taps that follow are the same
                return ()
            if why == "selection":
                kept += (t, x, y)
                memory["rage_click"] = kept[-3 * self._keep:]
                return ()
            memory["rage_click"] = []
            memory["rage_click.b"] = [t, x, y]
            return [Signal(type="rage_click", session_id=state.session_id, time=t,
                           start=kept[0], step=state.checkout_step or None,
                           evidence={"target": event.target, "clicks": clicks,
                                     "x": kept[1], "y": kept[2], "first": kept[0],
                                     "last": t})]
        kept += (t, x, y)
        memory["rage_click"] = kept[-3 * self._keep:]
        return ()

    def _not_rage(self, event: Any, clicks: int) -> str | None:
        """Why a burst of ``clicks`` on this element is not rage: "stepper" (taps on a +/-
        quantity stepper: the burst goes on), "selection" (a double or triple click on text),
        or None: it is. Decided only once a burst forms (rare); the element's kind is cached
        per target (``detectors.noise.click_kind``)."""
        kind = click_kind(event.target, event.text)
        if kind == "stepper" and self.ignore_steppers:
            return "stepper"
        if kind in _SELECTABLE and clicks <= self.selection_clicks:
            return "selection"
        return None

    def _by_target(self, state: SessionState, event: Any) -> Sequence[Signal]:
        """A click whose source gives no position (Snowplow ``link_click``, PostHog
        ``$autocapture``): the same element stands in for "within ``radius_px``", as an
        element is smaller than the radius more often than not. A click on no named element
        is never part of a burst. Memory: ``["rage_click.t"]`` as ``[t, target, ...]``,
        ``["rage_click.tb"]`` the burst in progress ``[last click time, target]``."""
        target, t, window = event.target, event.time, self.window_s
        if target is None:
            return ()
        memory = state.detector_state
        burst = memory.get("rage_click.tb")
        if burst is not None:
            if 0.0 <= t - burst[0] <= window and burst[1] == target:
                burst[0] = t
                return ()
            del memory["rage_click.tb"]
        recent = memory.get("rage_click.t") or []
        kept = [v for i in range(0, len(recent), 2)
                if recent[i + 1] == target and 0.0 <= t - recent[i] <= window
                for v in recent[i:i + 2]]
        clicks = len(kept) // 2 + 1
        if clicks >= self.count:
            why = self._not_rage(event, clicks)
            if why == "stepper":
                memory["rage_click.t"] = []
                memory["rage_click.tb"] = [t, target]
                return ()
            if why == "selection":
                memory["rage_click.t"] = [*kept, t, target][-2 * self._keep:]
                return ()
            memory["rage_click.t"] = []
            memory["rage_click.tb"] = [t, target]
            return [Signal(type="rage_click", session_id=state.session_id, time=t,
                           start=kept[0], step=state.checkout_step or None,
                           evidence={"target": target, "clicks": clicks,
                                     "x": None, "y": None, "first": kept[0], "last": t})]
        memory["rage_click.t"] = [*kept, t, target][-2 * self._keep:]
        return ()


def _flat_rage_memory(memory: dict[str, Any], old: dict[str, Any]) -> list[Any]:
    """A rage-click memory stored as ``{"r": [[t, x, y], ...], "b": [t, x, y]}`` (before the
    flat form) in the flat form, in place; its recent clicks returned."""
    recent = [v for click in old.get("r") or () for v in click]
    memory["rage_click"] = recent
    if old.get("b") is not None:
        memory["rage_click.b"] = old["b"]
    return recent


class DeadClickDetector(BaseDetector):
    """Dead clicks: a click that produced no navigation, DOM change or request.

    Two ways to know, one signal per click either way:

    - **sdk**: the client SDK says so (a canonical ``DeadClick`` event, from Segment's or
      PostHog's dead-click events). Flagged at once; ``start`` is the click it reports (the
      session's last click on the same target within ``report_within_s``), else the report.
    - **silence**: no event of any kind in the session within ``silence_s`` after the click
      (a ``due``/``tick`` deadline). Silence alone is common after ordinary clicks (opening a
      size list, a zoom, a tab: DOM changes no analytics event shows) and before people read
      or leave, so silence is flagged only on elements where silence means dead: a selector
      in ``expect_response``, or one whose silent clicks client SDKs report as dead at least
      ``min_dead_share`` of the time (learned online across sessions, after at least
      ``min_reports`` reports). Sessions whose SDK reports dead clicks thus teach the
      detector which elements are broken, and it finds them in sessions whose SDK cannot.

    Only clicks on such elements get a deadline (decided at the click). Whether any other
    click was silent is learned when the session's next event arrives (the detector
    ``follows`` every web event while it has something pending), which costs a lookup
    instead of a timer per click; a session that ends on a click teaches nothing about it.

    No double count: a click flagged by silence and then reported by the SDK (reports come
    about 1-1.5 s after the click) gives one signal; the report is absorbed. A click that
    follows another click within ``silence_s`` is a repeat (a rage burst's territory) and is
    not a silence candidate; the earlier click got a response (the click).

    Parameters
    ----------
    silence_s
        Seconds without any event after a click. Default 1.0: the issue's "nothing within 1 s";
        PostHog's dead-click autocapture waits 2.5 s for a DOM mutation, scroll or selection
        change, which an analytics stream cannot see, so silence here is only a candidate.
    report_within_s
        Longest delay from a click to the SDK's report of it. Default 3.0 (PostHog waits
        2.5 s before deciding; the report follows).
    min_dead_share
        Share of an element's silent clicks that SDKs report as dead above which silence on it
        is flagged. Default 0.3: where SDKs report, nearly every silent click on a broken
        element is reported, while on a working element almost none is; 0.3 leaves room for
        a minority of sessions whose SDK reports.
    min_reports
        SDK reports on an element before its silence is trusted. Default 3.
    expect_response
        Selectors that always send an event when they work (navigation, a request, a cart
        update): silence after them is always a dead click. Default none.
    max_targets
        Elements whose statistics are kept (the oldest dropped first). Default 1,000.
    max_silent
        When an element's silent clicks reach this count both counts are halved, so the
        share follows the last few hundred clicks (a fixed element stops being flagged).
        Default 400.
    ignore
        Elements and pages whose clicks and dead-click reports are not counted
        (``detectors.noise.IgnoreList``), as posthog-js's
        ``capture_dead_clicks.css_selector_ignorelist``. An ignored click still answers a
        pending one, as any other event does.

    Evidence: ``target``, ``x``/``y``, ``click_time`` and ``detected`` ("sdk" or "silence").

    Memory: ``state.detector_state["dead_click"]``, the session's last click while no other
    event has followed it, ``[t, x, y, target, deadline, candidate]`` (deadline 1 when
    silence on its element is flagged; candidate 0 for a repeat), so that the detector
    follows other events only then; ``["dead_click.last"]``, the last silent or reported
    click ``[t, target, flagged]``. Learned element statistics live on the detector (shared
    by the sessions a worker handles), not in the session state.

    >>> from detectors.events import Click, DeadClick, PageView
    >>> from detectors.session import SessionProcessor
    >>> proc = SessionProcessor([DeadClickDetector(expect_response=["button#pay"])])
    >>> s, out = proc.apply(None, [
    ...     Click(id="1", time=10.0, session_id="s", x=5, y=5, target="button#pay"),
    ...     PageView(id="2", time=10.4, session_id="s"),        # it worked
    ...     Click(id="3", time=20.0, session_id="s", x=5, y=5, target="button#pay")])
    >>> out, proc.next_due(s)
    ([], 21.0)
    >>> [(x.start, x.time, x.evidence["detected"]) for x in proc.advance(s, 22.0)]
    [(20.0, 21.0, 'silence')]
    >>> _, out = proc.apply(s, [DeadClick(id="4", time=21.2, session_id="s", x=5, y=5,
    ...                                   target="button#pay")])
    >>> out  # the SDK's report of the same click: already flagged
    []
    """

    name = "dead_click"
    handles: ClassVar[tuple[type, ...]] = (ev.Click, ev.DeadClick)
    #: Any other web event is the response that makes a pending click not dead.
    follows: ClassVar[tuple[type, ...]] = tuple(
        t for t in ev.EVENT_TYPES.values()
        if t not in (ev.Click, ev.DeadClick, *ev.SUPPORT_EVENT_TYPES))

    def __init__(
        self,
        silence_s: float = 1.0,
        report_within_s: float = 3.0,
        min_dead_share: float = 0.3,
        min_reports: int = 3,
        expect_response: Iterable[str] = (),
        max_targets: int = 1000,
        max_silent: int = 400,
        ignore: IgnoreList | Mapping[str, Any] | None = None,
    ) -> None:
        if silence_s <= 0 or report_within_s <= 0:
            raise ValueError("silence_s and report_within_s must be > 0")
        if not 0.0 < min_dead_share <= 1.0:
            raise ValueError("min_dead_share must be within (0, 1]")
        if min_reports < 1 or max_targets < 1 or max_silent < 2:
            raise ValueError("min_reports, max_targets must be >= 1 and max_silent >= 2")
        self.silence_s = silence_s
        self.report_within_s = report_within_s
        self.min_dead_share = min_dead_share
        self.min_reports = min_reports
        self.expect_response = frozenset(expect_response)
        self.max_targets = max_targets
        self.max_silent = max_silent
        self.ignore = IgnoreList.from_spec(ignore)
        #: Learned: element -> [silent clicks, SDK dead-click reports] (insertion-ordered).
        self.targets: dict[str, list[float]] = {}
        # Elements whose silence is a dead click now: ``is_dead`` as a set, kept by
        # ``_learn``, so a click costs a set lookup rather than a call.
        self._dead: set[str] = set(self.expect_response)

    # -- learned element statistics -------------------------------------------------------

    def _learn(self, target: str | None, silent: int, reported: int) -> list[float] | None:
        if target is None:
            return None
        targets = self.targets
        st = targets.pop(target, None)  # re-inserted last: the dict stays in recency order
        if st is None:
            st = [0.0, 0.0]
            if len(targets) >= self.max_targets:
                oldest = next(iter(targets))
                del targets[oldest]
                if oldest not in self.expect_response:
                    self._dead.discard(oldest)
        targets[target] = st
        st[0] += silent
        st[1] += reported
        if st[0] >= self.max_silent:
            st[0] /= 2
            st[1] /= 2
        if target not in self.expect_response:
            if st[1] >= self.min_reports and st[1] >= self.min_dead_share * st[0]:
                self._dead.add(target)
            else:
                self._dead.discard(target)
        return st

    def is_dead(self, target: str | None) -> bool:
        """Whether silence after a click on ``target`` is a dead click."""
        return target in self._dead

    # -- the detector ---------------------------------------------------------------------

    def update(self, state: SessionState, event: Any) -> Sequence[Signal]:
        t = type(event)
        ignore = self.ignore
        is_click = t is ev.Click
        if ignore is not None and (is_click or t is ev.DeadClick) and \
                ignore.matches(event.target, event.url or state.page):
            if not is_click:
                return ()
            is_click = False  # not a candidate; still an answer to a pending click
        elif t is ev.DeadClick:
            return self._reported(state, event)
        memory = state.detector_state
        now = event.time
        repeat = False
        pending = memory.get("dead_click")
        if pending is not None:
            gap = now - pending[0]
            if gap >= self.silence_s:
                if pending[5]:  # a candidate, and silent (if it had a deadline: ticked)
                    self._learn(pending[3], 1, 0)
                    memory["dead_click.last"] = [pending[0], pending[3], 0]
            elif gap >= 0.0:
                repeat = is_click  # else: answered
            elif not is_click:
                return ()  # an event from before the click, late: no answer yet
            if not is_click:
                del memory["dead_click"]
                return ()
        elif not is_click:
            return ()
        target = event.target
        # A repeat (rage burst's territory) is pending too, only for the burst to go on.
        memory["dead_click"] = [now, event.x, event.y, target,
                                0 if repeat or target not in self._dead else 1,
                                0 if repeat else 1]
        return ()

    def _reported(self, state: SessionState, event: Any) -> Sequence[Signal]:
        memory = state.detector_state
        target, now, within = event.target, event.time, self.report_within_s
        pending = memory.get("dead_click")
        if pending is not None and 0.0 <= now - pending[0] <= within and \
                (target is None or pending[3] is None or target == pending[3]):
            del memory["dead_click"]  # reported before the silence deadline
            self._learn(pending[3], 1, 1)
            memory["dead_click.last"] = [pending[0], pending[3], 1]
            return [self._signal(state, now, pending[0], pending[1], pending[2], pending[3],
                                 "sdk")]
        last = memory.get("dead_click.last")
        if last is not None and 0.0 <= now - last[0] <= within and \
                (target is None or last[1] is None or target == last[1]):
            self._learn(last[1], 0, 1)  # its silence was counted already
            if last[2]:
                return ()  # already flagged (by silence, or an earlier report of it)
            last[2] = 1
            return [self._signal(state, now, last[0], event.x, event.y, last[1], "sdk")]
        self._learn(target, 1, 1)  # a report without its click
        memory["dead_click.last"] = [now, target, 1]
        return [self._signal(state, now, now, event.x, event.y, target, "sdk")]

    def due(self, state: SessionState) -> float | None:
        pending = state.detector_state.get("dead_click")
        if pending is None or not pending[4]:
            return None
        return pending[0] + self.silence_s  # type: ignore[no-any-return]

    def tick(self, state: SessionState, now: float) -> Sequence[Signal]:
        # Nothing came within the silence: any event would have answered the pending click.
        memory = state.detector_state
        pending = memory.get("dead_click")
        if pending is None or not pending[4]:
            return ()
        del memory["dead_click"]
        t, x, y, target = pending[:4]
        self._learn(target, 1, 0)
        dead = self.is_dead(target)
        memory["dead_click.last"] = [t, target, 1 if dead else 0]
        if not dead:
            return ()
        return [self._signal(state, t + self.silence_s, t, x, y, target, "silence")]

    def _signal(self, state: SessionState, time: float, start: float, x: Any, y: Any,
                target: str | None, detected: str) -> Signal:
        return Signal(type="dead_click", session_id=state.session_id, time=time, start=start,
                      step=state.checkout_step or None,
                      evidence={"target": target, "x": x, "y": y, "click_time": start,
                                "detected": detected})


class ErrorClickDetector(BaseDetector):
    """Error clicks: a click followed by a JavaScript error within ``window_s`` seconds.
    One signal per click, however many errors follow it.

    Parameters
    ----------
    window_s
        Seconds from the click to the error. Default 1.0 (the issue's threshold; session-replay
        tools such as FullStory and Contentsquare tie an error to the click just before it).
    ignore
        Elements and pages whose clicks are not tied to errors (``detectors.noise.IgnoreList``):
        the clicked element, and the page the session is on.

    Evidence: ``target``, ``message``, ``source``, ``delay`` (seconds from click to error).
    ``Signal.start`` is the click, ``Signal.time`` the error.

    The click is the session's last one (``SessionState.click_at``, ``click_target``).
    Memory: ``f``, the time of the last click flagged.

    >>> from detectors.events import Click, JsError
    >>> from detectors.session import SessionProcessor
    >>> proc = SessionProcessor([ErrorClickDetector()])
    >>> s, _ = proc.apply(None, [Click(id="1", time=5.0, session_id="s", x=1, y=1,
    ...                                target="button#pay")])
    >>> _, [sig] = proc.apply(s, [JsError(id="2", time=5.4, session_id="s", message="TypeError")])
    >>> sig.start, sig.time, sig.evidence["target"], sig.evidence["delay"]
    (5.0, 5.4, 'button#pay', 0.4)
    >>> proc.apply(s, [JsError(id="3", time=5.6, session_id="s", message="TypeError")])[1]
    []
    """

    name = "error_click"
    handles: ClassVar[tuple[type, ...]] = (ev.JsError,)

    def __init__(self, window_s: float = 1.0,
                 ignore: IgnoreList | Mapping[str, Any] | None = None) -> None:
        if window_s <= 0:
            raise ValueError("window_s must be > 0")
        self.window_s = window_s
        self.ignore = IgnoreList.from_spec(ignore)

    def update(self, state: SessionState, event: Any) -> Sequence[Signal]:
        clicked = state.click_at
        if clicked is None:
            return ()
        delay = event.time - clicked
        if not 0.0 <= delay <= self.window_s:
            return ()
        if self.ignore is not None and self.ignore.matches(state.click_target,
                                                           event.url or state.page):
            return ()
        mem = self.memory(state)
        if mem.get("f") == clicked:
            return ()
        mem["f"] = clicked
        return [Signal(type="error_click", session_id=state.session_id, time=event.time,
                       start=clicked, step=state.checkout_step or None,
                       evidence={"target": state.click_target, "message": event.message,
                                 "source": event.source, "delay": round(delay, 3)})]
