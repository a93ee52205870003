"""The detectors frictionwatch runs by default, in one place for the worker and the backtest.

>>> [d.name for d in default_detectors()][:3]
['rage_click', 'dead_click', 'error_click']
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from detectors.base import BaseDetector
from detectors.checkout import checkout_detectors
from detectors.funnel import Funnel
from detectors.journey import Journey, JourneyTracker
from detectors.pages import PageScope
from detectors.web import WEB_DETECTORS, web_detectors

__all__ = ["default_detectors"]


def default_detectors(
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    journeys: Iterable[Journey] | Mapping[str, Journey] | None = None,
    funnel: Funnel | None = None,
    friction_paths: Iterable[str] | None = None,
) -> list[BaseDetector]:
    """Every detector with its documented defaults. ``overrides`` maps a detector's name (its
    friction type) to constructor arguments, e.g. ``{"rage_click": {"count": 4}}``; with
    ``journeys`` (``streams.journeys.load_journeys()``) sessions' journey positions are
    tracked too, for alerts to name, and counted window by window in ``funnel`` if given.

    With ``journeys`` or ``friction_paths`` (URL globs), failing pages (error and slow pages,
    failed API calls) are the customer's friction only in checkout, on the journeys' pages and
    on those paths (``detectors.pages.PageScope``); elsewhere they are the site's health."""
    overrides = dict(overrides or {})
    web_names = {c.name for c in WEB_DETECTORS}
    web = {k: dict(v) for k, v in overrides.items() if k in web_names}
    if journeys is not None or friction_paths is not None:
        listed = list(journeys.values() if isinstance(journeys, Mapping) else journeys or ())
        steps = [step for j in listed for step in j.steps]
        journeys = listed if journeys is not None else None  # an iterator is used up
        scope = PageScope(globs=[*(s.url for s in steps if s.url), *(friction_paths or ())],
                          regexes=[s.url_regex for s in steps if s.url_regex])
        for name in ("slow_page", "error_page", "api_error"):
            web.setdefault(name, {}).setdefault("scope", scope)
    checkout = {k: v for k, v in overrides.items() if k not in web_names}
    found: list[BaseDetector] = [*web_detectors(**web), *checkout_detectors(**checkout)]
    if journeys is not None:
        found.append(JourneyTracker(journeys, funnel=funnel))
    return found
