"""Which channels get credit for conversions: multi-touch attribution over customer journeys.

A journey is the channels of one customer's sessions, in time order, up to a conversion (or to
the end of the data, unconverted). ``Attribution`` learns journeys one at a time and credits
conversions and revenue to channels by six models:

- ``last_click``: all of it to the last touch;
- ``linear``: equal shares to every touch;
- ``time_decay``: shares halving every ``half_life`` seconds before the conversion (the last
  touch's time);
- ``position``: 40% to the first touch, 40% to the last, 20% spread over those between (one
  touch takes all, two take half each);
- ``markov``: the *removal effect* of a first-order Markov chain over the channels
  (Anderl, Becker, von Wangenheim & Schumann, "Mapping the customer journey: lessons learned
  from graph-based online attribution modeling", IJRM 2016; the R/C++ ``ChannelAttribution``
  package). States are ``start``, each channel, ``conversion`` and ``null``; every journey is a
  path ``start -> c1 -> ... -> ck -> conversion | null``. The chain's probability to reach
  ``conversion`` from ``start`` is P; removing a channel (its transitions lead to ``null``)
  gives P_c. Its removal effect ``(P - P_c) / P`` is normalized over channels to share out the
  conversions and the revenue. Biased towards volume: removing a channel cuts every path
  through it, so a frequent channel that closes journeys (direct) gets credit for orders its
  touches did not cause (``bench/attribution_quality.py``: never the true order on the
  simulated journeys, at any size; chains of order 2 and 3 do no better,
  ``bench/attribution_candidates.py``);
- ``counterfactual``: *the* data-driven model, a journey-level counterfactual (the question
  of Shao & Li, "Data-driven multi-touch attribution models", KDD 2011): fit P(order |
  touches) on the journeys, take each channel's touches out of every journey, and sum the
  predicted conversions lost; normalized like the Markov shares. P(order | touches) is the
  *touch-effect* model (``touch_hazards``): every touch an independent chance to turn the
  journey into an order, ``P(order) = 1 - (1 - base) * prod over touches (1 - effect[c])``,
  fit by maximum likelihood. That is the simulator's own form (``streams.sim.journeys``), so
  its success there is partly by construction; a logistic form (Shao & Li's) misses the
  true order in 9 seeds of 10 at 100,000 journeys. Fit on observational data, it is still
  biased by whatever drives both the touches and the orders (intent).

All of this is *correlational*: credit says which channels sit on converting paths, not what
would be lost without them. Only a randomized holdout (``models.lift``) shows cause.

Learning keeps sufficient statistics only (credit sums, transition counts, and how many
journeys and conversions had each vector of touch counts per channel), so it runs online over
a stream. Memory: the channels squared, plus the distinct count vectors (counts capped at
``MAX_TOUCHES``): about 2,800 after 100,000 simulated journeys over 7 channels.

Hand-written: ``ChannelAttribution`` is R/C++, and ``marketing-attribution-models`` (PyPI,
2.1.1) works in batch over data frames, pulling in polars, pandas, plotly and pyarrow, with no
way to learn one journey at a time. The whole method is a few small linear solves.

>>> a = Attribution()
>>> a.learn_one(Journey((("social", 0.0), ("email", 86_400.0)), converted=True, revenue=80.0))
>>> a.learn_one(Journey((("email", 0.0),), converted=True, revenue=20.0))
>>> a.learn_one(Journey((("social", 0.0),), converted=False))
>>> c = a.credits()
>>> c["last_click"]["email"]
Credit(conversions=2.0, revenue=100.0)
>>> c["linear"]["social"]
Credit(conversions=0.5, revenue=40.0)
>>> {ch: round(v.conversions, 3) for ch, v in sorted(c["markov"].items())}
{'email': 1.333, 'social': 0.667}
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

__all__ = ["BASELINE", "MODELS", "Attribution", "Credit", "Journey", "journeys_from_outcomes",
           "position_weights", "rank", "removal_effects", "time_decay_weights",
           "touch_hazards"]

#: The models ``Attribution.credits`` answers for, in the order a report shows them.
MODELS = ("last_click", "linear", "time_decay", "position", "markov", "counterfactual")
_HEURISTIC = MODELS[:4]
#: Touches per channel beyond this count as this many in the regression: keeps the journeys'
#: count vectors few (memory bounded by the number of distinct vectors).
MAX_TOUCHES = 10

START, CONVERSION, NULL = "(start)", "(conversion)", "(null)"
#: ``Attribution.touch_effects`` key of the chance of an order with no touch's help.
BASELINE = "(baseline)"


class Journey(NamedTuple):
    """One customer's touches ``(channel, time)`` in time order, and how it ended."""

    touches: tuple[tuple[str, float], ...]
    converted: bool = False
    revenue: float = 0.0


