"""Customer segments: descriptions from centroids, stable bounded ids."""

from __future__ import annotations

import random

import pytest

from detectors.customer import apply_customer
from detectors.events import SessionSummary, Ticket
from models.segments import Segmenter, segment_features

DAY = 86400.0

#: Three kinds of customer: (frequency, spend, friction, support) means.
KINDS = {"loyal": (8.0, 6.0, 0.1, 0.2), "troubled": (4.0, 3.0, 2.0, 2.0),
         "occasional": (1.0, 1.0, 0.1, 0.2)}


def _customer(rng: random.Random, kind: str) -> dict[str, float]:
    f, s, fr, su = KINDS[kind]
    return {"recency": rng.gauss(1.0, 0.2), "frequency": rng.gauss(f, 0.4),
            "spend": rng.gauss(s, 0.3), "friction": max(rng.gauss(fr, 0.1), 0.0),
            "support": max(rng.gauss(su, 0.2), 0.0)}


def _trained(seed: int = 3, n: int = 1500) -> Segmenter:
    rng = random.Random(seed)
    seg = Segmenter(k=3, seed=seed)
    for i in range(n):
        seg.learn_one(_customer(rng, list(KINDS)[i % 3]))
    return seg


def test_each_kind_gets_its_own_segment_described_from_its_centroid() -> None:
    seg = _trained()
    rng = random.Random(99)
    ids = {kind: seg.predict_one(_customer(rng, kind)) for kind in KINDS}
    assert len(set(ids.values())) == 3
    assert "frequent" in seg.describe(ids["loyal"]) \
        and "high spenders" in seg.describe(ids["loyal"])
    assert "much friction" in seg.describe(ids["troubled"]) \
        and "heavy support load" in seg.describe(ids["troubled"])
    assert seg.describe(ids["occasional"]).startswith("infrequent, low spenders")
    assert "much friction" not in seg.describe(ids["loyal"])


def test_ids_are_bounded_and_stable_as_learning_goes_on() -> None:
    seg = _trained()
    rng = random.Random(7)
    probes = [(kind, _customer(rng, kind)) for kind in KINDS for _ in range(20)]
    before = [seg.predict_one(x) for _, x in probes]
    more = random.Random(8)
    for i in range(1500):
        seg.learn_one(_customer(more, list(KINDS)[i % 3]))
    assert [seg.predict_one(x) for _, x in probes] == before
    assert set(before) <= set(seg.segments()) == {"s0", "s1", "s2"}
    # Seeded: the same stream gives the same segments.
    assert [_trained().predict_one(x) for _, x in probes[:5]] == before[:5]


def test_features_from_a_customer_state() -> None:
    state = apply_customer(None, [
        SessionSummary(id="s1", time=0.0, session_id="w", customer_id="c",
                       friction={"rage_click": 3}, converted=True, revenue=99.0),
        Ticket(id="t", time=DAY, session_id="c", customer_id="c", action="created",
               ticket_id="1"),
    ])
    x = segment_features(state, 11 * DAY)
    assert x["recency"] == pytest.approx(2.4849, abs=1e-3)  # log1p(11 days)
    assert x["frequency"] == pytest.approx(0.6931, abs=1e-3)
    assert x["support"] == pytest.approx(0.6931, abs=1e-3)
    assert x["spend"] > 4 and x["friction"] > 1


def test_bad_parameters_raise() -> None:
    with pytest.raises(ValueError):
        Segmenter(k=0)
