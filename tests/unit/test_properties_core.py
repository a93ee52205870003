"""Properties of the core (issue 13, item 3): the engine, the models and stored state.

- the engine: feeding any sequence of events the edge accepted (``normalize``) never raises,
  nor do its deadlines and expiries (the worker's event-time timer), and every output encodes;
- the customers' side: ``apply_customer`` and the churn model on any accepted support events;
- the models: no exception and no score outside [0, 1] (NaN included) for any state, finite
  or not, and no non-finite learned weight; their quality gauges never raise;
- state: every session and customer state the core produces reads back equal after
  ``encode_state``/``decode_state`` (``encode_customer``/``decode_customer``).
"""

from __future__ import annotations

import math
from typing import Any

import msgspec
from fuzzgen import exemplars, model_weights_finite
from fuzzstrategies import BASE, PROFILE, canonical_events, hostile_numbers, json_values
from hypothesis import given
from hypothesis import strategies as st

from detectors.customer import CustomerState, apply_customer, decode_customer, encode_customer
from detectors.engine import Engine, Outputs
from detectors.events import CheckoutStepViewed, PaymentAttempted
from detectors.session import SessionState, as_read, decode_state, encode_state
from models.abandonment import AbandonmentScorer
from models.churn import ChurnScorer
from streams import detection
from streams.normalize import normalize
from streams.settings import Settings

_enc = msgspec.json.Encoder()


def _score_ok(p: float | None) -> bool:
    return p is None or (math.isfinite(p) and 0.0 <= p <= 1.0)


def _check_outputs(out: Outputs) -> None:
    for doc in (*out.signals, *out.alerts, *out.chats, *out.experiments, *out.outcomes):
        _enc.encode(doc)
    for doc in out.alerts:
        risk = doc["data"]["revenue_at_risk"]
        assert math.isfinite(risk) and risk >= 0, doc
    for o in out.outcomes:
        assert math.isfinite(o["revenue"]) and o["revenue"] >= 0, o


#: The producer's max request size (``streams.app``): a state written to its changelog above
#: it ended the worker (the issue's first crash input).
MAX_RECORD = 1_048_576


def _check_state(state: SessionState) -> None:
    data = encode_state(state)
    assert len(data) <= MAX_RECORD, len(data)
    assert decode_state(data) == as_read(state)
    assert _score_ok(state.abandon_probability), state.abandon_probability


@PROFILE
@given(canonical_events)
def test_engine_takes_any_accepted_events(events: list[dict[str, Any]]) -> None:
    settings = Settings()
    engine: Engine = detection.engine(settings)
    churn = detection.churn(settings)
    assert churn is not None
    customers: dict[str, bytes] = {}
    for offset, e in enumerate(events):
        norm = normalize(_enc.encode(e), "canonical", max_bytes=512 * 1024, max_events=1000,
                         now=BASE, offset=offset)
        out = Outputs()
        for evs in norm.web.values():
            engine.feed(evs, ("i0", offset), out)
            _check_state(engine.sessions[evs[0].session_id])
        engine.advance(engine.watermark, out)  # the worker's 1 s event-time timer
        _check_outputs(out)
        for state in engine.sessions.values():
            _check_state(state)
        for cid, evs in norm.support.items():
            raw = customers.get(cid)
            cstate = apply_customer(decode_customer(raw) if raw else None, evs, ("i0", offset))
            doc = churn.update(cstate)
            if doc is not None:
                _enc.encode(doc)
            assert _score_ok(cstate.churn_risk), cstate.churn_risk
            customers[cid] = encode_customer(cstate)
            assert decode_customer(customers[cid]) == cstate
    out = engine.close()
    _check_outputs(out)
    model = detection.scorer(engine.processor)
    assert model is not None
    model.quality()  # the worker's model gauge
    churn.quality()
    assert model_weights_finite(model.model)
    assert model_weights_finite(churn.model)


def test_engine_takes_the_issue_exemplars() -> None:
    """The issue's reproducers, in order, through normalize, the engine (with its timer) and
    the models' gauges: none raises, every state stays small and reads back equal, every
    output encodes."""
    settings = Settings()
    engine: Engine = detection.engine(settings)
    for offset, case in enumerate(exemplars(BASE)):
        norm = normalize(case.raw, case.source, max_bytes=512 * 1024, max_events=1000,
                         now=BASE, offset=offset)
        out = Outputs()
        for evs in norm.web.values():
            engine.feed(evs, ("i0", offset), out)
        engine.advance(engine.watermark, out)
        _check_outputs(out)
        for state in engine.sessions.values():
            _check_state(state)
        model = detection.scorer(engine.processor)
        assert model is not None
        model.quality()
        assert model_weights_finite(model.model)
    _check_outputs(engine.close())


_numbers = st.one_of(st.floats(), hostile_numbers.filter(lambda v: type(v) is float))


@PROFILE
@given(st.lists(st.tuples(_numbers, _numbers, st.integers(-5, 10**6), st.booleans()),
                min_size=1, max_size=8), st.booleans())
def test_abandonment_model_any_state(rows: list[tuple[float, float, int, bool]],
                                     converted: bool) -> None:
    """Whatever numbers a session's state holds (cart value, times, steps; NaN and inf
    included), scores stay in [0, 1], learning leaves finite weights, quality never raises."""
    scorer = AbandonmentScorer()
    for i, (cart, t, step, declined) in enumerate(rows):
        state = SessionState(session_id=f"s{i}", cart_value=cart, first_time=t / 2,
                             checkout_step=step, max_checkout_step=step,
                             checkout_started_at=t / 3, page_views=abs(step), clicks=abs(step))
        event = PaymentAttempted(id="p", time=t, session_id=state.session_id,
                                 success=not declined) if declined else \
            CheckoutStepViewed(id="c", time=t, session_id=state.session_id, step=step)
        scorer.update(state, event)
        assert _score_ok(state.abandon_probability), state.abandon_probability
        scorer.learn(state, {"converted": converted})
        scorer.explain(state)
    scorer.quality()
    assert model_weights_finite(scorer.model)


@PROFILE
@given(st.dictionaries(st.text(max_size=10), st.one_of(st.floats(), hostile_numbers),
                       max_size=8))
def test_models_factors_any_features(x: dict[str, Any]) -> None:
    """Explaining a score from any feature dict (finite or not) never raises."""
    scorer = AbandonmentScorer()
    scorer.factors(x)
    ChurnScorer().explain(CustomerState(customer_id="c"), x)


@PROFILE
@given(st.lists(st.tuples(_numbers, _numbers, st.integers(0, 10**6), json_values),
                min_size=1, max_size=6))
def test_churn_model_any_state(rows: list[tuple[float, float, int, Any]]) -> None:
    """Any customer state (MRR, times, counts; NaN and inf included): risk in [0, 1] or None,
    finite weights. (States made by hand may hold what the edge never lets in, so their
    round trip is checked only for states the core made, above.)"""
    scorer = ChurnScorer(min_learned=0)
    for i, (mrr, t, n, trait) in enumerate(rows):
        state = CustomerState(customer_id=f"c{i}", mrr=mrr, first_time=t / 2, last_time=t,
                              tickets_created=n, tickets_open=n, sessions=n, revenue=mrr,
                              traits={"x": trait})
        doc = scorer.update(state, t)
        if doc is not None:
            _enc.encode(doc)
        assert _score_ok(state.churn_risk), state.churn_risk
        state.churned_at = t
        scorer.update(state, t + 1.0)
    scorer.quality()
    assert model_weights_finite(scorer.model)