class Credit(NamedTuple):
    """Conversions and revenue credited to one channel."""

    conversions: float = 0.0
    revenue: float = 0.0


def time_decay_weights(times: Sequence[float], half_life: float) -> list[float]:
    """Shares (summing to 1) halving every ``half_life`` seconds before the last touch.

    >>> time_decay_weights([0.0, 3600.0, 7200.0], half_life=3600.0)
    [0.14285714285714285, 0.2857142857142857, 0.5714285714285714]
    """
    end = times[-1]
    w = [2.0 ** (-(end - t) / half_life) for t in times]
    total = sum(w)
    return [x / total for x in w]


def position_weights(n: int, ends: float = 0.4) -> list[float]:
    """Position-based (U-shaped) shares of ``n`` touches: ``ends`` to the first and to the last,
    the rest spread evenly over the middle; one touch takes all, two take half each.

    >>> [round(w, 3) for w in position_weights(4)]
    [0.4, 0.1, 0.1, 0.4]
    >>> position_weights(2), position_weights(1)
    ([0.5, 0.5], [1.0])
    """
    if n == 1:
        return [1.0]
    if n == 2:
        return [0.5, 0.5]
    middle = (1.0 - 2 * ends) / (n - 2)
    return [ends] + [middle] * (n - 2) + [ends]


def _conversion_probability(counts: Mapping[str, Mapping[str, int]], removed: str | None
                            ) -> float:
    """Probability to reach ``CONVERSION`` from ``START`` in the chain of ``counts``, with the
    channel ``removed`` (if any) sending everything that reaches it to ``NULL``."""
    states = [s for s in counts if s != removed]
    index = {s: i for i, s in enumerate(states)}
    n = len(states)
    q = np.zeros((n, n))
    r = np.zeros(n)
    for s, row in counts.items():
        if s == removed:
            continue
        total = sum(row.values())
        for to, k in row.items():
            if to == CONVERSION:
                r[index[s]] += k / total
            elif to in index:
                q[index[s], index[to]] += k / total
            # to NULL or to the removed channel: absorbed without converting
    # Absorption probabilities x = Q x + r. A channel only ever followed by itself would make
    # I - Q singular; lstsq gives the same answer where the system is well posed.
    x = np.linalg.lstsq(np.eye(n) - q, r, rcond=None)[0]
    return float(x[index[START]]) if START in index else 0.0


def removal_effects(counts: Mapping[str, Mapping[str, int]]) -> dict[str, float]:
    """Each channel's removal effect ``(P - P_c) / P`` in the chain of transition ``counts``
    (``counts[from][to]``, with ``START``, ``CONVERSION`` and ``NULL`` states).

    >>> counts = {START: {"a": 2, "b": 1}, "a": {"b": 1, CONVERSION: 1},
    ...           "b": {CONVERSION: 1, NULL: 1}}
    >>> {k: round(v, 3) for k, v in removal_effects(counts).items()}
    {'a': 0.75, 'b': 0.5}
    """
    base = _conversion_probability(counts, None)
    channels = sorted(s for s in counts if s != START)
    if base <= 0:
        return {c: 0.0 for c in channels}
    return {c: max(0.0, (base - _conversion_probability(counts, c)) / base) for c in channels}


