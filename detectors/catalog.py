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
from detectors.web import WEB_DETECTORS, web_detectors

__all__ = ["default_detectors"]


def default_detectors(
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    journeys: Iterable[Journey] | Mapping[str, Journey] | None = None,
    funnel: Funnel | None = None,
) -> list[BaseDetector]:
    """Every detector with its documented defaults. ``overrides`` maps a detector's name (its
    friction type) to constructor arguments, e.g. ``{"rage_click": {"count": 4}}``; with
    ``journeys`` (``streams.journeys.load_journeys()``) sessions' journey positions are
    tracked too, for alerts to name, and counted window by window in ``funnel`` if given."""
    overrides = dict(overrides or {})
    web_names = {c.name for c in WEB_DETECTORS}
    web = {k: dict(v) for k, v in overrides.items() if k in web_names}
    checkout = {k: v for k, v in overrides.items() if k not in web_names}
    found: list[BaseDetector] = [*web_detectors(**web), *checkout_detectors(**checkout)]
    if journeys is not None:
        found.append(JourneyTracker(journeys, funnel=funnel))
    return found
