"""River's ``StandardScaler | LogisticRegression(AdaGrad)`` at a third of River's cost per call.

The abandonment and churn scorers learn every checkout snapshot and customer outcome with
River's pipeline, and on a checkout-heavy stream that learning is most of what the models
cost the worker: about 20 µs per ``learn_one`` on this machine, spent in four passes over the
features (scaler update, scaler transform, dot product, AdaGrad step) through River's
general machinery. ``Linear`` does the same arithmetic on the pipeline's own state (the
scaler's counts, means and variances; the regression's weights and intercept; AdaGrad's
squared gradients) in one pass for the update and one for the step: about 9 µs. Predictions
read each feature's weight, mean and deviation from a plain dict that ``learn_one`` keeps up
to date (read again when the model learned behind its back): 2 µs for 17 features. The model
stays River's own object, so checkpoints, explanations (``models.explain``) and anything else
that reads it are unchanged; the results agree with River's to the last bits of a float
(summation order), which ``tests/unit/test_linear.py`` checks over thousands of updates.

The same goes for a pipeline that standardises only some features and passes the others as
they are (``scaled_some``: ``Present(*keys) | StandardScaler`` beside ``Discard(*keys)``),
as the abandonment model does with its indicators: a feature sent only when it is 1.0 (an
event type, a device) has no variance when scaled, scales to 0 and is never learned.

Any other model, or a pipeline configured otherwise (an L1 penalty, another optimizer, loss,
scheduler or initializer, a windowed scaler), goes through its own ``learn_one`` and
``predict_proba_one``.

>>> from models.abandonment import abandonment_model
>>> model = abandonment_model()
>>> fast = Linear(model)
>>> fast.fast
True
>>> for i in range(200):
...     fast.learn_one({"declines": float(i % 3), "pages": float(i % 5)}, i % 3 == 2)
>>> round(fast.predict_proba_one({"declines": 2.0, "pages": 1.0}), 3) == round(
...     model.predict_proba_one({"declines": 2.0, "pages": 1.0})[True], 3)
True
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from typing import Any

from river import base, compose, linear_model, optim, preprocessing

__all__ = ["Linear", "Present", "fast_path", "parts", "scaled_some"]


class Present(base.Transformer):
    """River's ``compose.Select``, but a key missing from ``x`` is left out (``Select``
    raises ``KeyError``): features such as the time in the current step are not always there.

    >>> Present("a", "b").transform_one({"a": 1.0, "c": 2.0})
    {'a': 1.0}
    """

    def __init__(self, *keys: Hashable) -> None:
        self.keys = frozenset(keys)

    def transform_one(self, x: dict[Hashable, Any]) -> dict[Hashable, Any]:
        keys = self.keys
        return {i: xi for i, xi in x.items() if i in keys}


def scaled_some(keys: tuple[str, ...], regression: Any) -> Any:
    """``keys`` standardised (``StandardScaler``), every other feature as it is, into
    ``regression``: River's own pieces, which ``Linear`` runs at its lower cost."""
    return compose.TransformerUnion(Present(*keys) | preprocessing.StandardScaler(),
                                    compose.Discard(*keys)) | regression


def parts(model: Any) -> tuple[Any, Any, frozenset[Hashable] | None] | None:
    """The scaler, the regression and the features scaled (None: all of them) of a
    ``StandardScaler | LogisticRegression`` pipeline or of a ``scaled_some`` one, else None."""
    if type(model) is not compose.Pipeline or len(model.steps) != 2:
        return None
    first, lr = model.steps.values()
    scaled: frozenset[Hashable] | None = None
    if type(first) is compose.TransformerUnion:
        inner = list(first.transformers.values())
        if len(inner) != 2 or type(inner[0]) is not compose.Pipeline or type(
                inner[1]) is not compose.Discard or len(inner[0].steps) != 2:
            return None
        select, scaler = inner[0].steps.values()
        if type(select) is not Present or select.keys != inner[1].keys:
            return None
        scaled = select.keys
    else:
        scaler = first
    if type(scaler) is not preprocessing.StandardScaler:
        return None
    return scaler, lr, scaled


def _steps(model: Any) -> tuple[Any, Any, frozenset[Hashable] | None] | None:
    """The scaler, the regression and the scaled features of a pipeline ``Linear`` can run,
    else None."""
    found = parts(model)
    if found is None:
        return None
    scaler, lr, scaled = found
    if not scaler.with_std or getattr(scaler, "window_size", None) is not None:
        return None
    if (type(lr) is not linear_model.LogisticRegression
            or type(lr.optimizer) is not optim.AdaGrad
            or type(lr.loss) is not optim.losses.Log
            or type(lr.initializer) is not optim.initializers.Zeros
            or type(lr.intercept_lr) is not optim.schedulers.Constant
            or lr.l1 != 0):
        return None
    return scaler, lr, scaled


