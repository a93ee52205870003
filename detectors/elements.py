"""Per-element click friction: which elements people meet dead, rage and error clicks on, per
journey step (or page, outside any journey), in bounded memory.

A session counts once per element, friction type and place (``record_hits``), so one shopper
hammering a broken button is one session, not twenty signals: what "many people hit the same
broken element" means. The hits feed three things:

- the funnel's windows (``detectors.funnel.StepBucket.elements``), from which
  ``detectors.incidents`` opens an element-level incident when many sessions hit the same
  element at a step, and the worker counts them in Prometheus with bounded labels
  (``LabelSlots``: a step's top elements get a label value of their own, the rest "other");
- the session's outcome (``elements``), from which the report ranks elements (``TopElements``).

``TopElements`` is a space-saving counter per place (Metwally, Agrawal and El Abbadi 2005,
"Efficient computation of frequent and top-k elements in data streams"): ``capacity``
elements per place, a newcomer taking the place of the least counted one and inheriting its
count as an overestimate (``error``), so the truly frequent elements are always kept.

>>> from detectors.base import Signal
>>> from detectors.session import SessionState
>>> s = SessionState(session_id="s", page="/p/1")
>>> sig = Signal(type="dead_click", session_id="s", time=1.0, start=1.0,
...              evidence={"target": "button.add-to-cart"})
>>> record_hits(s, [sig, sig])  # the same element twice: one hit
[('dead_click', '/p/1', 'button.add-to-cart')]
>>> top = TopElements(capacity=2)
>>> for place, element, kind in [("/p/1", "a", "dead_click"), ("/p/1", "b", "rage_click"),
...                              ("/p/1", "a", "rage_click"), ("/p/1", "c", "dead_click")]:
...     top.add(place, element, kind)
>>> [(r.element, r.sessions, r.counts) for r in top.top(3)]
[('a', 2, {'dead_click': 1, 'rage_click': 1}), ('c', 2, {'dead_click': 1})]
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from detectors.noise import url_path

if TYPE_CHECKING:
    from detectors.base import Signal
    from detectors.session import SessionState

__all__ = ["CLICK_FRICTION", "OTHER", "ElementRow", "LabelSlots", "TopElements", "element_of",
           "place_of", "record_hits"]

#: The friction types that name an element.
CLICK_FRICTION = ("dead_click", "rage_click", "error_click")
#: Label value and key of the elements that get none of their own.
OTHER = "other"
#: Longest element name kept: selectors longer than this are cut (they stay distinct in
#: practice; a session's state and a window's record must stay small).
MAX_ELEMENT_CHARS = 200
#: Element hits a session remembers (the oldest forgotten): a session meets click friction on
#: one or two elements; eight bound the state whatever it does.
MAX_SESSION_HITS = 8


def element_of(sig: Signal) -> str | None:
    """The element a click-friction signal names (cut to ``MAX_ELEMENT_CHARS``), else None."""
    if sig.type not in CLICK_FRICTION:
        return None
    target = sig.evidence.get("target")
    if not target or not isinstance(target, str):
        return None
    return target[:MAX_ELEMENT_CHARS]


def place_of(state: SessionState) -> str:
    """Where the session is: ``journey/step`` in a journey, else the page's path ("none":
    unknown)."""
    mem = state.detector_state.get("journey")
    if mem and "journey" in mem:
        return f"{mem['journey']}/{mem['step_name']}"
    return (url_path(state.page) or "none")[:MAX_ELEMENT_CHARS]


def record_hits(state: SessionState, signals: Iterable[Signal]) -> list[tuple[str, str, str]]:
    """The session's first hits among ``signals``: ``(friction type, place, element)`` not
    recorded for it before. Kept in ``state.detector_state["elements"]`` (at most
    ``MAX_SESSION_HITS``), which the session's outcome reports."""
    new: list[tuple[str, str, str]] = []
    mem: list[list[str]] | None = None
    place: str | None = None
    for sig in signals:
        element = element_of(sig)
        if element is None:
            continue
        if mem is None:
            mem = state.detector_state.setdefault("elements", [])
            place = place_of(state)
        assert place is not None
        hit = [sig.type, place, element]
        if hit in mem:
            continue
        mem.append(hit)
        del mem[:-MAX_SESSION_HITS]
        new.append((sig.type, place, element))
    return new


@dataclass
class ElementRow:
    """One element at one place: sessions that met click friction on it (an overestimate by at
    most ``error``), and the part of them known by friction type."""

    place: str
    element: str
    sessions: int
    error: int
    counts: dict[str, int] = field(default_factory=dict)


