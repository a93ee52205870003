"""The web friction detectors in one place: ``WEB_DETECTORS`` and ``web_detectors()``.

``web_detectors(**overrides)`` builds one of each (rage, dead and error clicks; slow pages,
error pages, failed API calls) with their documented defaults; an override is keyed by the
detector's ``name`` (the friction type) and holds constructor arguments.

>>> [d.name for d in web_detectors()]
['rage_click', 'dead_click', 'error_click', 'slow_page', 'error_page', 'api_error']
>>> [d.count for d in web_detectors(rage_click={"count": 4}) if d.name == "rage_click"]
[4]
"""

from __future__ import annotations

from typing import Any

from detectors.base import BaseDetector
from detectors.clicks import DeadClickDetector, ErrorClickDetector, RageClickDetector
from detectors.pages import ApiErrorDetector, ErrorPageDetector, SlowPageDetector

__all__ = ["WEB_DETECTORS", "web_detectors"]

#: Detector classes, in the order ``web_detectors`` builds them.
WEB_DETECTORS: tuple[type[BaseDetector], ...] = (
    RageClickDetector,
    DeadClickDetector,
    ErrorClickDetector,
    SlowPageDetector,
    ErrorPageDetector,
    ApiErrorDetector,
)


def web_detectors(**overrides: dict[str, Any]) -> list[BaseDetector]:
    """One fresh instance of each web detector; ``overrides[name]`` are its constructor
    arguments (e.g. ``rage_click={"count": 4}``). An unknown name raises ``ValueError``."""
    names = {cls.name for cls in WEB_DETECTORS}
    unknown = set(overrides) - names
    if unknown:
        raise ValueError(f"unknown detectors {sorted(unknown)}; one of {sorted(names)}")
    return [cls(**overrides.get(cls.name, {})) for cls in WEB_DETECTORS]
