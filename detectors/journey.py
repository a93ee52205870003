"""Journeys: the named steps of a funnel, and where each session is in one.

A ``Journey`` (retail checkout, B2B quote-to-renewal...) is an ordered list of ``JourneyStep``s.
A step is matched by a canonical event type (``"checkout_step_viewed"``), a checkout step number,
and/or the URL of the page the event happened on (a glob, ``url``, or a regular expression,
``url_regex``); every criterion given must hold. Journeys come from YAML
(``streams.journeys.load_journeys``), through ``Journey.from_dict``, which validates.

``JourneyTracker`` is a detector that raises nothing: it keeps each session's position in its
journey in the session's memory (``state.detector_state["journey"]``): current step, when it was
entered, seconds spent in each step so far, and how many moves went back. ``journey_position``
reads it for alerts.

>>> retail = Journey.from_dict({"name": "retail_checkout", "profile": "retail", "steps": [
...     {"name": "cart", "url": "*/cart"},
...     {"name": "shipping", "events": ["checkout_step_viewed"], "step": 2},
...     {"name": "payment", "events": ["checkout_step_viewed"], "step": 3},
... ]})
>>> from detectors.events import CheckoutStepViewed, PageView
>>> from detectors.session import SessionProcessor
>>> proc = SessionProcessor([JourneyTracker([retail])])
>>> state, signals = proc.apply(None, [
...     PageView(id="1", time=0.0, session_id="s", url="https://shop.example/cart"),
...     CheckoutStepViewed(id="2", time=30.0, session_id="s", step=2),
...     CheckoutStepViewed(id="3", time=90.0, session_id="s", step=3),
...     CheckoutStepViewed(id="4", time=100.0, session_id="s", step=2),
... ])
>>> signals
[]
>>> pos = journey_position(state)
>>> pos["journey"], pos["step_name"], pos["step"], pos["back_moves"], pos["time_in_steps"]
('retail_checkout', 'shipping', 2, 1, {'cart': 30.0, 'shipping': 60.0, 'payment': 10.0})
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from detectors.base import BaseDetector, Signal
from detectors.events import EVENT_TYPES, PageView

if TYPE_CHECKING:
    from detectors.funnel import Funnel
    from detectors.session import SessionState

__all__ = ["PROFILES", "Journey", "JourneyError", "JourneyStep", "JourneyTracker",
           "journey_position"]

#: Journey profiles: a consumer retail funnel, or a business-to-business sales cycle.
PROFILES = ("retail", "b2b")

_STEP_KEYS = {"name", "events", "step", "url", "url_regex"}
_JOURNEY_KEYS = {"name", "profile", "steps", "description"}


class JourneyError(ValueError):
    """A journey definition that cannot be used; the message says where and why."""


@dataclass(frozen=True)
class JourneyStep:
    """One step of a journey and how to recognise an event that puts a session in it."""

    name: str
    #: Canonical event type tags (``detectors.events.EVENT_TYPES``); empty: any type.
    events: tuple[str, ...] = ()
    #: Checkout step number the event must carry, for event types that carry one
    #: (``checkout_step_viewed``/``_completed``); other types in ``events`` are not filtered
    #: by it (so ``checkout_started`` can stand for step 1).
    step: int | None = None
    #: Glob on the event's page URL (or a page view's path), e.g. ``"*/cart"``.
    url: str | None = None
    #: Regular expression searched in the event's page URL (or a page view's path).
    url_regex: str | None = None
    _glob: re.Pattern[str] | None = field(default=None, repr=False, compare=False)
    _regex: re.Pattern[str] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.url is not None:
            object.__setattr__(self, "_glob", re.compile(fnmatch.translate(self.url)))
        if self.url_regex is not None:
            object.__setattr__(self, "_regex", re.compile(self.url_regex))

    def matches(self, event: Any) -> bool:
        """Whether ``event`` (already of one of ``events``) puts a session in this step."""
        if self.step is not None and getattr(event, "step", self.step) != self.step:
            return False
        if self._glob is None and self._regex is None:
            return True
        return _url_ok(self, event.url) or (
            type(event) is PageView and _url_ok(self, event.path))


def _url_ok(step: JourneyStep, url: str | None) -> bool:
    if url is None:
        return False
    if step._glob is not None and step._glob.match(url) is None:
        return False
    return step._regex is None or step._regex.search(url) is not None


@dataclass(frozen=True)
class Journey:
    """A named, ordered funnel. Build it with ``from_dict`` (validates) or directly."""

    name: str
    profile: str
    steps: tuple[JourneyStep, ...]
    description: str | None = None

    @property
    def step_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.steps)

    @classmethod
    def from_dict(cls, data: Any) -> Journey:
        """Validate and build; raises ``JourneyError`` naming the journey, step and field.

        >>> Journey.from_dict({"name": "j", "profile": "retail",
        ...                    "steps": [{"name": "pay", "events": ["payment"]}]})
        Traceback (most recent call last):
          ...
        detectors.journey.JourneyError: journey 'j' step 1 ('pay'): unknown event type 'payment'
        """
        if not isinstance(data, Mapping):
            raise JourneyError(f"a journey is a mapping, not {type(data).__name__}")
        name = data.get("name")
        if not isinstance(name, str) or not name.strip():
            raise JourneyError("journey without a name (a non-empty string)")
        where = f"journey {name!r}"
        unknown = set(data) - _JOURNEY_KEYS
        if unknown:
            raise JourneyError(f"{where}: unknown keys {sorted(unknown)}; "
                               f"known: {sorted(_JOURNEY_KEYS)}")
        profile = data.get("profile")
        if profile not in PROFILES:
            raise JourneyError(f"{where}: profile must be one of {list(PROFILES)}, "
                               f"not {profile!r}")
        desc = data.get("description")
        if desc is not None and not isinstance(desc, str):
            raise JourneyError(f"{where}: description must be a string")
        raw = data.get("steps")
        if not isinstance(raw, list) or not raw:
            raise JourneyError(f"{where}: steps must be a non-empty list")
        steps = tuple(_step_from_dict(where, i, s) for i, s in enumerate(raw, 1))
        seen: set[str] = set()
        for s in steps:
            if s.name in seen:
                raise JourneyError(f"{where}: step name {s.name!r} used twice")
            seen.add(s.name)
        return cls(name=name, profile=str(profile), steps=steps, description=desc)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "profile": self.profile, "steps": [
            {k: v for k, v in (("name", s.name), ("events", list(s.events) or None),
                               ("step", s.step), ("url", s.url), ("url_regex", s.url_regex))
             if v is not None}
            for s in self.steps]}
        if self.description is not None:
            out["description"] = self.description
        return out


def _step_from_dict(where: str, i: int, data: Any) -> JourneyStep:
    if not isinstance(data, Mapping):
        raise JourneyError(f"{where} step {i}: a step is a mapping, not {type(data).__name__}")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise JourneyError(f"{where} step {i}: needs a name (a non-empty string)")
    where = f"{where} step {i} ({name!r})"
    unknown = set(data) - _STEP_KEYS
    if unknown:
        raise JourneyError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(_STEP_KEYS)}")
    events = data.get("events", [])
    if isinstance(events, str):
        events = [events]
    if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
        raise JourneyError(f"{where}: events must be a list of event type names")
    for e in events:
        if e not in EVENT_TYPES:
            raise JourneyError(f"{where}: unknown event type {e!r}")
    step = data.get("step")
    if step is not None and (type(step) is not int or step < 0):
        raise JourneyError(f"{where}: step must be a checkout step number (int >= 0)")
    url, url_regex = data.get("url"), data.get("url_regex")
    for key, value in (("url", url), ("url_regex", url_regex)):
        if value is not None and (not isinstance(value, str) or not value):
            raise JourneyError(f"{where}: {key} must be a non-empty string")
    if url_regex is not None:
        try:
            re.compile(url_regex)
        except re.error as exc:
            raise JourneyError(f"{where}: url_regex {url_regex!r} is invalid: {exc}") from None
    if step is not None and not events:
        raise JourneyError(f"{where}: step needs events (e.g. [checkout_step_viewed])")
    if not events and step is None and url is None and url_regex is None:
        raise JourneyError(f"{where}: give at least one of events, step, url, url_regex")
    return JourneyStep(name=name, events=tuple(events), step=step, url=url, url_regex=url_regex)


#: Entries of the tracker's match cache (cleared when full): bounded memory.
_CACHE_SIZE = 4096


class JourneyTracker(BaseDetector):
    """Tracks each session's position in a journey; raises no signals.

    A session follows the journey of the first step it matches (journeys in the order given);
    after that only that journey's steps are considered. Entering a step before the current
    one counts as a move back. Memory (``state.detector_state["journey"]``): ``journey``,
    ``step`` (1-based index), ``step_name``, ``entered`` (event time), ``time_in`` (seconds
    per step name, closed visits), ``moves`` and ``back_moves`` counts, ``furthest`` (index of
    the furthest step entered). Bounded by the number of steps.

    Parameters
    ----------
    journeys
        The journeys to follow (a sequence, or the mapping ``load_journeys`` returns).
    funnel
        A ``detectors.funnel.Funnel`` told each time a session enters a step further on
        than it has been (``furthest`` in its memory): the journey's counts per window.

    Cost: event types no step names are not dispatched to it; for the others, one lookup in a
    bounded cache of (type, journey, URL, step, path) -> matched step, since URLs repeat.
    """

    name = "journey"

    def __init__(self, journeys: Iterable[Journey] | Mapping[str, Journey],
                 funnel: Funnel | None = None) -> None:
        js = list(journeys.values()) if isinstance(journeys, Mapping) else list(journeys)
        self.journeys = {j.name: j for j in js}
        self.funnel = funnel
        # Event class -> [(journey name, [(index, step)...])], only steps that can match it.
        self._candidates: dict[type, list[tuple[str, list[tuple[int, JourneyStep]]]]] = {}
        for cls in EVENT_TYPES.values():
            tag = cls.__struct_config__.tag  # type: ignore[attr-defined]
            per = []
            for j in js:
                steps = [(i, s) for i, s in enumerate(j.steps, 1) if not s.events
                         or tag in s.events]
                if steps:
                    per.append((j.name, steps))
            if per:
                self._candidates[cls] = per
        self.handles = tuple(self._candidates)  # type: ignore[misc]
        # Per class: 1 if it has a ``step``, 2 a ``path`` (a page view), else 0.
        self._fields = {cls: 1 if "step" in names else 2 if "path" in names else 0
                        for cls in self._candidates
                        for names in [cls.__struct_fields__]}  # type: ignore[attr-defined]
        self._cache: dict[tuple[Any, ...], tuple[str, int, str] | None] = {}

    def update(self, state: SessionState, event: Any) -> Sequence[Signal]:
        cls = type(event)
        mem = state.detector_state.get("journey")
        current = mem.get("journey") if mem else None
        # What an event matches depends only on these: cache it (URLs repeat a lot). Fields
        # are read by the class's known layout: getattr with a default on a missing field
        # raises and catches inside, which cost more than the rest of this method.
        fields = self._fields[cls]
        if fields == 0:
            key: tuple[Any, ...] = (cls, current, event.url)
        elif fields == 1:
            key = (cls, current, event.url, event.step)
        else:
            key = (cls, current, event.url, event.path)
        cache = self._cache
        if key in cache:
            hit = cache[key]
        else:
            hit = self._match(cls, event, current)
            if len(cache) >= _CACHE_SIZE:
                cache.clear()
            cache[key] = hit
        if hit is not None:
            self._enter(state, mem, hit[0], hit[1], hit[2], event)
        return ()

    def _match(self, cls: type, event: Any, current: str | None) -> tuple[str, int, str] | None:
        for jname, steps in self._candidates.get(cls, ()):
            if current is not None and jname != current:
                continue
            for i, s in steps:
                if s.matches(event):
                    return jname, i, s.name
        return None

    def _enter(self, state: SessionState, mem: dict[str, Any] | None, journey: str, index: int,
               step_name: str, event: Any) -> None:
        t = event.time
        if mem is None or "journey" not in mem:
            state.detector_state["journey"] = {
                "journey": journey, "step": index, "step_name": step_name, "entered": t,
                "time_in": {}, "moves": 0, "back_moves": 0, "furthest": index}
            if self.funnel is not None:
                self.funnel.entered(state, journey, index, step_name, None, event)
            return
        cur = mem["step"]
        if index == cur:
            return
        furthest = mem.get("furthest", cur)
        if index > furthest:
            mem["furthest"] = index
            if self.funnel is not None:
                passed = self.journeys[journey].steps[furthest - 1].name
                self.funnel.entered(state, journey, index, step_name, (furthest, passed), event)
        prev = mem["step_name"]
        spent = max(0.0, t - mem["entered"])
        time_in = mem["time_in"]
        time_in[prev] = round(time_in.get(prev, 0.0) + spent, 3)
        mem["moves"] += 1
        if index < cur:
            mem["back_moves"] += 1
        mem["step"], mem["step_name"], mem["entered"] = index, step_name, t


def journey_position(state: SessionState) -> dict[str, Any]:
    """Where the session is in its journey, for alerts: journey, step (1-based index),
    step_name, entered_at, seconds_in_step (to the session's last event), time_in_steps
    (seconds per step, the current one included), moves, back_moves. Empty: no journey yet."""
    mem = state.detector_state.get("journey")
    if not mem or "journey" not in mem:
        return {}
    in_step = max(0.0, state.last_time - mem["entered"])
    time_in = dict(mem["time_in"])
    name = mem["step_name"]
    time_in[name] = round(time_in.get(name, 0.0) + in_step, 3)
    return {"journey": mem["journey"], "step": mem["step"], "step_name": name,
            "entered_at": mem["entered"], "seconds_in_step": round(in_step, 3),
            "time_in_steps": time_in, "moves": mem["moves"], "back_moves": mem["back_moves"]}
