"""Will this customer churn soon? An online River model that scores a customer whenever their
state changes and learns when the observation window tells.

``ChurnScorer.update(state)`` runs after each fold of the customer's events
(``detectors.customer.apply_customer``). It computes the customer's features *as they are then*
(``churn_features``: plan, tenure, spend and account fields; tickets over recent windows,
reopens, priority, bad satisfaction, negative wording, escalations; friction and abandoned
checkouts in their recent web sessions), writes the probability of churning within ``window``
on the state (``CustomerState.churn_risk``, the live risk the customers table holds) and
keeps a snapshot of the features with it, at most one per ``snapshot_every``. A snapshot is
learned once its label is known: churned (a ``Subscription`` cancelled or expired within
``window`` of it) or stayed (``window`` passed without). Only snapshots are learned, so a
feature computed after a prediction never reaches its example (no leakage).

When the risk reaches ``alert_at`` the scorer returns a churn alert (a CloudEvents document
with the factors that pushed the risk most, in plain words); it alerts again only after the
risk has fallen below ``rearm_at`` (hysteresis: a risk hovering at the threshold alerts once).

>>> from detectors.customer import apply_customer
>>> from detectors.events import Subscription, Ticket
>>> scorer = ChurnScorer(record=True)
>>> day = 86400.0
>>> state = apply_customer(None, [Subscription(id="s", time=0.0, session_id="c", customer_id="c",
...                                             action="started", plan="pro", mrr=99.0)])
>>> scorer.update(state), state.churn_risk   # nothing learned yet: no alert
(None, 0.5)
>>> state = apply_customer(state, [Subscription(id="x", time=20 * day, session_id="c",
...                                             customer_id="c", action="cancelled")])
>>> _ = scorer.update(state)
>>> scorer.history, len(scorer.pending)   # churned, learned when its window closes
([], 1)
>>> other = apply_customer(None, [Subscription(id="y", time=31 * day, session_id="d",
...                                            customer_id="d", action="started")])
>>> _ = scorer.update(other)   # time passes day 30
>>> scorer.history   # the prediction made at day 0, labelled churned (within 30 days)
[(0.5, True, 0.0)]
"""

from __future__ import annotations

import hashlib
import heapq
import math
from collections import deque
from collections.abc import Callable, Collection, Mapping
from typing import Any, ClassVar

from river import linear_model, optim, preprocessing

from detectors.alerting import hash_customer
from detectors.bounds import iso
from detectors.customer import (
    T_BAD,
    T_ESCALATED,
    T_HIGH,
    T_NEGATIVE,
    T_REOPENED,
    T_TIME,
    CustomerState,
)
from models import checkpoint
from models.explain import pushes
from models.finite import usable
from models.linear import fast_path
from models.progressive import live_quality

__all__ = ["ChurnScorer", "churn_features", "churn_model", "describe"]

DAY = 86400.0
#: Plans remembered for the one-hot plan features (``churn_features``): bounded, as plan names
#: come from the customers' events.
MAX_PLANS = 30


def churn_model(learning_rate: float = 0.03, l2: float = 1e-4) -> Any:
    """Standardised features into a logistic regression (``True``: churns within the window),
    fitted with AdaGrad, as the abandonment model (``models.abandonment``): linear, so each
    risk explains itself as per-feature contributions, and microseconds per customer update.
    Measured on simulated customers (``bench/churn_quality.py``): a step of 0.03 beats 0.1
    (progressive ROC AUC 0.830 against 0.775 on the second half of the scores, seed 1)."""
    return preprocessing.StandardScaler() | linear_model.LogisticRegression(
        optimizer=optim.AdaGrad(learning_rate), l2=l2)


def _days(seconds: float) -> float:
    return math.log1p(max(seconds, 0.0) / DAY)


#: Windows (days) of the support and web counts.
WINDOWS = (30, 90)
#: Ticket flags counted per window: feature name -> field of a ``recent_tickets`` entry.
_TICKET_FLAGS = {"high_priority": T_HIGH, "negative": T_NEGATIVE, "bad_rating": T_BAD,
                 "reopened": T_REOPENED, "escalated": T_ESCALATED}


