"""The detectors frictionwatch runs by default, in one place for the worker and the backtest."""

from __future__ import annotations

from typing import Any

from detectors.base import BaseDetector

__all__ = ["default_detectors"]


def default_detectors(**params: Any) -> list[BaseDetector]:
    """Every detector with its documented defaults; ``params`` maps a detector name to its
    keyword overrides, e.g. ``{"rage_click": {"min_clicks": 4}}``."""
    return []
