"""Multi-touch attribution (``models.attribution``) against simulated journeys whose channel
effects are known (``streams.sim.journeys``)."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

from models.attribution import (
    BASELINE,
    CONVERSION,
    MODELS,
    NULL,
    START,
    Attribution,
    Journey,
    journeys_from_outcomes,
    rank,
    removal_effects,
    touch_hazards,
)
from streams.sim.journeys import BASE, EFFECTS, FIRST_TOUCH, JourneyConfig, simulate_journeys


def _kendall(order: list[str], truth: list[str]) -> float:
    pos = {ch: i for i, ch in enumerate(order)}
    n = len(truth)
    s = sum((1 if pos[truth[i]] < pos[truth[j]] else -1)
            for i in range(n) for j in range(i + 1, n))
    return s / (n * (n - 1) / 2)


def test_every_model_shares_out_every_conversion_and_all_revenue() -> None:
    sim = simulate_journeys(JourneyConfig(journeys=3000, seed=5))
    a = Attribution()
    a.learn_many(sim.journeys)
    c = a.credits()
    conversions = sum(j.converted for j in sim.journeys)
    revenue = sum(j.revenue for j in sim.journeys)
    assert a.conversions == conversions > 50
    for m in MODELS:
        assert math.isclose(sum(v.conversions for v in c[m].values()), conversions), m
        assert math.isclose(sum(v.revenue for v in c[m].values()), revenue), m


def test_a_channel_that_never_leads_to_an_order_gets_no_markov_credit() -> None:
    counts = {START: {"a": 5, "b": 5}, "a": {CONVERSION: 3, NULL: 2}, "b": {NULL: 5}}
    assert removal_effects(counts) == pytest.approx({"a": 1.0, "b": 0.0}, abs=1e-12)


def test_learning_is_online_and_picklable() -> None:
    sim = simulate_journeys(JourneyConfig(journeys=500, seed=2))
    whole = Attribution()
    whole.learn_many(sim.journeys)
    half = Attribution()
    half.learn_many(sim.journeys[:250])
    half = pickle.loads(pickle.dumps(half))
    half.learn_many(sim.journeys[250:])
    assert half.credits() == whole.credits()


def test_bad_parameters() -> None:
    with pytest.raises(ValueError):
        Attribution(half_life=0)
    with pytest.raises(ValueError):
        Attribution(position_ends=0.6)
    with pytest.raises(ValueError):
        JourneyConfig(effects={"direct": 0.1})


def test_simulation_is_deterministic_and_truth_follows_the_effects() -> None:
    a = simulate_journeys(JourneyConfig(journeys=400, seed=9))
    assert a == simulate_journeys(JourneyConfig(journeys=400, seed=9))
    # Every channel as likely in every visit: the truth is the order of the per-touch effects.
    even = dict.fromkeys(FIRST_TOUCH, 1.0)
    sim = simulate_journeys(JourneyConfig(journeys=4000, seed=1, first=even, returning=even))
    assert sim.true_order() == sorted(EFFECTS, key=lambda c: -EFFECTS[c])


def test_truth_is_the_conversions_lost_when_a_channel_is_taken_out_of_every_journey() -> None:
    # What a marketer means by a channel's incremental conversions, recomputed by brute force:
    # drop the channel's touches from each journey and sum the fall in its order chance.
    sim = simulate_journeys(JourneyConfig(journeys=300, seed=11))

    def p_order(channels: list[str]) -> float:
        return 1.0 - (1.0 - BASE) * math.prod(1.0 - EFFECTS[c] for c in channels)

    for ch in EFFECTS:
        lost = 0.0
        for j in sim.journeys:
            channels = [c for c, _ in j.touches]
            lost += p_order(channels) - p_order([c for c in channels if c != ch])
        assert sim.incremental[ch] == pytest.approx(lost, rel=1e-9), ch


def test_markov_ranking_against_the_truth_as_the_readme_says() -> None:
    # The README's Attribution section: on the default journeys (discovery channels first,
    # direct and email coming back) the Markov removal effect gets the top and the bottom of
    # the true order but, like the rule-based models, ranks direct (frequent, closing, weak)
    # far above its true place; it is not the true order. This is bias, not noise: the bench
    # finds it at every size up to 100,000 journeys, and in chains of order 2 and 3.
    sim = simulate_journeys(JourneyConfig(journeys=5000, seed=0))
    truth = sim.true_order()
    a = Attribution()
    a.learn_many(sim.journeys)
    markov = rank(a.credits()["markov"])
    assert markov[0] == truth[0] and markov[-2:] == truth[-2:]
    assert markov.index("direct") < truth.index("direct") - 2
    assert markov != truth
    assert _kendall(markov, truth) > 0.4


#: Four channels far apart: a strong rare one, email coming back, social discovering, and
#: direct (frequent, closing, nearly useless). On 10,000 journeys the data-driven model finds
#: the true order for each of seeds 0-19 and Markov for none (measured when written).
_APART = {"effects": {"paid_search": 0.12, "email": 0.07, "social": 0.025, "direct": 0.005},
          "first": {"social": 0.5, "paid_search": 0.3, "direct": 0.2},
          "returning": {"direct": 0.6, "email": 0.3, "paid_search": 0.1}}


@pytest.fixture(scope="module")
def apart() -> tuple[list[str], Attribution]:
    sim = simulate_journeys(JourneyConfig(journeys=10_000, seed=0, **_APART))  # type: ignore[arg-type]
    a = Attribution()
    a.learn_many(sim.journeys)
    return sim.true_order(), a


def test_data_driven_model_ranks_the_channels_in_the_true_order(
        apart: tuple[list[str], Attribution]) -> None:
    # The acceptance line, on journeys small enough for a unit test: the true order is
    # paid_search > email > social > direct; Markov puts direct first (it closes most paths).
    truth, a = apart
    credits = a.credits()
    assert truth == ["paid_search", "email", "social", "direct"]
    assert rank(credits["counterfactual"]) == truth
    assert rank(credits["markov"])[0] == "direct"


def test_touch_effects_recover_the_simulated_effects(
        apart: tuple[list[str], Attribution]) -> None:
    _, a = apart
    fitted = a.touch_effects()
    assert fitted[BASELINE] == pytest.approx(BASE, abs=0.01)
    for ch, effect in _APART["effects"].items():
        assert fitted[ch] == pytest.approx(effect, abs=0.02), ch


def test_touch_hazards_fit_the_maximum_likelihood() -> None:
    # Exactly consistent counts: the fit returns the generating hazards; no conversion
    # anywhere but in one vector moves only that vector's channel.
    h = np.array([0.02, 0.3, 0.05])
    x = np.array([[1.0, 0.0], [0.0, 2.0], [2.0, 1.0], [0.0, 0.0]])
    n = np.full(4, 10_000.0)
    k = n * -np.expm1(-(h[0] + x @ h[1:]))
    assert touch_hazards(x, n, k) == pytest.approx(h, abs=1e-4)
    assert np.all(touch_hazards(x, n, np.array([0.0, 0.0, 5.0, 0.0])) >= 0.0)


def test_journeys_from_engine_outcomes() -> None:
    outs = [
        {"customer_id": "c", "session_id": "a", "start": 1.0, "source": "paid_social"},
        {"customer_id": "c", "session_id": "b", "start": 2.0, "source": None,
         "converted": True, "revenue": 9.0},  # no page view: no touch, but the order counts
        {"customer_id": "c", "session_id": "b", "start": 3.0, "source": "direct",
         "continued": True},
        {"customer_id": None, "session_id": "x", "start": 0.0, "source": None,
         "converted": True, "revenue": 5.0},  # nothing to credit
    ]
    assert journeys_from_outcomes(outs) == [Journey((("paid_social", 1.0),), True, 9.0)]


def test_journeys_survive_the_whole_path() -> None:
    # Segment calls -> adapter -> traffic source of the landing page -> sessions -> outcomes
    # -> journeys: the simulated journeys come back as they were played.
    from streams.report import gather_journeys
    from streams.settings import load

    data = gather_journeys(load(), journeys=300, seed=3)
    sim = simulate_journeys(JourneyConfig(journeys=300, seed=3))
    back = journeys_from_outcomes(data.outcomes)
    assert [([c for c, _ in j.touches], j.converted, j.revenue) for j in back] == \
        [([c for c, _ in j.touches], j.converted, j.revenue) for j in sim.journeys]
    assert all(t == pytest.approx(u, abs=1e-3) for a, b in zip(back, sim.journeys, strict=True)
               for (_, t), (_, u) in zip(a.touches, b.touches, strict=True))
    assert data.true_incremental == sim.incremental


def test_counterfactual_needs_both_outcomes() -> None:
    a = Attribution()
    a.learn_one(Journey((("email", 0.0),), converted=True, revenue=5.0))
    assert a.credits()["counterfactual"] == {"email": (0.0, 0.0)}