def churn_features(state: CustomerState, now: float,
                   plans: Collection[str] = ()) -> dict[str, float]:
    """What is known of the customer at ``now``: account, support history and web friction.
    Support and web counts over the last 30 and 90 days (recent trouble, not lifetime totals,
    which only grow with tenure); the lifetime ones as ``log1p``.

    The plan is one-hot, with 0.0 for each other plan of ``plans`` (those seen so far):
    River's ``StandardScaler`` only sees a feature when it is present, so a one-hot feature
    given only as 1.0 has no variance, scales to 0 and the plan is never learned."""
    since = state.subscribed_at if state.subscribed_at is not None else state.first_time
    x: dict[str, float] = {
        "tenure_days": _days(now - since),
        "mrr": math.log1p(state.mrr),
        "tickets_open": float(state.tickets_open),
        "orders": math.log1p(state.orders),
        "revenue": math.log1p(state.revenue),
    }
    for plan in plans:
        x[f"plan={plan}"] = 0.0
    if state.plan:
        x[f"plan={state.plan}"] = 1.0
    seats = state.traits.get("seats")
    if isinstance(seats, int | float) and not isinstance(seats, bool):
        x["seats"] = math.log1p(max(float(seats), 0.0))
    # Always given, 0.0 or 1.0: a feature only ever 1.0 scales to 0 and is never learned.
    x["b2b"] = 1.0 if state.traits.get("company") or seats is not None else 0.0
    x["tickets_7d"] = float(sum(1 for t in state.recent_tickets if now - t[T_TIME] <= 7 * DAY))
    for days in WINDOWS:
        start = now - days * DAY
        tickets = [t for t in state.recent_tickets if t[T_TIME] >= start]
        x[f"tickets_{days}d"] = float(len(tickets))
        for name, field in _TICKET_FLAGS.items():
            x[f"{name}_{days}d"] = float(sum(t[field] for t in tickets))
        sessions = friction = friction_sessions = abandoned = 0
        for end, signals, left, _ in state.recent_sessions:
            if end >= start:
                sessions += 1
                friction += signals
                friction_sessions += signals > 0
                abandoned += left
        x[f"sessions_{days}d"] = float(sessions)
        x[f"friction_signals_{days}d"] = math.log1p(friction)
        x[f"friction_sessions_{days}d"] = float(friction_sessions)
        x[f"abandoned_checkouts_{days}d"] = float(abandoned)
    # Usage trend: the last 30 days against the 90-day monthly average (customers who have
    # decided to leave stop coming; each customer's own baseline makes the drop visible).
    x["sessions_trend"] = math.log1p(x["sessions_30d"]) - math.log1p(x["sessions_90d"] / 3)
    # The customer's usual friction, over their latest sessions (a steadier estimate of how
    # exposed they are than a window of a few sessions).
    if state.recent_sessions:
        total = sum(s[1] for s in state.recent_sessions)
        x["friction_per_session"] = math.log1p(total / len(state.recent_sessions))
    last = state.recent_sessions[-1][0] if state.recent_sessions else since
    x["days_since_session"] = _days(now - last)
    return x


#: Plain words for a feature that raised the risk (``describe``), ``{n}`` its count.
_WORDS: dict[str, str] = {
    "tickets": "{n} ticket(s)",
    "high_priority": "{n} high-priority ticket(s)",
    "negative": "{n} ticket(s) with negative wording",
    "bad_rating": "{n} bad satisfaction rating(s)",
    "reopened": "{n} reopened ticket(s)",
    "escalated": "{n} escalated ticket(s)",
    "sessions": "{n} web session(s)",
    "friction_signals": "{n} friction signal(s)",
    "friction_sessions": "{n} session(s) with friction",
    "abandoned_checkouts": "{n} abandoned checkout(s)",
}


