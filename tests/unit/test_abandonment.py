"""The checkout-abandonment scorer: snapshots without leakage, learning from outcomes through the
engine, scores and factors in alerts, checkpoints."""

from __future__ import annotations

import copy

import msgspec
import pytest

from detectors import events as ev
from detectors.alerting import Alerting
from detectors.base import Signal
from detectors.engine import Engine, Outputs
from detectors.session import SessionProcessor, SessionState, decode_state, encode_state
from models import checkpoint
from models.abandonment import AbandonmentScorer, abandonment_model, checkout_features


def _checkout(sid: str, t0: float, declines: int, order: bool) -> list[object]:
    evs: list[object] = [
        ev.CheckoutStarted(id=f"{sid}.1", time=t0, session_id=sid, cart_value=120.0,
                           device="mobile"),
        ev.CheckoutStepViewed(id=f"{sid}.2", time=t0 + 30, session_id=sid, step=3),
    ]
    for i in range(declines):
        evs.append(ev.PaymentAttempted(id=f"{sid}.d{i}", time=t0 + 40 + i, session_id=sid,
                                       success=False))
    if order:
        evs.append(ev.OrderCompleted(id=f"{sid}.o", time=t0 + 60, session_id=sid,
                                     revenue=120.0))
    return evs


def _trained(n: int = 300) -> AbandonmentScorer:
    """A scorer taught that declined payments end in abandonment."""
    scorer = AbandonmentScorer()
    proc = SessionProcessor([scorer])
    for i in range(n):
        declines = 2 if i % 2 else 0
        # Sessions 1,000 s apart: each one's events release the orders held before it.
        state, _ = proc.apply(None, _checkout(f"t{i}", i * 1000.0, declines,
                                              order=not declines))
        proc.finish(state, {"converted": not declines})
    return scorer


class _Spy:
    """Wraps a model and records what it is taught."""

    def __init__(self, model: object) -> None:
        self.model = model
        self.taught: list[tuple[dict[str, float], bool]] = []
        self.weights: list[float] = []

    def predict_proba_one(self, x: dict[str, float]) -> dict[bool, float]:
        return self.model.predict_proba_one(x)  # type: ignore[attr-defined, no-any-return]

    def learn_one(self, x: dict[str, float], y: bool, w: float = 1.0) -> None:
        self.taught.append((copy.deepcopy(x), y))
        self.weights.append(w)
        self.model.learn_one(x, y, w=w)  # type: ignore[attr-defined]


def test_a_feature_computed_after_the_prediction_cannot_change_what_is_learned() -> None:
    later = [ev.PaymentAttempted(id="late", time=500.0, session_id="s", success=False),
             ev.FormFieldError(id="late2", time=501.0, session_id="s", field="cvc"),
             ev.CartUpdated(id="late3", time=502.0, session_id="s", action="add",
                            cart_value=999.0)]
    taught = []
    for after in ([], later):
        spy = _Spy(_trained().model)
        proc = SessionProcessor([AbandonmentScorer(model=spy)])
        state, _ = proc.apply(None, _checkout("s", 0.0, 0, order=False)[:1])
        at_prediction = checkout_features(state, _checkout("s", 0.0, 0, order=False)[0])
        p = state.abandon_probability
        # What the session does after the prediction changes its features...
        state, _ = proc.apply(state, after)
        if after:
            now = checkout_features(state, later[0])
            assert now != at_prediction and now["payment_failures"] == 1.0
            assert now["cart_value"] > at_prediction["cart_value"]
        proc.finish(state, {"converted": False})
        # ... but the example learned for that prediction is what was known then.
        assert spy.taught[0] == (at_prediction, True)
        assert state.abandon_probability is not None
        taught.append((spy.taught[0], p))
    assert taught[0] == taught[1]


