"""The models' second line of defence: features that are not finite or absurdly large are
neither scored nor learned, quality never raises, no checkpoint holds a non-finite weight, and
the holdout totals refuse amounts that would sum to inf. Values here bypass the edge (model
calls directly), as a value the edge missed would."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from detectors import events as ev
from detectors.customer import apply_customer
from detectors.holdout import Experiment
from detectors.session import SessionProcessor
from models import checkpoint
from models.abandonment import AbandonmentScorer
from models.churn import ChurnScorer
from models.experiments import Ledger
from models.finite import finite
from models.lift import ArmStats
from models.progressive import live_quality
from streams import checkpoints

HUGE = (10**308, 1e308, math.inf, -1e308)


def _session(proc: SessionProcessor, sid: str, t0: float, step: Any, converted: bool
             ) -> None:
    state, _ = proc.apply(None, [
        ev.CheckoutStarted(id=f"{sid}.1", time=t0, session_id=sid, cart_value=80.0),
        ev.CheckoutStepViewed(id=f"{sid}.2", time=t0 + 10, session_id=sid, step=step),
        ev.CheckoutStepViewed(id=f"{sid}.3", time=t0 + 20, session_id=sid, step=2)])
    proc.finish(state, {"converted": converted, "checkout": True})


@pytest.mark.parametrize("step", HUGE, ids=["int_1e308", "1e308", "inf", "-1e308"])
def test_abandonment_scorer_refuses_absurd_steps_and_stays_finite(step: Any) -> None:
    """Before the guard: 1e308 overflowed the scaler's variance, the model predicted NaN for
    every session and ``quality()`` raised scikit-learn's ``Input contains NaN``."""
    scorer = AbandonmentScorer(record=True)
    proc = SessionProcessor([scorer])
    for i in range(40):
        _session(proc, f"s{i}", 100.0 * i, step if i % 4 == 0 else 1, converted=i % 3 == 0)
    assert all(0.0 <= p <= 1.0 for p, _ in scorer.history)
    assert finite(scorer.model)
    q = scorer.quality()
    assert set(q) == {"roc_auc", "log_loss", "accuracy"}
    assert all(math.isfinite(v) for v in q.values())
    assert scorer.rejected >= 10
    # A session scored after the absurd ones still gets a probability.
    state, _ = proc.apply(None, [ev.CheckoutStepViewed(id="x", time=1e4, session_id="x",
                                                       step=1)])
    assert state.abandon_probability is not None and 0 <= state.abandon_probability <= 1


def test_abandonment_scorer_does_not_learn_a_tampered_snapshot() -> None:
    scorer = AbandonmentScorer()
    proc = SessionProcessor([scorer])
    state, _ = proc.apply(None, [ev.CheckoutStepViewed(id="1", time=0.0, session_id="s",
                                                       step=1)])
    state.detector_state["abandonment"][0][0]["step"] = None  # as if read back from JSON
    state.detector_state["abandonment"].append([{"step": 1e300}, 0.5, 1.0])
    proc.finish(state, {"converted": False})
    assert scorer.learned == 0 and scorer.rejected == 2
    assert finite(scorer.model)


def test_churn_scorer_gives_no_score_to_infinite_revenue() -> None:
    """Two orders of 1e308 sum to inf in the customer's revenue: not scored, not learned."""
    scorer = ChurnScorer()
    summary = [ev.SessionSummary(id=f"o{i}", time=float(i), session_id=f"w{i}",
                                 customer_id="c", converted=True, revenue=1e308)
               for i in range(2)]
    state = apply_customer(None, summary)
    assert state.revenue == math.inf
    assert scorer.update(state) is None
    assert state.churn_risk is None and scorer.rejected == 1
    assert state.model_state.get("churn", []) == []
    state.revenue, state.mrr = 10.0, -5.0  # log1p of a negative amount raises in features
    assert scorer.update(state) is None and scorer.rejected == 2
    state.mrr = 5.0
    scorer.update(state)
    assert state.churn_risk is not None and 0 <= state.churn_risk <= 1


def test_live_quality_never_raises_on_non_finite_probabilities() -> None:
    q = live_quality([(math.nan, True), (0.7, True), (math.inf, False), (0.1, False)])
    assert q == {"roc_auc": 1.0, "log_loss": pytest.approx(q["log_loss"]), "accuracy": 1.0}
    assert all(math.isnan(v) for v in live_quality([(math.nan, True)]).values())


def test_a_model_with_a_non_finite_weight_is_never_checkpointed_nor_restored(
        tmp_path: Path) -> None:
    path = tmp_path / "abandonment.ckpt"
    good = AbandonmentScorer()
    good.model.learn_one({"x": 1.0}, True)
    assert checkpoints.save(good, path)
    saved = path.read_bytes()
    bad = AbandonmentScorer()
    bad.model["LogisticRegression"]._weights["x"] = math.nan
    with pytest.raises(checkpoint.CheckpointError, match="non-finite"):
        bad.checkpoint()
    assert not checkpoints.save(bad, path)  # logged; the last good checkpoint stays
    assert path.read_bytes() == saved
    # A checkpoint written with a non-finite weight (before the guard) starts fresh.
    path.write_bytes(checkpoint.dump_fields(bad, AbandonmentScorer.LEARNED))
    fresh = AbandonmentScorer()
    assert not checkpoints.restore(fresh, path)
    assert finite(fresh.model)


def test_finite_walks_river_models_numpy_and_containers() -> None:
    import numpy as np

    scorer = AbandonmentScorer()
    scorer.model.learn_one({"cart_value": 1.0, "clicks": 2.0}, True)
    assert finite(scorer.model)
    # The scaler sits inside the model's union (``models.linear.scaled_some``).
    scorer.model["TransformerUnion"].transformers["Pipeline"]["StandardScaler"].vars[
        "clicks"] = math.inf
    assert not finite(scorer.model)
    assert not finite({"a": (1.0, np.array([1.0, np.nan]))})
    assert finite({"a": [1, "x", None, np.array([1, 2])]})


def test_holdout_totals_refuse_revenue_that_would_read_inf() -> None:
    """Before: two results of 1e308 summed to inf, stored as null, and the experiments agent
    failed on the stored ledger from then on."""
    led = Ledger([Experiment("chat_offer", control_share=0.5)], session_gap=1800)

    def result(i: int, revenue: Any) -> dict[str, Any]:
        return {"type": "result", "experiment": "chat_offer", "arm": "treatment",
                "unit": "c:rich", "unit_kind": "customer", "exposed_at": 10.0 + i,
                "end": 900.0 + i, "converted": True, "orders": 1, "revenue": revenue}

    led.add(result(0, 1e11))
    with pytest.raises(ValueError):
        led.add(result(1, 1e308))
    with pytest.raises(ValueError):
        led.add(result(2, None))  # what the encoder made of inf
    with pytest.raises(ValueError):
        led.add({**result(3, 1.0), "end": math.nan})
    for i in range(4, 14):  # sums that would pass MAX_AMOUNT are refused, nothing added
        try:
            led.add(result(i, 9e11))
        except ValueError:
            break
    else:
        pytest.fail("a unit's revenue summed past the bound")
    again = Ledger([Experiment("chat_offer", control_share=0.5)], session_gap=1800)
    again.restore(led.snapshot())  # the stored ledger always reads back
    assert again.pending["chat_offer\x1fc:rich"].revenue == led.pending[
        "chat_offer\x1fc:rich"].revenue <= 1e12
    with pytest.raises(ValueError):
        ArmStats().add(True, math.inf)
