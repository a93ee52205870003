"""The thresholds the shared detectors learn across sessions, as one checkpointable model.

Two detectors learn from every session a worker sees, not from one session's state: the
checkout step stall learns each step's typical duration (``StepStall.durations``) and the
dead-click detector learns which elements are silent by design (``DeadClickDetector.targets``).
Neither lives in a session's stored state, so without a checkpoint a restarted worker, or one
that takes over partitions, starts from the defaults. ``LearnedThresholds`` gives them the
``checkpoint`` / ``restore`` / ``learned`` shape of the online models (``models.checkpoint``),
so the worker saves and shares them with the models.

>>> from detectors.catalog import default_detectors
>>> from detectors.session import SessionProcessor
>>> a = LearnedThresholds(SessionProcessor(default_detectors()).detectors)
>>> stall = next(d for d in a.detectors if d.name == "step_stall")
>>> for s in range(30):
...     stall.durations.learn_one(2, 40.0)
>>> b = LearnedThresholds(SessionProcessor(default_detectors()).detectors)
>>> b.learned, a.learned
(0, 30)
>>> b.restore(a.checkpoint())
>>> b.learned, round(next(d for d in b.detectors if d.name == "step_stall").threshold(2))
(30, 120)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from detectors.checkout import StepDurations, StepStall
from detectors.clicks import DeadClickDetector
from models import checkpoint

__all__ = ["LearnedThresholds"]


class LearnedThresholds:
    """Step durations and dead-element statistics of ``detectors`` (the processor's own
    instances: restoring changes what they detect)."""

    def __init__(self, detectors: Iterable[Any]) -> None:
        self.detectors = [d for d in detectors if isinstance(d, StepStall | DeadClickDetector)]
        self.rejected = 0

    @property
    def learned(self) -> int:
        """Examples behind the thresholds: step durations seen plus element clicks counted."""
        n = 0
        for d in self.detectors:
            if isinstance(d, StepStall):
                n += sum(int(v["n"]) for v in d.durations.to_dict()["steps"].values())
            else:
                n += int(sum(st[0] for st in d.targets.values()))
        return n

    def quality(self) -> dict[str, float]:
        return {}  # thresholds, not predictions: nothing to score

    def checkpoint(self) -> bytes:
        saved: dict[str, Any] = {}
        for d in self.detectors:
            if isinstance(d, StepStall):
                saved[d.name] = {"durations": d.durations.to_dict()}
            else:
                saved[d.name] = {"targets": {k: list(v) for k, v in d.targets.items()}}
        return checkpoint.dumps(saved)

    def restore(self, data: bytes) -> None:
        saved = checkpoint.loads(data)
        if not isinstance(saved, dict):
            raise checkpoint.CheckpointError("not a thresholds checkpoint")
        for d in self.detectors:
            mine = saved.get(d.name)
            if not isinstance(mine, dict):
                continue  # a detector the saving worker did not run: it starts fresh
            if isinstance(d, StepStall) and "durations" in mine:
                d.durations = StepDurations.from_dict(mine["durations"])
            elif isinstance(d, DeadClickDetector) and "targets" in mine:
                _load_targets(d, mine["targets"])


def _load_targets(d: DeadClickDetector, targets: dict[str, list[float]]) -> None:
    """Set the learned element statistics and the dead set derived from them (the rule of
    ``DeadClickDetector._learn``: enough reports, and a large enough share of the silences)."""
    d.targets = {str(k): [float(v[0]), float(v[1])] for k, v in
                 list(targets.items())[-d.max_targets:]}
    d._dead = set(d.expect_response) | {
        k for k, (silent, reported) in d.targets.items()
        if reported >= d.min_reports and reported >= d.min_dead_share * silent}
