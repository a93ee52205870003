"""models.linear: River's scaled logistic regression, the same figures at a lower cost."""

from __future__ import annotations

import copy
import math
import random
from typing import Any

import pytest
from river import linear_model, optim, preprocessing

from models.abandonment import SCALED, abandonment_model
from models.churn import churn_model
from models.linear import Linear, parts

#: Half the features among those the abandonment model scales, half passed as they are.
KEYS = [*SCALED[:12], *(f"f{i}" for i in range(13))]


def _stream(seed: int, n: int) -> list[tuple[dict[str, float], bool]]:
    """Sparse, changing feature sets with constant, heavy-tailed and one-hot values."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        x = {k: rng.choice([0.0, 1.0, rng.random() * 5, rng.gauss(0, 3), 1e3 * rng.random()])
             for k in rng.sample(KEYS, rng.randrange(1, 18))}
        # Learnable: the label leans on a scaled feature and on one passed as it is.
        out.append((x, x.get(KEYS[0], 0.0) - x.get("f1", 0.0) + rng.gauss(0, 2) > 1.0))
    return out


def _parts(model: object) -> tuple[Any, Any]:
    found = parts(model)
    assert found is not None
    return found[0], found[1]


@pytest.mark.parametrize("make", [abandonment_model, churn_model])
def test_learns_and_predicts_as_river_does(make: object) -> None:
    river_model = make()  # type: ignore[operator]
    ours = copy.deepcopy(river_model)
    fast = Linear(ours)
    assert fast.fast
    stream = _stream(1, 4000)
    for x, y in stream:
        assert fast.predict_proba_one(x) == pytest.approx(
            river_model.predict_proba_one(x)[True], rel=1e-9, abs=1e-12)
        river_model.learn_one(x, y)
        fast.learn_one(x, y)
    want, got = _parts(river_model)[1], _parts(ours)[1]
    assert want.weights.keys() == got.weights.keys()
    for k, v in want.weights.items():
        assert got.weights[k] == pytest.approx(v, rel=1e-9, abs=1e-12)
    assert got.intercept == pytest.approx(want.intercept, rel=1e-9, abs=1e-12)
    assert got.optimizer.n_iterations == want.optimizer.n_iterations == len(stream)
    assert _parts(ours)[0].counts == _parts(river_model)[0].counts
    # The model went somewhere: the comparison is not two untrained models agreeing.
    assert max(abs(v) for v in want.weights.values()) > 0.1


def test_a_weighted_example_learns_as_rivers_weighted_learn_one() -> None:
    river_model = abandonment_model()
    ours = copy.deepcopy(river_model)
    fast = Linear(ours)
    for i, (x, y) in enumerate(_stream(2, 2000)):
        w = 1.0 + (i % 7) * 1.5
        river_model.learn_one(x, y, w=w)
        fast.learn_one(x, y, w)
        assert fast.predict_proba_one(x) == pytest.approx(
            river_model.predict_proba_one(x)[True], rel=1e-9, abs=1e-12)
    want, got = _parts(river_model)[1], _parts(ours)[1]
    assert got.intercept == pytest.approx(want.intercept, rel=1e-9, abs=1e-12)
    # The weights mattered: unweighted learning ends elsewhere.
    plain = Linear(abandonment_model())
    for x, y in _stream(2, 2000):
        plain.learn_one(x, y)
    assert abs(_parts(plain.model)[1].intercept - got.intercept) > 1e-3


def test_other_models_use_their_own_methods() -> None:
    plain = linear_model.LogisticRegression()
    l1 = preprocessing.StandardScaler() | linear_model.LogisticRegression(l1=0.01)
    sgd = preprocessing.StandardScaler() | linear_model.LogisticRegression(optim.SGD(0.1))
    for model in (plain, l1, sgd):
        twin = copy.deepcopy(model)
        fast = Linear(model)
        assert not fast.fast
        for x, y in _stream(2, 300):
            fast.learn_one(x, y)
            twin.learn_one(x, y)
        x = _stream(3, 1)[0][0]
        assert fast.predict_proba_one(x) == twin.predict_proba_one(x)[True]


def test_extreme_scores_are_probabilities() -> None:
    fast = Linear(abandonment_model())
    for _ in range(300):
        fast.learn_one({"a": 1.0}, True)
        fast.learn_one({"a": 0.0}, False)
    p_hi, p_lo = fast.predict_proba_one({"a": 1e6}), fast.predict_proba_one({"a": -1e6})
    assert (p_hi, p_lo) == (1.0, 0.0)
    assert all(math.isfinite(w) for w in _parts(fast.model)[1].weights.values())


def test_predictions_follow_a_model_taught_behind_its_back() -> None:
    # Predictions read a cache of the coefficients, kept up by ``learn_one``; a model taught
    # through its own methods (or by another ``Linear``) must not leave it stale.
    river_model = abandonment_model()
    fast, other = Linear(river_model), Linear(river_model)
    stream = _stream(4, 600)
    for n, (x, y) in enumerate(stream):
        # Equal but for the order River sums the union's features in (a stale cache would be
        # off by far more than that).
        assert fast.predict_proba_one(x) == pytest.approx(
            river_model.predict_proba_one(x)[True], rel=1e-9, abs=1e-12)
        if n % 3 == 0:
            fast.learn_one(x, y)
        elif n % 3 == 1:
            river_model.learn_one(x, y)
        else:
            other.learn_one(x, y, 2.0)
