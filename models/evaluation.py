"""Helpers for judging a model on a table a data person brings: which columns are row ids,
a train/test split that keeps the stream's order, a train-then-test run of an online model,
and the spread of a figure over repeated runs.

``id_columns`` finds the columns that identify a row rather than describe it: every value
present and different, and none a fractional number (a measured quantity such as a duration can
be unique per row and still be a feature). One-hot, an id becomes one feature per row that no
other row ever has: nothing to learn, and each adds width to the model (issue 16: a public
churn table's customer ids made the run six times longer).

>>> rows = [{"id": f"c{i}", "n": str(i % 3), "spend": f"{i * 1.5:.1f}"} for i in range(6)]
>>> id_columns(rows)
['id']
>>> train, test = holdout([i % 2 == 0 for i in range(10)], 0.2, seed=0)
>>> len(train), len(test), train == sorted(train), sorted(train + test) == list(range(10))
(8, 2, True, True)
>>> s = spread([0.5, 0.7, 0.6])
>>> round(s["mean"], 3), s["min"], s["max"], round(s["sd"], 3)
(0.6, 0.5, 0.7, 0.1)
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Collection, Hashable, Iterable, Mapping, Sequence
from typing import Any

from sklearn.model_selection import train_test_split

from models.progressive import Progressive, progressive

__all__ = ["holdout", "id_columns", "spread", "train_then_test"]


def _fractional(value: str) -> bool:
    try:
        f = float(value)
    except ValueError:
        return False
    return math.isfinite(f) and not f.is_integer()


def id_columns(rows: Sequence[Mapping[str, Any]], exclude: Collection[str] = ()) -> list[str]:
    """Columns of ``rows`` (those of the first row, in order, but ``exclude``) whose values are
    all present and unique per row, and not fractional numbers. None for fewer than 2 rows."""
    if len(rows) < 2:
        return []
    out = []
    for col in rows[0]:
        if col in exclude:
            continue
        values = [r.get(col) for r in rows]
        if any(v is None or v == "" for v in values):
            continue
        texts = [str(v) for v in values]
        if len(set(texts)) == len(texts) and not any(_fractional(v) for v in texts):
            out.append(col)
    return out


def holdout(labels: Sequence[Hashable], fraction: float, seed: int
            ) -> tuple[list[int], list[int]]:
    """Indices of a train part and a held-out test part (``fraction`` of the rows), drawn at
    random with ``seed`` and stratified by label when every label has 2 rows or more; each
    part keeps the rows' order (an online model learns the train rows as a stream would
    bring them)."""
    if not 0.0 < fraction < 1.0:
        raise ValueError("fraction must be between 0 and 1")
    index = list(range(len(labels)))
    counts: dict[Hashable, int] = {}
    for y in labels:
        counts[y] = counts.get(y, 0) + 1
    stratify = list(labels) if min(counts.values(), default=0) >= 2 else None
    train, test = train_test_split(index, test_size=fraction, random_state=seed,
                                   stratify=stratify)
    return sorted(train), sorted(test)


def train_then_test(model: Any, train: Iterable[tuple[Any, Hashable]],
                    test: Iterable[tuple[Any, Hashable]], positive: Hashable = True
                    ) -> Progressive:
    """Learn every ``(x, y)`` of ``train`` in order, then answer each of ``test`` without
    learning it: what a model trained up to a point scores on what comes after. The record is
    ``progressive``'s, so the same reports apply."""
    for x, y in train:
        model.learn_one(x, y)
    return progressive(model, test, positive, learn=False)


def spread(values: Iterable[float]) -> dict[str, float]:
    """Mean, sample standard deviation (0 for one value), min and max of the finite values
    (all NaN when there are none)."""
    v = [x for x in values if math.isfinite(x)]
    if not v:
        return dict.fromkeys(("mean", "sd", "min", "max"), math.nan)
    return {"mean": statistics.fmean(v), "sd": statistics.stdev(v) if len(v) > 1 else 0.0,
            "min": min(v), "max": max(v)}
