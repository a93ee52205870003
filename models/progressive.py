"""Progressive validation: every example is first predicted, then learned, exactly once.

This is how an online model is judged on a stream (River's ``evaluate.progressive_val_score``
does the same): the score of each example comes from a model that has never seen it, so the
figures are honest out-of-sample estimates without a held-out split, and they include the cold
start a live model goes through.

``progressive`` keeps every prediction, so that exact figures (ROC AUC over all scores, F1 at a
threshold, curves for plots) can be computed afterwards; River's own ``metrics.ROCAUC``
approximates the curve with a few thresholds.

>>> from river import linear_model, preprocessing
>>> stream = [({"x": float(i % 10)}, i % 10 > 4) for i in range(400)]
>>> run = progressive(preprocessing.StandardScaler() | linear_model.LogisticRegression(), stream)
>>> len(run.y_true), run.y_true[0], round(run.scores[0], 2)   # the first, from an untrained model
(400, False, 0.5)
>>> binary_report(run)["roc_auc"] > 0.95
True
"""

from __future__ import annotations

import math
from collections.abc import Collection, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sklearn import metrics as skm

__all__ = ["LIVE_METRICS", "NO_ANSWER", "Progressive", "binary_report", "live_quality",
           "multiclass_report", "progressive"]

#: What a multiclass model that has learned nothing yet is scored as having answered.
NO_ANSWER = "<no answer>"


@dataclass
class Progressive:
    """What a progressive run saw: true labels and, per example, the model's answer before it
    learned that example (a probability of the positive class, or a predicted class)."""

    y_true: list[Any] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    predicted: list[Any] = field(default_factory=list)


def progressive(model: Any, stream: Iterable[tuple[Mapping[str, Any] | str, Hashable]],
                positive: Hashable = True, learn: bool = True) -> Progressive:
    """Predict, then learn, each ``(x, y)`` of ``stream`` once, in order (``learn`` False:
    predict only, as on a test set).

    Binary models (those with ``predict_proba_one``) record the probability of ``positive``
    and the predicted class; others record the predicted class only.
    """
    run = Progressive()
    proba = hasattr(model, "predict_proba_one")
    for x, y in stream:
        if proba:
            p = model.predict_proba_one(x)
            run.scores.append(float(p.get(positive, 0.0)))
            run.predicted.append(max(p, key=p.__getitem__) if p else None)
        else:
            run.predicted.append(model.predict_one(x))
        run.y_true.append(y)
        if learn:
            model.learn_one(x, y)
    return run


def binary_report(run: Progressive, threshold: float = 0.5, positive: Hashable = True
                  ) -> dict[str, float]:
    """ROC AUC, PR AUC (average precision), log loss, accuracy, and precision, recall and F1
    of the positive class at ``threshold``, over the whole run (AUCs NaN with one class)."""
    y = [v == positive for v in run.y_true]
    hard = [s >= threshold for s in run.scores]
    clipped = [min(max(s, 1e-7), 1 - 1e-7) for s in run.scores]
    both = 0 < sum(y) < len(y)  # else the curves are undefined: NaN
    return {
        "roc_auc": float(skm.roc_auc_score(y, run.scores)) if both else math.nan,
        "pr_auc": float(skm.average_precision_score(y, run.scores)) if both else math.nan,
        "log_loss": float(skm.log_loss(y, clipped, labels=[False, True])),
        "accuracy": float(skm.accuracy_score(y, hard)),
        "precision": float(skm.precision_score(y, hard, zero_division=0)),
        "recall": float(skm.recall_score(y, hard, zero_division=0)),
        "f1": float(skm.f1_score(y, hard, zero_division=0)),
        "threshold": threshold,
        "positives": float(sum(y)),
        "n": float(len(y)),
    }


def multiclass_report(run: Progressive) -> dict[str, float]:
    """Accuracy and macro F1 of the predicted classes over the whole run (no answer, from a
    model that has learned nothing yet, counts as wrong)."""
    predicted = [NO_ANSWER if p is None else p for p in run.predicted]
    return {
        "accuracy": float(skm.accuracy_score(run.y_true, predicted)),
        "macro_f1": float(skm.f1_score(run.y_true, predicted, average="macro",
                                       labels=sorted(set(run.y_true)), zero_division=0)),
        "n": float(len(run.y_true)),
    }


#: What ``live_quality`` reports: the online models' figures in Prometheus.
LIVE_METRICS = ("roc_auc", "log_loss", "accuracy")


def live_quality(recent: Collection[tuple[float, bool]]) -> dict[str, float]:
    """ROC AUC, log loss and accuracy (at 0.5) of a live model's latest ``(probability,
    label)`` pairs, each scored before it was learned; NaN where undefined (no label yet, or
    one class only for the AUC). Never raises: a probability that is not a number in [0, 1]
    is left out (scikit-learn raises on NaN, and a gauge timer must not), and any figure
    that comes out non-finite is NaN.

    >>> q = live_quality([(0.9, True), (float("nan"), False), (0.2, False)])
    >>> q["accuracy"], q["roc_auc"]
    (1.0, 1.0)
    """
    pairs = [(p, y) for p, y in recent if isinstance(p, int | float) and 0.0 <= p <= 1.0]
    if not pairs:
        return dict.fromkeys(LIVE_METRICS, math.nan)
    try:
        report = binary_report(Progressive(y_true=[y for _, y in pairs],
                                           scores=[p for p, _ in pairs]))
    except (ValueError, TypeError, ArithmeticError):
        return dict.fromkeys(LIVE_METRICS, math.nan)
    return {k: report[k] if math.isfinite(report[k]) else math.nan for k in LIVE_METRICS}