def describe(feature: str, state: CustomerState, x: Mapping[str, float]) -> str:
    """A feature of ``churn_features`` in plain words, for people reading an alert."""
    name, _, window = feature.rpartition("_")
    if window.endswith("d") and name in _WORDS:
        n = x[feature]
        if name == "friction_signals":
            n = math.expm1(n)
        return f"{_WORDS[name].format(n=round(n))} in the last {window[:-1]} days"
    if feature.startswith("plan="):
        return f"on the {feature[5:]} plan"
    return {
        "tickets_open": f"{state.tickets_open} open ticket(s)",
        "tenure_days": "customer tenure",
        "mrr": f"monthly revenue {state.mrr:.2f}",
        "orders": f"{state.orders} order(s)",
        "revenue": f"spend {state.revenue:.2f}",
        "seats": "account seats",
        "b2b": "business account",
        "sessions_trend": "fewer web visits than usual",
        "friction_per_session": "friction in most of their sessions",
        # Clamped: the feature is log1p(days), about 15 at most for times the edge accepts.
        "days_since_session": f"no web visit for "
                              f"{math.expm1(min(x.get(feature, 0.0), 20.0)):.0f} days",
    }.get(feature, feature)





class ChurnScorer(checkpoint.Learned):
    """Scores customers, learns from churn events, alerts with hysteresis (see the module).

    Parameters
    ----------
    model
        A River binary classifier; default ``churn_model()``. Shared by the customers a worker
        handles.
    window_days
        Observation window: a prediction is labelled churned if the customer churns within
        this many days of it, else stayed once they have passed.
    snapshot_every_days
        At most one prediction per customer per this many days is kept to learn from (a busy
        customer must not outweigh a quiet one); each update is still scored.
    alert_at, rearm_at
        Hysteresis thresholds on the risk: alert at or above ``alert_at``, then again only
        after the risk fell below ``rearm_at``.
    min_learned
        Examples the model must have learned before it may alert (no alerts from a cold model).
    top
        Factors named per alert.
    window
        Latest labelled predictions ``quality`` covers.
    source, customer_salt
        CloudEvents ``source`` and the salt of the hashed customer id alerts carry.
    record
        Keep every (probability, churned, time predicted) in ``history`` (benches, tests).

    A customer whose features cannot be computed or are not all finite and of a sane
    magnitude (``models.finite.usable``: e.g. revenue summed to inf) is not scored (their
    risk is None) and nothing of it is learned; ``rejected`` counts those.

    Memory: ``state.model_state["churn"]``, ``[[features, probability, time], ...]``.
    """

    name = "churn"
    LEARNED = ("model", "recent", "learned", "pending", "_seq", "watermark", "plans")
    ADDED: ClassVar[dict[str, Callable[[], Any]]] = {"plans": list}

    def __init__(self, model: Any = None, window_days: float = 30.0,
                 snapshot_every_days: float = 7.0, alert_at: float = 0.6,
                 rearm_at: float = 0.45, min_learned: int = 200, top: int = 3,
                 window: int = 1000, source: str = "frictionwatch", customer_salt: str = "",
                 record: bool = False) -> None:
        if not 0.0 <= rearm_at <= alert_at <= 1.0:
            raise ValueError("need 0 <= rearm_at <= alert_at <= 1")
        if window_days <= 0 or snapshot_every_days <= 0:
            raise ValueError("window_days and snapshot_every_days must be > 0")
        self.model = model if model is not None else churn_model()
        self.window_s = window_days * DAY
        self.snapshot_every_s = snapshot_every_days * DAY
        self.alert_at, self.rearm_at = alert_at, rearm_at
        self.min_learned = min_learned
        self.top = top
        self.source, self.customer_salt = source, customer_salt
        self.recent: deque[tuple[float, bool]] = deque(maxlen=window)
        self.learned = 0
        # Churned customers' predictions waiting for their window to close (a heap by time).
        self.pending: list[tuple[float, int, dict[str, float], float, float, bool]] = []
        self._seq = 0
        self.watermark = -math.inf
        self.record = record
        self.history: list[tuple[float, bool, float]] = []
        #: Updates not scored and snapshots not learned: see the class docstring.
        self.rejected = 0
        #: Plans seen, in order seen (``churn_features``), at most ``MAX_PLANS``.
        self.plans: list[str] = []

    def update(self, state: CustomerState, now: float | None = None) -> dict[str, Any] | None:
        """Label what can be labelled, score the customer at ``now`` (default: their latest
        event) and return a churn alert when the risk crosses ``alert_at``, else None."""
        now = state.last_time if now is None else now
        self.watermark = max(self.watermark, now)
        memory: list[list[Any]] = state.model_state.setdefault("churn", [])
        if state.churned_at is not None:
            # Churned: what was predicted within the window before is churned; older stayed.
            # Learned when each window closes, as the predictions of customers who stay are:
            # learned at once, churns would reach the model a window ahead of stays, and it
            # would drift toward "everyone churns" (measured: ROC AUC 0.41 in the second
            # month against 0.79 once both labels flow).
            for x, p, t in memory:
                self._seq += 1
                heapq.heappush(self.pending, (t + self.window_s, self._seq, x, p, t,
                                              state.churned_at - t <= self.window_s))
            memory.clear()
            state.churn_risk, state.churn_alerted = None, False
            self._closed()
            return None
        self._closed()
        while memory and now - memory[0][2] > self.window_s:
            x, p, t = memory.pop(0)
            self._learn(x, p, t, False)
        if state.plan and state.plan not in self.plans and len(self.plans) < MAX_PLANS:
            self.plans.append(state.plan)
        try:
            x = churn_features(state, now, self.plans)
        except (ValueError, TypeError, OverflowError):  # e.g. log1p of a negative amount
            x = None
        p = fast_path(self).predict_proba_one(x) if x and usable(x) \
            else math.nan
        if not 0.0 <= p <= 1.0:  # unusable features, or NaN from the model: no score
            self.rejected += 1
            state.churn_risk = None
            return None
        state.churn_risk = round(p, 4)
        if not memory or now - memory[-1][2] >= self.snapshot_every_s:
            memory.append([x, p, now])
        if state.churn_alerted:
            if p < self.rearm_at:
                state.churn_alerted = False
            return None
        if p >= self.alert_at and self.learned >= self.min_learned:
            state.churn_alerted = True
            return self.alert(state, x, p, now)
        return None

    def _closed(self) -> None:
        """Learn the churned customers' predictions whose window has closed."""
        while self.pending and self.pending[0][0] <= self.watermark:
            _, _, x, p, t, churned = heapq.heappop(self.pending)
            self._learn(x, p, t, churned)

    def alert(self, state: CustomerState, x: Mapping[str, float], p: float,
              now: float) -> dict[str, Any]:
        """A churn-risk alert for ``state`` (CloudEvents 1.0, structured mode)."""
        customer = hash_customer(state.customer_id, self.customer_salt)
        key = f"churn:{state.customer_id}:{now!r}"
        risk = round(p, 4)
        return {
            "specversion": "1.0",
            "type": "com.frictionwatch.churn.alert",
            "source": self.source,
            "id": hashlib.sha256(key.encode()).hexdigest()[:32],
            "time": iso(now),
            "subject": customer,
            "datacontenttype": "application/json",
            "data": {
                "reason": "churn_risk",
                "customer": customer,
                "risk": risk,
                "plan": state.plan,
                "mrr": state.mrr,
                # A year of the subscription's revenue, weighted by the risk of losing it.
                "revenue_at_risk": round(12 * state.mrr * risk, 2),
                "factors": self.explain(state, x),
                "recommended_action": "reach out: account review with the customer's CSM",
            },
        }

    def explain(self, state: CustomerState, x: Mapping[str, float]) -> list[str]:
        """The factors that pushed the risk up most, in plain words: one per kind (the 30- and
        90-day counts of the same thing are one reason)."""
        words, kinds = [], set()
        for f in pushes(x, self.model, 3 * self.top):
            if f.startswith("plan=") and not x[f]:
                continue  # not being on another plan is no reason to name
            kind = f.rpartition("_")[0] if f[-1] == "d" and f[-2].isdigit() else f
            if kind not in kinds:
                kinds.add(kind)
                words.append(describe(f, state, x))
        return words[:self.top]

    def _learn(self, x: dict[str, float], p: float, t: float, churned: bool) -> None:
        # Snapshots come back from stored customer state: checked again before learning.
        if not (usable(x) and isinstance(p, int | float) and 0.0 <= p <= 1.0):
            self.rejected += 1
            return
        self.recent.append((p, churned))
        if self.record:
            self.history.append((p, churned, t))
        fast_path(self).learn_one(x, churned)
        self.learned += 1

    def quality(self) -> dict[str, float]:
        """ROC AUC, log loss and accuracy of the latest ``window`` labelled predictions
        (``models.progressive.live_quality``)."""
        return live_quality(self.recent)