class Linear:
    """``learn_one`` and ``predict_proba_one`` (the probability of ``True``) of ``model``:
    River's arithmetic on River's state when ``fast``, else the model's own methods."""

    __slots__ = ("fast", "model", "_coef", "_coef_at", "_lr", "_scaled", "_scaler")

    def __init__(self, model: Any) -> None:
        self.model = model
        steps = _steps(model)
        self.fast = steps is not None
        self._scaler: Any = steps[0] if steps is not None else None
        self._lr: Any = steps[1] if steps is not None else None
        self._scaled: frozenset[Hashable] | None = steps[2] if steps is not None else None
        # Per feature (weight, mean, standard deviation), for features with a weight and a
        # nonzero variance (the others add 0): a predict is then one plain dict read per
        # feature instead of three reads, one of them a call into River's Rust VectorDict.
        # Valid while the optimizer's update count is ``_coef_at``: ``learn_one`` keeps it
        # so; a model changed behind its back (its own ``learn_one``) is read again.
        self._coef: dict[str, tuple[float, float, float]] = {}
        self._coef_at = -1

    def predict_proba_one(self, x: Mapping[str, float]) -> float:
        if not self.fast or compose.Pipeline._LEARN_UNSUPERVISED_DURING_PREDICT:
            return float(self.model.predict_proba_one(x).get(True, 0.5))
        lr = self._lr
        if self._coef_at != lr.optimizer.n_iterations:
            self._read_coefficients()
        coef = self._coef
        dot = 0.0
        for i, xi in x.items():
            c = coef.get(i)
            if c is not None:
                wi, m, s = c
                dot += wi * ((xi - m) / s)  # River's own order of operations, same bits
        return _sigmoid(dot + lr.intercept)

    def _read_coefficients(self) -> None:
        means, vars_, w = self._scaler.means, self._scaler.vars, self._lr._weights
        scaled = self._scaled
        coef = self._coef
        coef.clear()
        for i, wi in w.items():
            if scaled is not None and i not in scaled:
                coef[i] = (wi, 0.0, 1.0)  # passed as it is: (x - 0) / 1 is x, same bits
                continue
            v = vars_.get(i, 0.0)
            if v:
                coef[i] = (wi, means.get(i, 0.0), v**0.5)
        self._coef_at = self._lr.optimizer.n_iterations

    def learn_one(self, x: Mapping[str, float], y: bool, weight: float = 1.0) -> None:
        if not self.fast or compose.Pipeline._LEARN_UNSUPERVISED_DURING_PREDICT:
            if weight == 1.0:
                self.model.learn_one(x, y)
            else:
                self.model.learn_one(x, y, w=weight)
            return
        scaler, lr = self._scaler, self._lr
        w = lr._weights
        # The predict cache follows this update, or (it was stale, or this raises halfway:
        # a square that overflows) is read again at the next predict.
        current = self._coef_at == lr.optimizer.n_iterations
        self._coef_at = -1
        # StandardScaler.learn_one then transform_one, feature by feature (Welford), and the
        # current weights' dot product with the scaled features, in one pass: each weight is
        # read once (River's weights are a Rust VectorDict: a call per read).
        counts, means, vars_ = scaler.counts, scaler.means, scaler.vars
        scaled = self._scaled
        seen: list[tuple[str, float, float]] = []
        dot = 0.0
        for i, xi in x.items():
            if scaled is not None and i not in scaled:
                wi = w.get(i)
                if wi is None:
                    wi = 0.0
                else:
                    dot += wi * xi
                seen.append((i, xi, wi))
                continue
            n = counts[i] + 1
            counts[i] = n
            old = means[i]
            m = means[i] = old + (xi - old) / n
            v = vars_[i]
            v = vars_[i] = v + ((xi - old) * (xi - m) - v) / n
            zi = (xi - m) / v**0.5 if v else 0.0
            wi = w.get(i)
            if wi is None:
                wi = 0.0
            else:
                dot += wi * zi
            seen.append((i, zi, wi))
        # LogisticRegression.learn_one: the log loss's gradient at the current weights...
        opt, loss = lr.optimizer, lr.loss
        g = _log_gradient(loss, y, dot + lr.intercept) * weight
        g = max(min(g, lr.clip_gradient), -lr.clip_gradient)
        lr.intercept -= lr.intercept_lr.get(opt.n_iterations) * g
        # ...and AdaGrad's step on the features seen (L2 on their weights only, as River).
        rate, g2, eps, l2 = opt.lr.get(opt.n_iterations), opt.g2, opt.eps, lr.l2
        coef = self._coef
        for i, zi, wi in seen:
            gi = zi * g + l2 * wi if l2 else zi * g
            q = g2[i] = g2[i] + gi**2
            wi = w[i] = wi - rate / (q + eps) ** 0.5 * gi
            if current:
                if scaled is not None and i not in scaled:
                    coef[i] = (wi, 0.0, 1.0)
                    continue
                v = vars_[i]
                if v:
                    coef[i] = (wi, means[i], v**0.5)
                else:
                    coef.pop(i, None)
        opt.n_iterations += 1
        if current:
            self._coef_at = opt.n_iterations


def fast_path(owner: Any) -> Linear:
    """``Linear(owner.model)``, kept on ``owner`` and made again when its model was replaced
    (a checkpoint loaded, a model adopted from another worker)."""
    fast: Linear | None = owner.__dict__.get("_linear")
    if fast is None or fast.model is not owner.model:
        fast = owner._linear = Linear(owner.model)
    return fast


def _sigmoid(x: float) -> float:
    """``river.utils.math.sigmoid``."""
    if x < -30:
        return 0.0
    if x > 30:
        return 1.0
    return 1 / (1 + math.exp(-x))


def _log_gradient(loss: Any, y: bool, y_pred: float) -> float:
    """``river.optim.losses.Log.gradient`` for one example."""
    if y:
        t, weight = 1, loss.weight_pos
    else:
        t, weight = -1, loss.weight_neg
    s = y_pred * t
    if s > 18.0:
        return float(weight * math.exp(-s) * -t)
    if s < -18.0:
        return float(weight * -t)
    return float(weight * -t / (math.exp(s) + 1.0))
