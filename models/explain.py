"""Why a linear model's score is high: the features that pushed it up most.

For a standardised logistic regression the log-odds are a sum of weight times standardised
value, one term per feature, so the largest positive terms are the reasons, exactly.

>>> from river import linear_model, preprocessing
>>> model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
>>> for i in range(200):
...     model.learn_one({"declines": float(i % 3), "pages": float(i % 5)}, i % 3 == 2)
>>> pushes({"declines": 2.0, "pages": 2.0}, model)  # pages at their mean: no push
['declines']
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from models.linear import parts

__all__ = ["pushes"]


def pushes(x: Mapping[str, float], model: Any, top: int = 3) -> list[str]:
    """The features of ``x`` whose weight times standardised value raised ``model``'s score
    most, largest first; ``[]`` for a model that is not StandardScaler | LogisticRegression
    (or ``models.linear.scaled_some``, whose other features count as they are)."""
    # A wrapper that keeps what its model learns (``models.baseline.Recording``): its model.
    found = parts(model) or parts(getattr(model, "model", None))
    if found is None:
        return []
    scaler, lr, scaled = found
    terms = []
    for f, v in x.items():
        w = lr.weights.get(f, 0.0)
        if not w:
            continue  # never learned: no push (and no arithmetic on what it holds)
        try:
            if scaled is not None and f not in scaled:
                z = float(v)
            else:
                var = scaler.vars.get(f, 0.0)
                z = (v - scaler.means.get(f, 0.0)) / math.sqrt(var) if var > 0 else 0.0
            term = w * z
        except (OverflowError, TypeError):
            continue  # a value no float holds: the score itself was refused (models.finite)
        if term > 0:
            terms.append((term, f))
    terms.sort(reverse=True)
    return [f for _, f in terms[:top]]
