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
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from river import cluster, preprocessing

from detectors.customer import CustomerState, apply_customer, session_summary
from detectors.events import SessionSummary
from models import checkpoint
from models.finite import usable
from models.kpis import SegmentKpis, by_segment, merged

__all__ = ["UNKNOWN", "SegmentRow", "Segmenter", "WORDS", "label_outcomes", "learn_customer",
           "segment_features", "segment_rows", "session_segments"]

#: The segment of a session without a known customer (anonymous): the label's k+1-th value.
UNKNOWN = "unknown"

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


class Segmenter(checkpoint.Learned):
    """Online segments of customers (see the module). Its learned state is the scaler's
    running statistics and the ``k`` centres: bounded, whatever the number of customers.

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

    LEARNED = ("scaler", "kmeans", "learned")
    FINITE = ("scaler", "kmeans")

    def __init__(self, k: int = 4, halflife: float = 0.1, threshold: float = 0.5,
                 seed: int = 42) -> None:
        if k < 1 or not 0 < halflife <= 1 or threshold < 0:
            raise ValueError("need k >= 1, 0 < halflife <= 1, threshold >= 0")
        self.k, self.halflife, self.threshold, self.seed = k, halflife, threshold, seed
        self.learned = 0
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
        self.learned += 1

    def quality(self) -> dict[str, float]:
        """Nothing to score it against (no labels): the worker's model gauges stay empty."""
        return {}

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


# --- fed from customer state: the same code in the worker and offline ------------------------
#
# The segmenter learns at customer-level moments, a web session's end (its summary reaching
# the customer's state), not at every customer event: a learn costs tens of microseconds
# (bench/backtest_throughput.py measures what segments add). A session is labelled with the
# segment its customer was in before it (features just before the summary is folded in), so
# a session's own order does not pick its segment: conversion by segment is not conversion
# by conversion.


def session_segments(seg: Segmenter, state: CustomerState | None,
                     events: Sequence[Any]) -> list[tuple[SessionSummary, str]]:
    """Each session summary in ``events`` that ``state`` has not counted yet, with the
    segment of its customer just before it; call before folding ``events`` into ``state``.
    A customer without state yet is a new customer (recency, frequency and spend zero)."""
    out: list[tuple[SessionSummary, str]] = []
    for e in events:
        if type(e) is not SessionSummary:
            continue
        if state is not None and any(s[3] == e.id for s in state.recent_sessions):
            continue  # sent again after a crash: the customer's state counted it already
        before = state if state is not None else CustomerState(
            customer_id=e.customer_id or "", first_time=e.time, last_time=e.time)
        x = segment_features(before, e.time)
        out.append((e, seg.predict_one(x) if usable(x) else UNKNOWN))
    return out


def learn_customer(seg: Segmenter, state: CustomerState) -> None:
    """Learn the customer as they are now (after a session's end was folded in)."""
    x = segment_features(state, state.last_time)
    if usable(x):
        seg.learn_one(x)


def label_outcomes(seg: Segmenter, outcomes: Iterable[Mapping[str, Any]]) -> list[str]:
    """The segment of each session outcome (``detectors.engine.outcome``), in their order
    (the order the worker's customers agent gets their summaries): what the worker labels
    the KPIs with, from the outcomes alone (no support tickets: their load counts zero).
    Anonymous sessions are ``UNKNOWN``. Keeps every customer's state while it runs (offline).

    >>> day = 86400.0
    >>> seg = Segmenter(k=2, seed=1)
    >>> outs = [{"session_id": f"s{i}", "customer_id": "c1" if i % 2 else None,
    ...          "start": i * day, "end": i * day + 60, "converted": True, "orders": 1,
    ...          "revenue": 30.0, "cart_value": 30.0, "abandoned_step": None, "friction": {}}
    ...         for i in range(4)]
    >>> labels = label_outcomes(seg, outs)
    >>> labels[0], labels[1] in ("s0", "s1"), seg.learned
    ('unknown', True, 2)
    """
    return _fold(seg, outcomes)[0]


def _fold(seg: Segmenter, outcomes: Iterable[Mapping[str, Any]], learn: bool = True
          ) -> tuple[list[str], dict[str, CustomerState]]:
    states: dict[str, CustomerState] = {}
    labels: list[str] = []
    for o in outcomes:
        summary = session_summary(dict(o))
        if summary is None:
            labels.append(UNKNOWN)
            continue
        cid = summary.customer_id or ""
        state = states.get(cid)
        found = session_segments(seg, state, [summary])
        states[cid] = state = apply_customer(state, [summary])
        if found:
            if learn:
                learn_customer(seg, state)
            labels.append(found[0][1])
        else:  # the same session's summary again: where the customer is now
            labels.append(seg.predict_one(segment_features(state, summary.time)))
    return labels, states


@dataclass(frozen=True)
class SegmentRow:
    """One segment of a report: its words, its customers at the end, its sessions' KPIs."""

    segment: str
    words: str
    #: Known customers in the segment at the end of the data (None for ``unknown``).
    customers: int | None
    kpis: SegmentKpis
    #: Sessions that met at least one friction signal.
    friction_sessions: int

    @property
    def friction_rate(self) -> float:
        s = self.kpis.sessions
        return self.friction_sessions / s if s else math.nan


def segment_rows(seg: Segmenter, outcomes: Sequence[Mapping[str, Any]], learn: bool = True
                 ) -> list[SegmentRow]:
    """Every segment (``s0`` .. and ``unknown`` when anonymous sessions exist) with its words,
    size and KPIs, from session outcomes in the order they ended (``label_outcomes``); the
    KPIs as ``models.kpis`` computes them per journey (continued sessions folded in).
    ``learn=False``: ``seg`` (the worker's, restored) only assigns, and stays as it was."""
    labels, states = _fold(seg, outcomes, learn)
    labelled = [{**o, "segment": label} for o, label in zip(outcomes, labels, strict=True)]
    end = max((st.last_time for st in states.values()), default=0.0)
    sizes = Counter(seg.predict_one(segment_features(st, end)) for st in states.values())
    kpis = {k.key: k for k in by_segment(labelled, "segment")}
    friction = Counter(str(o["segment"]) for o in merged(labelled)
                       if sum((o.get("friction") or {}).values()) > 0)
    ids = [f"s{i}" for i in range(seg.k)] + ([UNKNOWN] if UNKNOWN in kpis else [])
    return [SegmentRow(s, "anonymous sessions" if s == UNKNOWN else seg.describe(s),
                       None if s == UNKNOWN else sizes[s], kpis.get(s, SegmentKpis(s)),
                       friction[s]) for s in ids]