def test_outcomes_teach_after_the_same_delay_whether_ordered_or_idle() -> None:
    scorer = AbandonmentScorer(record=True, label_after_s=120)
    eng = Engine(SessionProcessor([scorer]), session_gap=600)
    out = Outputs()
    eng.feed(_checkout("a", 0.0, 2, order=False), None, out)
    assert scorer.learned == 0  # a's outcome is not known yet
    eng.feed(_checkout("b", 10.0, 0, order=True), None, out)
    # b ordered at 70 s: held until 190 s, the delay an abandonment's label has.
    assert scorer.learned == 0 and len(scorer.held) == 2
    eng.feed([ev.PageView(id="x", time=150.0, session_id="c")], None, out)
    assert scorer.learned == 0  # a's last checkout event was at 41 s: not idle long enough
    eng.feed([ev.PageView(id="y", time=170.0, session_id="c")], None, out)
    assert scorer.learned == 4 and [a for _, a in scorer.history] == [True] * 4
    eng.feed([ev.CheckoutStarted(id="d", time=200.0, session_id="d", cart_value=5.0)], None,
             out)
    assert scorer.learned == 6 and scorer.history[4:] == [(0.5, False), (0.5, False)]
    assert out.outcomes == []  # labels did not wait for the sessions to expire


def test_a_session_that_expires_first_is_learned_at_its_expiry() -> None:
    scorer = AbandonmentScorer(label_after_s=3600)
    eng = Engine(SessionProcessor([scorer]), session_gap=60)
    out = Outputs()
    eng.feed(_checkout("a", 0.0, 1, order=False), None, out)
    eng.feed([ev.PageView(id="x", time=1000.0, session_id="c")], None, out)
    assert [o["session_id"] for o in out.outcomes] == ["a"] and scorer.learned == 3


def test_a_long_checkout_is_learned_from_a_sample_of_its_scores_and_its_last() -> None:
    # A full checkout with a backtrack: 26 scored events. Were only its latest snapshots
    # learned, the model would only ever see step 1 in checkouts that were abandoned; were
    # all of them, a long checkout would weigh as much as 10 short ones.
    sid, evs = "long", [ev.CheckoutStarted(id="c", time=0.0, session_id="long", cart_value=50.0)]
    steps = [1, 2, 3, 2, 3, 2, 3, 4]
    for i, step in enumerate(steps):
        evs.append(ev.CheckoutStepViewed(id=f"v{i}", time=10.0 * i + 1, session_id=sid,
                                         step=step))
        evs.append(ev.FormFieldError(id=f"e{i}", time=10.0 * i + 2, session_id=sid,
                                     field="email"))
        evs.append(ev.CheckoutStepCompleted(id=f"d{i}", time=10.0 * i + 5, session_id=sid,
                                            step=step))
    evs += [ev.PaymentAttempted(id="p", time=100.0, session_id=sid, success=True),
            ev.OrderCompleted(id="o", time=101.0, session_id=sid, revenue=50.0)]
    spy = _Spy(abandonment_model())
    scorer = AbandonmentScorer(model=spy, learned_per_session=4)
    state, _ = SessionProcessor([scorer]).apply(None, evs)
    scorer.tick(state, 101.0 + scorer.label_after_s)  # the held order is released
    scored = len(evs) - 1
    # 26 scores: a sample of 3 of the first 25, and the last.
    assert scored == 26 and len(spy.taught) == scorer.learned == 4
    assert all(not abandoned for _, abandoned in spy.taught)
    assert spy.taught[-1][0]["event=payment_attempted"] == 1.0
    assert all("event=payment_attempted" not in x for x, _ in spy.taught[:-1])
    # Each of the sample stands for a third of the 25 scores before the last, the last for
    # itself: the checkout weighs what its 26 scores did.
    assert spy.weights == pytest.approx([25 / 3] * 3 + [1.0])