class Attribution:
    """Credits conversions and revenue to channels, learning one journey at a time.

    Parameters
    ----------
    half_life
        Seconds over which a touch's time-decay weight halves, counted back from the last
        touch. Seven days is the common default (Google Ads' time-decay model).
    position_ends
        Share of the position-based model given to each of the first and last touches.

    >>> a = Attribution(half_life=3600.0)
    >>> a.learn_one(Journey((("paid_search", 0.0), ("organic_search", 1800.0),
    ...                      ("direct", 3600.0)), converted=True, revenue=100.0))
    >>> c = a.credits()
    >>> [round(c["position"][ch].revenue, 1) for ch in ("paid_search", "organic_search", "direct")]
    [40.0, 20.0, 40.0]
    >>> round(c["time_decay"]["direct"].conversions, 3)
    0.453
    >>> a.journeys, a.conversions
    (1, 1)
    """

    def __init__(self, half_life: float = 7 * 86_400.0, position_ends: float = 0.4) -> None:
        if not half_life > 0:
            raise ValueError(f"half_life must be positive, not {half_life!r}")
        if not 0.0 <= position_ends <= 0.5:
            raise ValueError(f"position_ends must be in [0, 0.5], not {position_ends!r}")
        self.half_life = half_life
        self.position_ends = position_ends
        self.journeys = 0
        self.conversions = 0
        self.revenue = 0.0
        # Heuristic credit sums: model -> channel -> [conversions, revenue].
        self._sums: dict[str, dict[str, list[float]]] = {m: {} for m in _HEURISTIC}
        # Transition counts of the Markov chain: from-state -> to-state -> count.
        self._counts: dict[str, dict[str, int]] = {}
        # Journeys and conversions per touch-count vector ((channel, count) pairs, sorted).
        self._vectors: dict[tuple[tuple[str, int], ...], list[int]] = {}

    def learn_one(self, journey: Journey) -> None:
        """Add one journey (ignored when it has no touch: nothing to credit)."""
        touches = journey.touches
        if not touches:
            return
        self.journeys += 1
        path = [START, *(ch for ch, _ in touches),
                CONVERSION if journey.converted else NULL]
        for a, b in zip(path, path[1:], strict=False):
            row = self._counts.setdefault(a, {})
            row[b] = row.get(b, 0) + 1
        per: dict[str, int] = {}
        for ch, _ in touches:
            per[ch] = min(per.get(ch, 0) + 1, MAX_TOUCHES)
        seen = self._vectors.setdefault(tuple(sorted(per.items())), [0, 0])
        seen[0] += 1
        seen[1] += journey.converted
        if not journey.converted:
            return
        self.conversions += 1
        revenue = float(journey.revenue)
        if not math.isfinite(revenue):
            revenue = 0.0
        self.revenue += revenue
        channels = [ch for ch, _ in touches]
        n = len(channels)
        weights = {
            "last_click": [0.0] * (n - 1) + [1.0],
            "linear": [1.0 / n] * n,
            "time_decay": time_decay_weights([t for _, t in touches], self.half_life),
            "position": position_weights(n, self.position_ends),
        }
        for model, ws in weights.items():
            sums = self._sums[model]
            for ch, w in zip(channels, ws, strict=True):
                acc = sums.setdefault(ch, [0.0, 0.0])
                acc[0] += w
                acc[1] += w * revenue

    def learn_many(self, journeys: Iterable[Journey]) -> None:
        """``learn_one`` for each journey."""
        for j in journeys:
            self.learn_one(j)

    def removal_effects(self) -> dict[str, float]:
        """Each channel's Markov removal effect (before normalization)."""
        return removal_effects(self._counts)

    def credits(self) -> dict[str, dict[str, Credit]]:
        """Model -> channel -> credited conversions and revenue. Every channel seen is listed
        under every model (0 where a model gives it nothing)."""
        channels = sorted(s for s in self._counts if s != START)
        out = {m: {ch: Credit(*self._sums[m].get(ch, (0.0, 0.0))) for ch in channels}
               for m in _HEURISTIC}
        out["markov"] = self._shares(self.removal_effects(), channels)
        out["counterfactual"] = self._shares(self.counterfactual_effects(), channels)
        return out

    def _shares(self, effects: Mapping[str, float], channels: Sequence[str]
                ) -> dict[str, Credit]:
        total = sum(effects.values())
        return {ch: Credit(self.conversions * effects.get(ch, 0.0) / total,
                           self.revenue * effects.get(ch, 0.0) / total) if total > 0
                else Credit() for ch in channels}

    def _fit(self) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
        """The touch-effect model fitted to the count vectors seen: the channels, the count
        matrix (one row per distinct vector), each row's journeys, and each row's fitted
        hazard (``-log P(no order)``); ``hazards`` is empty when there is nothing to fit."""
        channels = sorted(s for s in self._counts if s != START)
        col = {ch: i for i, ch in enumerate(channels)}
        vectors = list(self._vectors.items())
        x = np.zeros((len(vectors), len(channels)))
        for i, (vec, _) in enumerate(vectors):
            for ch, count in vec:
                x[i, col[ch]] = count
        n = np.array([v[0] for _, v in vectors], dtype=float)
        k = np.array([v[1] for _, v in vectors], dtype=float)
        if not k.sum() or not (n - k).sum():
            return channels, x, n, np.zeros(0)  # one class only: nothing to fit
        return channels, x, n, touch_hazards(x, n, k)

    def touch_effects(self) -> dict[str, float]:
        """Each channel's fitted per-touch effect: the chance that one touch on it, by
        itself, turns a journey into an order (``1 - exp(-hazard)``); key ``BASELINE`` holds
        the chance of an order with no touch's help. Empty when there is nothing to fit.

        >>> a = Attribution()
        >>> for touched, orders in ((["email"], 100), (["social"], 20),
        ...                         (["email", "social"], 118)):
        ...     for i in range(1000):
        ...         a.learn_one(Journey(tuple((ch, 0.0) for ch in touched), i < orders))
        >>> {ch: round(e, 3) for ch, e in a.touch_effects().items()}
        {'(baseline)': 0.0, 'email': 0.1, 'social': 0.02}
        """
        channels, _, _, theta = self._fit()
        if not len(theta):
            return {}
        effects = -np.expm1(-theta)
        return {BASELINE: float(effects[0]),
                **{ch: float(e) for ch, e in zip(channels, effects[1:], strict=True)}}

    def counterfactual_effects(self) -> dict[str, float]:
        """Each channel's expected conversions lost without its touches: by the fitted
        touch-effect model, every journey's order chance with and without them, summed."""
        channels, x, n, theta = self._fit()
        if not len(theta):
            return dict.fromkeys(channels, 0.0)
        hazard = theta[0] + x @ theta[1:]
        out = {}
        for i, ch in enumerate(channels):
            # P(order) = 1 - exp(-hazard); without ch's touches its part of the hazard goes.
            lost = np.exp(-(hazard - theta[i + 1] * x[:, i])) - np.exp(-hazard)
            out[ch] = float(n @ lost)
        return out


