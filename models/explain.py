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

__all__ = ["pushes"]


def pushes(x: Mapping[str, float], model: Any, top: int = 3) -> list[str]:
    """The features of ``x`` whose weight times standardised value raised ``model``'s score
    most, largest first; ``[]`` for a model that is not StandardScaler | LogisticRegression."""
    try:
        scaler, lr = model["StandardScaler"], model["LogisticRegression"]
    except (KeyError, TypeError):
        return []
    terms = []
    for f, v in x.items():
        var = scaler.vars.get(f, 0.0)
        z = (v - scaler.means.get(f, 0.0)) / math.sqrt(var) if var > 0 else 0.0
        term = lr.weights.get(f, 0.0) * z
        if term > 0:
            terms.append((term, f))
    terms.sort(reverse=True)
    return [f for _, f in terms[:top]]