def test_every_score_of_a_checkout_is_as_likely_to_be_learned() -> None:
    # Before: a grid of every 2nd, 4th, 8th... score learned the scores at even places only.
    # On simulated checkouts, where a step's view and its completion alternate, one kind of
    # event was then hardly ever learned but at a checkout's end, and the model read the
    # event and the step as signs of the outcome (online ROC AUC 0.710 against 0.726 when
    # every score was learned, seed 1).
    scorer = AbandonmentScorer(learned_per_session=4)
    kept = [0] * 20
    for s in range(1200):
        state = SessionState(session_id=f"s{s}")
        for n in range(20):
            scorer._keep(state, [{"n": float(n)}, 0.5, float(n)])
            memory = state.detector_state["abandonment"]
            at = state.detector_state["abandonment_sample"][1]
            # What is stored is what the sample says, the latest last and open for explain().
            assert [msgspec.json.decode(m)[0]["n"] if isinstance(m, msgspec.Raw) else m[0]["n"]
                    for m in memory] == at
            assert isinstance(memory[-1], list) and len(memory) <= 4 and at[-1] == n
        for i in state.detector_state["abandonment_sample"][1]:
            kept[i] += 1
    assert kept[19] == 1200  # the latest
    # Each of the 19 before it in 3 of 19 sessions: 189.5 expected, sd about 12.6.
    assert all(140 < k < 240 for k in kept[:19]), kept
    assert abs(sum(kept[0:19:2]) / 10 - sum(kept[1:19:2]) / 9) < 30
    # The same session keeps the same snapshots (on any worker, in any process).
    again = SessionState(session_id=state.session_id)
    for n in range(20):
        AbandonmentScorer(learned_per_session=4)._keep(again, [{"n": float(n)}, 0.5, float(n)])
    assert again.detector_state["abandonment_sample"] == state.detector_state[
        "abandonment_sample"]


def test_a_session_stored_before_samples_is_thinned_and_kept_going() -> None:
    scorer = AbandonmentScorer(learned_per_session=4)
    # Every snapshot kept (before grids): thinned to 4 at its next one.
    old = SessionState(session_id="old", detector_state={
        "abandonment": [[{"n": float(n)}, 0.5, float(n)] for n in range(10)]})
    scorer._keep(old, [{"n": 10.0}, 0.5, 10.0])
    assert len(old.detector_state["abandonment"]) == 4
    assert old.detector_state["abandonment_sample"][0] == 11
    assert old.detector_state["abandonment_sample"][1][-1] == 10
    # A grid (before samples) or a sample that no longer matches its snapshots (the budget
    # dropped one memory, not the other) is made again from them.
    odd = SessionState(session_id="odd", detector_state={
        "abandonment": [[{"n": 0.0}, 0.5, 0.0]], "abandonment_grid": [9, 4, [0, 4, 8]]})
    scorer._keep(odd, [{"n": 1.0}, 0.5, 1.0])
    assert odd.detector_state["abandonment_sample"] == [2, [0, 1]]
    assert "abandonment_grid" not in odd.detector_state
    with pytest.raises(ValueError, match="learned_per_session"):
        AbandonmentScorer(learned_per_session=1)


def test_a_session_of_thousands_of_scores_weighs_no_more_than_32() -> None:
    scorer = AbandonmentScorer(learned_per_session=4)
    state = SessionState(session_id="bot")
    for n in range(5000):
        scorer._keep(state, [{"n": float(n)}, 0.5, float(n)])
    kept, weights = scorer._taken(state)
    assert len(kept) == 4 and sum(weights) == pytest.approx(32)
    assert weights[-1] == pytest.approx(32 / 5000)  # the latest stands for one score
    assert "abandonment" not in state.detector_state
    assert "abandonment_sample" not in state.detector_state


def test_scores_learn_the_pattern_and_name_their_factors() -> None:
    scorer = _trained()
    proc = SessionProcessor([scorer])
    calm, _ = proc.apply(None, _checkout("calm", 0.0, 0, order=False)[:2])
    bad, _ = proc.apply(None, _checkout("bad", 0.0, 2, order=False))
    assert calm.abandon_probability is not None and bad.abandon_probability is not None
    # Before a decline both kinds of training session looked alike: about even.
    assert bad.abandon_probability > 0.8 and 0.35 < calm.abandon_probability < 0.65
    factors = scorer.explain(bad)
    assert factors and any("declined" in f for f in factors), factors
    assert scorer.explain(SessionState(session_id="never scored")) == []