class TopElements:
    """The elements with most click-friction sessions, per place, in bounded memory
    (space-saving: see the module).

    Parameters
    ----------
    capacity
        Elements kept per place. Default 50: a page has a few elements people fight with; 50
        keeps the top ten exact unless traffic spreads over hundreds of elements.
    max_places
        Places kept (the least recently hit dropped first). Default 500: journey steps and
        the pages of a shop's templates; many more paths (one per product) rotate.
    """

    def __init__(self, capacity: int = 50, max_places: int = 500) -> None:
        if capacity < 1 or max_places < 1:
            raise ValueError("capacity and max_places must be >= 1")
        self.capacity = capacity
        self.max_places = max_places
        self.places: dict[str, dict[str, ElementRow]] = {}

    def add(self, place: str, element: str, kind: str, n: int = 1) -> None:
        rows = self.places.pop(place, None)  # re-inserted last: recency order
        if rows is None:
            rows = {}
            if len(self.places) >= self.max_places:
                del self.places[next(iter(self.places))]
        self.places[place] = rows
        row = rows.get(element)
        if row is None:
            base = 0
            if len(rows) >= self.capacity:
                least = min(rows.values(), key=lambda r: r.sessions)
                del rows[least.element]
                base = least.sessions
            row = rows[element] = ElementRow(place, element, base, base)
        row.sessions += n
        row.counts[kind] = row.counts.get(kind, 0) + n

    def top(self, n: int = 10, place: str | None = None) -> list[ElementRow]:
        """The ``n`` rows with most sessions (of one place, or all), most first."""
        rows = (self.places.get(place, {}).values() if place is not None
                else (r for rows in self.places.values() for r in rows.values()))
        return sorted(rows, key=lambda r: (-r.sessions, r.place, r.element))[:n]

    def rank(self, place: str, element: str, n: int) -> bool:
        """Whether ``element`` is among the ``n`` most counted of ``place``."""
        rows = self.places.get(place)
        if not rows or element not in rows:
            return False
        mine = rows[element].sessions
        return sum(r.sessions > mine for r in rows.values()) < n


class LabelSlots:
    """Which elements get a Prometheus label value of their own: per place, an element among
    its ``top`` most counted (``TopElements``) while the place has fewer than ``slots``
    labelled; every other is ``OTHER``. A label once given is kept (a counter's series cannot
    be taken back without losing its count), so a place has at most ``slots + 1`` values
    per friction type.

    >>> slots = LabelSlots(top=1, slots=2)
    >>> [slots.label("s", e, "dead_click") for e in ["a", "a", "b", "b", "b", "c", "a"]]
    ['a', 'a', 'other', 'b', 'b', 'other', 'a']
    """

    def __init__(self, top: int = 10, slots: int = 20, capacity: int = 50,
                 max_places: int = 500) -> None:
        if top < 1 or slots < top:
            raise ValueError("top must be >= 1 and slots >= top")
        self.top = top
        self.slots = slots
        self.counts = TopElements(capacity, max_places)
        self.given: dict[str, set[str]] = {}

    def label(self, place: str, element: str, kind: str, n: int = 1) -> str:
        """Count ``n`` sessions on ``element`` at ``place``; its label value."""
        if element == OTHER:
            return OTHER
        self.counts.add(place, element, kind, n)
        given = self.given.setdefault(place, set())
        if element in given:
            return element
        if len(given) < self.slots and self.counts.rank(place, element, self.top):
            given.add(element)
            return element
        return OTHER


def bump_element(counts: dict[str, int], kind: str, element: str, limit: int) -> None:
    """Count a session on ``element`` in a window's ``kind|element`` counts, at most
    ``limit`` distinct keys (the rest under ``kind|other``)."""
    key = f"{kind}|{element}"
    if key not in counts and len(counts) >= limit:
        key = f"{kind}|{OTHER}"
    counts[key] = counts.get(key, 0) + 1


def split_key(key: str) -> tuple[str, str]:
    """``kind|element`` as ``(kind, element)``."""
    kind, _, element = key.partition("|")
    return kind, element


def outcome_rows(outcomes: Iterable[dict[str, Any]], capacity: int = 50) -> TopElements:
    """The element hits of session outcomes (``elements``), counted per place."""
    top = TopElements(capacity=capacity)
    for o in outcomes:
        for hit in o.get("elements") or ():
            if isinstance(hit, (list, tuple)) and len(hit) == 3:
                kind, place, element = (str(x) for x in hit)
                top.add(place, element, kind)
    return top