def touch_hazards(x: np.ndarray, n: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Maximum-likelihood fit of the touch-effect model: ``n[i]`` journeys with touch counts
    ``x[i]`` (one column per channel), ``k[i]`` of them converted, and
    ``P(order) = 1 - exp(-(h0 + x[i] @ h))`` with every hazard ``>= 0``. Returns
    ``[h0, *h]``; a per-touch effect is ``1 - exp(-h)``.

    Each touch is an independent chance to turn the journey into an order (a noisy-OR, the
    additive-hazard form of survival-model attribution without time decay). The
    log-likelihood is concave in the hazards, so L-BFGS-B with the bounds finds the optimum.

    >>> x = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> n, k = np.array([1000.0, 1000.0, 1000.0]), np.array([100.0, 10.0, 109.0])
    >>> [round(float(-np.expm1(-h)), 3) for h in touch_hazards(x, n, k)]
    [0.0, 0.1, 0.01]
    """
    from scipy.optimize import minimize

    design = np.c_[np.ones(len(x)), x]
    scale = float(n.sum())

    def loss(h: np.ndarray) -> tuple[float, np.ndarray]:
        hazard = np.maximum(design @ h, 1e-12)
        ll = k * np.log(-np.expm1(-hazard)) - (n - k) * hazard
        dll = k / np.expm1(hazard) - (n - k)
        return -float(ll.sum()) / scale, -(design.T @ dll) / scale

    start = np.full(design.shape[1], 0.01)
    fit = minimize(loss, start, jac=True, method="L-BFGS-B",
                   bounds=[(0.0, None)] * design.shape[1],
                   options={"ftol": 1e-13, "gtol": 1e-9, "maxiter": 1000})
    return np.asarray(fit.x, dtype=float)


def rank(credit: Mapping[str, Credit]) -> list[str]:
    """Channels by credited conversions, most first (ties by name).

    >>> rank({"a": Credit(1.0), "b": Credit(2.0), "c": Credit(1.0)})
    ['b', 'a', 'c']
    """
    return sorted(credit, key=lambda ch: (-credit[ch].conversions, ch))


def journeys_from_outcomes(outcomes: Iterable[Mapping[str, Any]]) -> list[Journey]:
    """Journeys from session outcomes (``detectors.engine.outcome``): each customer's sessions
    (a session without a customer id is a journey of its own) in time order, cut after each
    converting session; what follows the last conversion is an unconverted journey.

    A session's touch is its traffic ``source``; a continued part of a session (``continued``)
    is no new touch, but an order in it counts. Sessions without a source (no page view) add
    no touch.

    >>> outs = [
    ...     {"customer_id": "c1", "session_id": "s1", "start": 0.0, "source": "social"},
    ...     {"customer_id": "c1", "session_id": "s2", "start": 9.0, "source": "email",
    ...      "converted": True, "revenue": 50.0},
    ...     {"customer_id": "c1", "session_id": "s3", "start": 20.0, "source": "direct"},
    ...     {"customer_id": None, "session_id": "s4", "start": 5.0, "source": "direct"},
    ... ]
    >>> for j in journeys_from_outcomes(outs):
    ...     print([ch for ch, _ in j.touches], j.converted, j.revenue)
    ['social', 'email'] True 50.0
    ['direct'] False 0.0
    ['direct'] False 0.0
    """
    by_unit: dict[str, list[Mapping[str, Any]]] = {}
    for o in outcomes:
        unit = o.get("customer_id") or f"s:{o.get('session_id')}"
        by_unit.setdefault(str(unit), []).append(o)
    journeys: list[Journey] = []
    for unit in sorted(by_unit):
        touches: list[tuple[str, float]] = []
        for o in sorted(by_unit[unit], key=lambda o: float(o.get("start") or 0.0)):
            source = o.get("source")
            if source and not o.get("continued"):
                touches.append((str(source), float(o.get("start") or 0.0)))
            if o.get("converted") and touches:  # an order with no touch before: no credit
                revenue = float(o.get("revenue") or 0.0)
                journeys.append(Journey(tuple(touches), True, round(revenue, 2)))
                touches = []
        if touches:
            journeys.append(Journey(tuple(touches), False, 0.0))
    return journeys
