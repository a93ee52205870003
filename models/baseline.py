"""Batch baselines from scikit-learn, to put beside the online figures: trained on one part of
a dataset, scored on the held-out rest (stratified, seeded), as published results are.

>>> rows = [({"x": float(i % 10), "c=a": 1.0}, i % 10 > 4) for i in range(200)]
>>> scores = binary_baseline(rows, seed=0)
>>> round(scores["roc_auc"], 2), len(scores["y_test"]) == len(scores["p_test"]) == 60
(1.0, True)

For an online model judged on a stream, ``Recording`` keeps the examples it learned, in order,
and ``time_split_baselines`` trains batch models on the first part of them and scores the
rest (later in time, as the online model was):

>>> from river import linear_model
>>> model = Recording(linear_model.LogisticRegression())
>>> for x, y in rows:
...     model.learn_one(x, y)
>>> len(model.examples), sorted(time_split_baselines(model.examples))
(200, ['hist gradient boosting', 'logistic regression'])
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from sklearn import metrics as skm
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.feature_extraction import DictVectorizer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

__all__ = ["Recording", "binary_baseline", "binary_fit_score", "text_baseline", "text_fit_score",
           "time_split_baselines"]


def binary_baseline(rows: Sequence[tuple[Mapping[str, float], Hashable]], *,
                    positive: Hashable = True, threshold: float = 0.5, test_size: float = 0.3,
                    seed: int = 0) -> dict[str, Any]:
    """Gradient-boosted trees (``HistGradientBoostingClassifier``) on a stratified split:
    ROC AUC, PR AUC and F1 of the positive class at ``threshold`` on the test part, and the
    test labels and scores (for curves)."""
    ys = [y == positive for _, y in rows]
    train, test = train_test_split(list(range(len(rows))), test_size=test_size, stratify=ys,
                                   random_state=seed)
    return binary_fit_score([(rows[i][0], ys[i]) for i in train],
                            [(rows[i][0], ys[i]) for i in test], threshold=threshold, seed=seed)


def binary_fit_score(train: Sequence[tuple[Mapping[str, float], bool]],
                     test: Sequence[tuple[Mapping[str, float], bool]], *,
                     threshold: float = 0.5, seed: int = 0) -> dict[str, Any]:
    """``binary_baseline`` on a given split: gradient-boosted trees (``random_state=seed``)
    fitted on ``train`` and scored on ``test`` (labels ``True`` for the positive class); AUCs
    NaN when ``test`` holds one class only."""
    model = make_pipeline(DictVectorizer(sparse=False),
                          HistGradientBoostingClassifier(random_state=seed))
    model.fit([dict(x) for x, _ in train], [bool(y) for _, y in train])
    y_test = [bool(y) for _, y in test]
    p = [float(v) for v in model.predict_proba([dict(x) for x, _ in test])[:, 1]]
    hard = [v >= threshold for v in p]
    both = 0 < sum(y_test) < len(y_test)
    return {
        "model": "HistGradientBoostingClassifier",
        "roc_auc": float(skm.roc_auc_score(y_test, p)) if both else math.nan,
        "pr_auc": float(skm.average_precision_score(y_test, p)) if both else math.nan,
        "accuracy": float(skm.accuracy_score(y_test, hard)),
        "f1": float(skm.f1_score(y_test, hard, zero_division=0)),
        "n": float(len(y_test)),
        "y_test": y_test,
        "p_test": p,
    }


def text_baseline(rows: Sequence[tuple[str, Hashable]], *, test_size: float = 0.3,
                  seed: int = 0) -> dict[str, Any]:
    """TF-IDF of words and word pairs into a logistic regression, on a stratified split:
    accuracy and macro F1 on the test part."""
    ys = [y for _, y in rows]
    train, test = train_test_split(list(range(len(rows))), test_size=test_size, stratify=ys,
                                   random_state=seed)
    return text_fit_score([rows[i] for i in train], [rows[i] for i in test])


def text_fit_score(train: Sequence[tuple[str, Hashable]], test: Sequence[tuple[str, Hashable]]
                   ) -> dict[str, Any]:
    """``text_baseline`` on a given split: fitted on ``train``, scored on ``test`` (the
    regression's solver is deterministic: no seed)."""
    model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
                          LogisticRegression(max_iter=2000, C=10.0))
    model.fit([t for t, _ in train], [y for _, y in train])
    y_test = [y for _, y in test]
    pred = list(model.predict([t for t, _ in test]))
    return {
        "model": "TF-IDF + LogisticRegression",
        "accuracy": float(skm.accuracy_score(y_test, pred)),
        "macro_f1": float(skm.f1_score(y_test, pred, average="macro", zero_division=0)),
        "n": float(len(y_test)),
    }


class Recording:
    """Wraps a River binary classifier and keeps every ``(x, y)`` it learns, in order."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.examples: list[tuple[dict[str, float], bool]] = []

    def __getitem__(self, key: str) -> Any:  # a pipeline's steps, for explanations
        return self.model[key]

    def predict_proba_one(self, x: dict[str, float]) -> dict[bool, float]:
        return self.model.predict_proba_one(x)  # type: ignore[no-any-return]

    def learn_one(self, x: dict[str, float], y: bool) -> None:
        self.examples.append((x, y))
        self.model.learn_one(x, y)


def time_split_baselines(examples: Sequence[tuple[Mapping[str, float], bool]],
                         train_share: float = 0.7) -> dict[str, float]:
    """ROC AUC of scaled logistic regression and gradient-boosted trees trained on the first
    ``train_share`` of ``examples`` and scored on the rest: what a batch model fitted on the
    past reaches on the same examples as an online model."""
    cut = int(len(examples) * train_share)
    vec = DictVectorizer(sparse=False)
    x_train = vec.fit_transform([x for x, _ in examples[:cut]])
    x_test = vec.transform([x for x, _ in examples[cut:]])
    y_train = [y for _, y in examples[:cut]]
    y_test = [y for _, y in examples[cut:]]
    out = {}
    for name, clf in (("logistic regression", make_pipeline(StandardScaler(),
                                                            LogisticRegression(max_iter=2000))),
                      ("hist gradient boosting", HistGradientBoostingClassifier())):
        clf.fit(x_train, y_train)
        out[name] = float(skm.roc_auc_score(y_test, clf.predict_proba(x_test)[:, 1]))
    return out
