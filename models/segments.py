"""Customer segments, learned online: at most ``k`` groups of customers by recency, frequency,
spend, friction met and support load, each described in words from its centroid.

Features are standardised online (River's ``StandardScaler``), so a centroid coordinate is in
standard deviations from the population's mean: ``describe`` names the features more than
``threshold`` of them away ("frequent", "high spenders", "much friction", ...). Segment ids are
the cluster indices of River's ``cluster.KMeans`` (``"s0"`` .. ``"s{k-1}"``): a fixed number of
centres, so the id is a bounded label (metrics, dashboards) and stays the same as centres move.

>>> import random
>>> rng = random.Random(0)
>>> seg = Segmenter(k=2, seed=1)
>>> def customer(big):
...     return {"frequency": rng.gauss(8 if big else 1, 0.5),
...             "spend": rng.gauss(6 if big else 2, 0.3), "friction": rng.gauss(0.2, 0.05)}
>>> for i in range(600):
...     seg.learn_one(customer(i % 2 == 0))
>>> big, small = seg.predict_one(customer(True)), seg.predict_one(customer(False))
>>> big != small, seg.describe(big), seg.describe(small)
(True, 'frequent, high spenders', 'infrequent, low spenders')
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from river import cluster, preprocessing

__all__ = ["Segmenter", "WORDS", "segment_features"]

DAY = 86400.0

#: Feature -> (word when high, word when low), in the order descriptions name them.
WORDS: dict[str, tuple[str, str]] = {
    "recency": ("lapsed", "recently active"),
    "frequency": ("frequent", "infrequent"),
    "spend": ("high spenders", "low spenders"),
    "friction": ("much friction", "little friction"),
    "support": ("heavy support load", "rarely contact support"),
}


def segment_features(state: Any, now: float) -> dict[str, float]:
    """Recency, frequency, spend, friction and support load of a customer
    (``detectors.customer.CustomerState``) at ``now``, on log scales (all are skewed)."""
    sessions = state.recent_sessions
    last = sessions[-1][0] if sessions else state.first_time
    recent = [s for s in sessions if now - s[0] <= 90 * DAY]
    friction = sum(s[1] for s in sessions) / len(sessions) if sessions else 0.0
    return {
        "recency": math.log1p(max(now - last, 0.0) / DAY),
        "frequency": math.log1p(len(recent)),
        "spend": math.log1p(max(state.revenue, 0.0)),
        "friction": math.log1p(friction),
        "support": math.log1p(sum(1 for t in state.recent_tickets if now - t[0] <= 90 * DAY)),
    }


class Segmenter:
    """Online segments of customers (see the module).

    Parameters
    ----------
    k
        Number of segments: the label's cardinality.
    halflife
        How far a centre moves toward each customer it wins (River ``KMeans``).
    threshold
        Standard deviations from the population mean a centre must be for ``describe`` to
        name the feature.
    seed
        Seeds the initial centres.
    """

    def __init__(self, k: int = 4, halflife: float = 0.1, threshold: float = 0.5,
                 seed: int = 42) -> None:
        if k < 1 or not 0 < halflife <= 1 or threshold < 0:
            raise ValueError("need k >= 1, 0 < halflife <= 1, threshold >= 0")
        self.k, self.halflife, self.threshold, self.seed = k, halflife, threshold, seed
        self.scaler = preprocessing.StandardScaler()
        # Centres start near the population mean (0 in standard units), spread enough to
        # take different customers from the first ones on.
        self.kmeans = cluster.KMeans(n_clusters=k, halflife=halflife, mu=0.0, sigma=1.0,
                                     seed=seed)
        # River draws a centre's coordinate when a feature is first met, in an order that
        # follows string hashing (it differs per process): drawn here in a fixed order, the
        # same seed gives the same centres in every process.
        for i in range(k):
            for feature in WORDS:
                _ = self.kmeans.centers[i][feature]

    def learn_one(self, x: Mapping[str, float]) -> None:
        self.scaler.learn_one(dict(x))
        self.kmeans.learn_one(self.scaler.transform_one(dict(x)))

    def predict_one(self, x: Mapping[str, float]) -> str:
        """The segment id of ``x``: ``"s0"`` .. ``"s{k-1}"``."""
        return f"s{self.kmeans.predict_one(self.scaler.transform_one(dict(x)))}"

    def describe(self, segment: str) -> str:
        """The segment in words, from its centre relative to the population ("frequent, high
        spenders, little friction"); ``"typical customers"`` when nothing stands out."""
        centre: dict[str, float] = self.kmeans.centers.get(int(segment[1:]), {})
        words = []
        for feature, (high, low) in WORDS.items():
            if not self.scaler.counts.get(feature):
                continue  # never seen: its coordinate is still the random start
            z = centre.get(feature, 0.0)
            if z >= self.threshold:
                words.append(high)
            elif z <= -self.threshold:
                words.append(low)
        return ", ".join(words) or "typical customers"

    def segments(self) -> dict[str, str]:
        """Every segment id with its description."""
        return {f"s{i}": self.describe(f"s{i}") for i in range(self.k)}