def test_a_feature_sent_only_when_it_holds_is_learned_and_named() -> None:
    # The device is sent only as ``device=<name>: 1.0``. Standardised, such a feature has no
    # variance and adds nothing (the model before: every mobile checkout scored as any
    # other); passed as it is, its weight is learned and it can be a factor.
    scorer = AbandonmentScorer()
    proc = SessionProcessor([scorer])
    for i in range(300):
        mobile = i % 2 == 1
        state, _ = proc.apply(None, [ev.CheckoutStarted(
            id=f"m{i}", time=i * 1000.0, session_id=f"m{i}", cart_value=60.0,
            device="mobile" if mobile else "desktop")])
        proc.finish(state, {"converted": not mobile})
    phone, _ = proc.apply(None, [ev.CheckoutStarted(id="p", time=1e6, session_id="p",
                                                    cart_value=60.0, device="mobile")])
    desk, _ = proc.apply(None, [ev.CheckoutStarted(id="d", time=1e6, session_id="d",
                                                   cart_value=60.0, device="desktop")])
    assert phone.abandon_probability is not None and desk.abandon_probability is not None
    assert phone.abandon_probability > 0.65 and desk.abandon_probability < 0.35
    assert scorer.explain(phone)[0] == "on mobile"


def test_an_alert_carries_the_models_probability_and_factors() -> None:
    scorer = _trained()
    state, _ = SessionProcessor([scorer]).apply(None, _checkout("s", 0.0, 2, order=False))
    assert state.abandon_probability is not None
    sig = Signal(type="payment_declined", session_id="s", time=42.0, start=40.0, step=3)
    [alert], _ = Alerting(explain=scorer.explain).on_signals(state, [sig])
    data = alert["data"]
    assert data["abandon_probability"] == round(state.abandon_probability, 3)
    assert data["revenue_at_risk"] == round(120.0 * state.abandon_probability, 2)
    assert data["abandon_factors"] == scorer.explain(state) != []


def test_quality_is_measured_on_outcomes_before_learning() -> None:
    scorer = AbandonmentScorer(window=4)
    assert scorer.quality()["roc_auc"] != scorer.quality()["roc_auc"]  # NaN: nothing yet
    scorer.recent.extend([(0.9, True), (0.8, True), (0.2, False), (0.6, False)])
    q = scorer.quality()
    assert q["roc_auc"] == 1.0 and q["accuracy"] == 0.75 and 0 < q["log_loss"] < 1


def test_a_restored_checkpoint_gives_the_same_predictions() -> None:
    scorer = _trained()
    saved = scorer.checkpoint()
    fresh = AbandonmentScorer()
    fresh.restore(saved)
    probes = [checkout_features(s, e) for s, e in (
        (SessionState(session_id="p", checkout_step=k, payment_failures=f, cart_value=50.0 * k),
         ev.CheckoutStepViewed(id="e", time=5.0, session_id="p", step=k))
        for k in (1, 2, 3) for f in (0, 1, 3))]
    assert [fresh.model.predict_proba_one(x) for x in probes] == \
        [scorer.model.predict_proba_one(x) for x in probes]
    assert fresh.learned == scorer.learned
    assert fresh.model.predict_proba_one(probes[0]) != \
        abandonment_model().predict_proba_one(probes[0])  # it did learn something


def test_a_checkpoint_from_another_river_version_is_refused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    saved = _trained(10).checkpoint()
    monkeypatch.setattr(checkpoint.river, "__version__", "0.0.1")
    with pytest.raises(checkpoint.CheckpointError, match="River"):
        AbandonmentScorer().restore(saved)
    with pytest.raises(checkpoint.CheckpointError):
        checkpoint.loads(b"not a checkpoint")


