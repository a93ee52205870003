"""Detection quality against ground truth: precision, recall, F1 and time-to-detect per type.

A signal is a true positive when the same session has a truth record of the same friction
type whose window it falls in: ``truth.start - early <= signal.time <= truth.end + late``.
Each truth record is detected at most once (by its earliest matching signal); extra signals
matching an already detected record still count as correct (they are about real friction),
so precision is "signals that point at real friction" and recall "frictions that were
flagged". Time to detect is ``signal.time - truth.start`` of the first matching signal.

>>> from detectors.base import Signal
>>> truth = [Truth("s1", "rage_click", 10.0, 10.8), Truth("s2", "rage_click", 50.0, 50.5)]
>>> sigs = [Signal(type="rage_click", session_id="s1", time=10.6, start=10.0),
...         Signal(type="rage_click", session_id="s3", time=70.0, start=69.5)]
>>> row = evaluate(sigs, truth)["rage_click"]
>>> row.precision, row.recall, row.median_ttd
(0.5, 0.5, 0.6)
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from detectors.base import Signal

__all__ = ["Quality", "Truth", "evaluate", "split_truth"]


@dataclass(frozen=True, slots=True)
class Truth:
    """One injected friction (from the simulator's ground-truth file)."""

    session_id: str
    friction: str
    start: float
    end: float
    #: When it exists by its definition (e.g. the 2nd decline); None: ``start``. Time to
    #: detect is measured from it: a detector cannot flag a repetition before it repeats.
    onset: float | None = None


@dataclass
class Quality:
    """Counts and figures for one friction type."""

    signals: int = 0
    matched_signals: int = 0
    truths: int = 0
    detected: int = 0
    ttd: list[float] = field(default_factory=list)
    #: Time from the first piece of evidence (``start``), for comparison.
    ttd_start: list[float] = field(default_factory=list)

    @property
    def precision(self) -> float:
        return self.matched_signals / self.signals if self.signals else 0.0

    @property
    def recall(self) -> float:
        return self.detected / self.truths if self.truths else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def median_ttd(self) -> float | None:
        return round(statistics.median(self.ttd), 3) if self.ttd else None

    @property
    def median_ttd_start(self) -> float | None:
        return round(statistics.median(self.ttd_start), 3) if self.ttd_start else None


def split_truth(records: Iterable[Any]) -> tuple[list[Truth], list[Truth]]:
    """Ground-truth frictions (anything with ``session_id``, ``friction``, ``start``, ``end``,
    ``onset``, ``partial`` and ``truncated``, like the simulator's) as (to score, to ignore):
    those begun before the data's window or cut off by its end have incomplete evidence."""
    score: list[Truth] = []
    ignore: list[Truth] = []
    for r in records:
        t = Truth(r.session_id, r.friction, r.start, r.end, r.onset or None)
        (ignore if r.partial or r.truncated else score).append(t)
    return score, ignore


def evaluate(signals: Iterable[Signal], truth: Iterable[Truth], early: float = 1.0,
             late: float = 5.0, ignore: Iterable[Truth] = ()) -> dict[str, Quality]:
    """Quality per friction type (every type seen in signals or truth).

    ``ignore``: frictions left out of the score (e.g. begun before the data's window, so
    their evidence is incomplete); signals about them count neither way.
    """
    skip: dict[tuple[str, str], list[Truth]] = defaultdict(list)
    for t in ignore:
        skip[(t.session_id, t.friction)].append(t)
    by_key: dict[tuple[str, str], list[Truth]] = defaultdict(list)
    rows: dict[str, Quality] = defaultdict(Quality)
    for t in truth:
        by_key[(t.session_id, t.friction)].append(t)
        rows[t.friction].truths += 1
    first_hit: dict[Truth, float] = {}
    for s in sorted(signals, key=lambda s: s.time):
        if any(t.start - early <= s.time <= t.end + late
               for t in skip.get((s.session_id, s.type), ())):
            continue
        row = rows[s.type]
        row.signals += 1
        hits = [t for t in by_key.get((s.session_id, s.type), ())
                if t.start - early <= s.time <= t.end + late]
        if not hits:
            continue
        row.matched_signals += 1
        fresh = [t for t in hits if t not in first_hit]
        if fresh:  # credit a friction not yet detected before one already detected
            first_hit[fresh[0]] = s.time
            row.detected += 1
            t = fresh[0]
            row.ttd.append(s.time - (t.onset if t.onset else t.start))
            row.ttd_start.append(s.time - t.start)
    return dict(rows)