def test_a_checkpoint_of_the_models_older_form_is_refused_and_it_starts_fresh() -> None:
    """A worker upgraded past a change of the model's form must not keep running the old model
    it learned (the old pipeline never learned the indicator features)."""
    scorer = _trained(10)
    old_form = checkpoint.dump_fields(scorer, AbandonmentScorer.LEARNED)  # before forms
    fresh = AbandonmentScorer()
    with pytest.raises(checkpoint.CheckpointError, match="older form"):
        fresh.restore(old_form)
    assert fresh.learned == 0
    fresh.restore(scorer.checkpoint())  # this form: taken
    assert fresh.learned == scorer.learned > 0


def test_a_state_written_and_read_back_between_events_teaches_the_same() -> None:
    """Earlier snapshots are kept as their JSON: a worker that keeps a session in memory and
    one that reads it back from the changelog after every event store the same bytes and
    teach the same examples."""
    evs = _checkout("s", 0.0, declines=3, order=False)
    kept, reread = _Spy(abandonment_model()), _Spy(abandonment_model())
    # Every snapshot learned: the test compares each of them.
    proc_kept = SessionProcessor([AbandonmentScorer(model=kept, learned_per_session=len(evs))])
    proc_reread = SessionProcessor([AbandonmentScorer(model=reread,
                                                      learned_per_session=len(evs))])
    state: SessionState | None = None
    stored: SessionState | None = None
    for e in evs:
        state, _ = proc_kept.apply(state, [e])
        stored, _ = proc_reread.apply(stored, [e])
        assert encode_state(state) == encode_state(stored)
        stored = decode_state(encode_state(stored))
    assert state is not None and stored is not None
    memory = state.detector_state["abandonment"]
    assert len(memory) == len(evs) and all(isinstance(s, msgspec.Raw) for s in memory[:-1])
    proc_kept.finish(state, {"converted": False})
    proc_reread.finish(stored, {"converted": False})
    assert len(kept.taught) == len(evs) and kept.taught == reread.taught
    assert kept.model._last_step.weights == reread.model._last_step.weights  # type: ignore[attr-defined]


def test_a_step_viewed_again_with_nothing_new_is_not_scored_but_keeps_the_checkout_open(
) -> None:
    # A shopper reloading the review page: one score for the step, not one per reload. The
    # outcome still waits for label_after_s after the last view (they are still there).
    scorer = AbandonmentScorer()
    proc = SessionProcessor([scorer])
    sid = "reload"
    state, _ = proc.apply(None, [
        ev.CheckoutStarted(id="c", time=0.0, session_id=sid, cart_value=80.0),
        ev.CheckoutStepViewed(id="v0", time=10.0, session_id=sid, step=3)])
    grid = state.detector_state["abandonment_sample"]
    assert grid[0] == 2
    for i in range(1, 6):
        proc.apply(state, [ev.CheckoutStepViewed(id=f"v{i}", time=10.0 + 300 * i,
                                                 session_id=sid, step=3)])
        assert grid[0] == 2  # not scored
        assert scorer.due(state) == 10.0 + 300 * i + scorer.label_after_s
    assert state.due_at == scorer.due(state)
    # Something new since the last score (a declined payment, another step): scored again.
    proc.apply(state, [ev.PaymentAttempted(id="p", time=1600.0, session_id=sid, success=False),
                       ev.CheckoutStepViewed(id="v9", time=1601.0, session_id=sid, step=3),
                       ev.CheckoutStepViewed(id="v10", time=1602.0, session_id=sid, step=2)])
    assert grid[0] == 5
    # A view after another kind of score is scored: only a view repeats a view.
    proc.apply(state, [ev.CouponEntered(id="k", time=1603.0, session_id=sid, code="X",
                                         success=True),
                       ev.CheckoutStepViewed(id="v11", time=1604.0, session_id=sid, step=2)])
    assert grid[0] == 7
    # It survives its state's round trip (snapshots read back as lists).
    again = decode_state(encode_state(state))
    proc.apply(again, [ev.CheckoutStepViewed(id="v12", time=1700.0, session_id=sid, step=2)])
    assert again.detector_state["abandonment_sample"][0] == 7
    assert scorer.due(again) == 1700.0 + scorer.label_after_s
