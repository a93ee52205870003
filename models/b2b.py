"""Account-level scores for the B2B journey: a lead score for accounts in the quote stage
(will the quote be won?) and a renewal risk for contracted accounts (will the contract be
cancelled rather than renewed?). Online River models, learned from the outcomes as they come.

The account's state is folded by ``detectors.account`` (how account events come in is told
there). ``B2BScorer.observe(state, event)`` is called for each event of the account: when the
event settles an outcome (a quote won or lost, a contract renewed or cancelled), the model of
that kind first scores the account *as it was just before* (``account_features``), then learns
the outcome; then the event is folded in. So each outcome is predicted, then learned, exactly
once, from features that cannot contain it (progressive validation, no leakage).
``score(state)`` gives the live scores; ``explain`` names the features that pushed a score up
most, in plain words, like the churn score (``models.explain.pushes``).

>>> from detectors.events import Identify
>>> scorer = B2BScorer()
>>> def quote(t, status, seats):
...     return Identify(id=f"q{t}", time=t, session_id="u", customer_id="u",
...                     traits={"account_id": "a", "seats": seats, "quote_status": status})
>>> for i in range(300):   # big accounts win their quotes, small ones lose them
...     seats = 10 + 490 * (i % 2)
...     state = scorer.observe(None, "a", quote(i * 10.0, "requested", seats))
...     state = scorer.observe(state, "a", quote(i * 10.0 + 5, "won" if seats > 100 else "lost",
...                                              seats))
>>> big = scorer.observe(None, "b", quote(0.0, "requested", 500))
>>> small = scorer.observe(None, "c", quote(0.0, "requested", 10))
>>> scorer.score(big)["lead_score"] > 0.8 > 0.2 > scorer.score(small)["lead_score"]
True
>>> "renewal_risk" in scorer.score(big)   # no contract: no renewal risk
False
>>> scorer.explain(big, "lead")
['account size: 500 seats']
>>> doc = scorer.document(big)
>>> doc["account_id"], doc["lead_score"] > 0.8, doc["lead_reasons"], "renewal_risk" in doc
('b', True, ['account size: 500 seats'], False)
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Collection, Mapping
from typing import Any

from river import linear_model, optim, preprocessing

from detectors.account import (
    K_BAD,
    K_HIGH,
    K_NEGATIVE,
    K_TIME,
    AccountState,
    apply_account,
    outcome,
)
from models import checkpoint
from models.explain import pushes
from models.finite import usable
from models.progressive import live_quality

__all__ = ["B2BScorer", "CATEGORICAL", "KINDS", "account_features", "b2b_model", "category",
           "describe"]

DAY = 86400.0
#: The two scores: the lead score (quote won) and the renewal risk (contract cancelled).
KINDS = ("lead", "renewal")
#: Categorical traits, one-hot; at most ``MAX_VALUES`` values each are remembered.
CATEGORICAL = ("industry", "plan")
MAX_VALUES = 30
#: Yes/no features: named by ``explain`` only when yes.
FLAGS = ("demo_requested", "discount_requested")
#: Windows (days) of the behaviour and support counts.
WINDOWS = (30, 90)


def b2b_model(learning_rate: float = 0.05, l2: float = 1e-4) -> Any:
    """Standardised features into a logistic regression fitted with AdaGrad, as the churn model
    (``models.churn.churn_model``): linear, so each score explains itself feature by feature.
    Accounts settle few outcomes (hundreds a year), so the step is a little larger than churn's
    0.03; a larger one gains next to nothing (``bench/b2b_quality.py``, seeds 1-5, mean ROC AUC
    lead / renewal 0.859 / 0.936 at 0.05, 0.861 / 0.939 at 0.1)."""
    return preprocessing.StandardScaler() | linear_model.LogisticRegression(
        optimizer=optim.AdaGrad(learning_rate), l2=l2)


def _days(seconds: float) -> float:
    return math.log1p(max(seconds, 0.0) / DAY)


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return None


def _flag(value: Any) -> float:
    """A yes/no trait as 1.0/0.0 (CRMs send booleans, or "true"/"yes" strings)."""
    if isinstance(value, str):
        return float(value.strip().lower() in ("true", "yes", "1"))
    return float(value is True or (_number(value) or 0.0) > 0)


def category(value: str) -> str:
    """A categorical trait's value as it appears in a feature name."""
    return value.strip().lower()[:40]


def account_features(state: AccountState, now: float, kind: str,
                     vocabulary: Mapping[str, Collection[str]] | None = None
                     ) -> dict[str, float]:
    """What is known of the account at ``now``: traits (size, plan, industry), its users' web
    behaviour and friction, its support history, and the stage ``kind`` is about (time in the
    quote stage for ``"lead"``; contract tenure and renewals for ``"renewal"``).

    Categorical traits are one-hot, with 0.0 for each other value of ``vocabulary`` (trait ->
    values seen): River's ``StandardScaler`` only sees a feature when it is present, so a
    one-hot feature given only as 1.0 has no variance, scales to 0 and is never learned."""
    x: dict[str, float] = {"users": math.log1p(len(state.users))}
    seats = _number(state.traits.get("seats", state.traits.get("employees")))
    if seats is not None:
        x["seats"] = math.log1p(seats)
    for trait in CATEGORICAL:
        value = state.plan if trait == "plan" else state.traits.get(trait)
        for other in (vocabulary or {}).get(trait, ()):
            x[f"{trait}={other}"] = 0.0
        if isinstance(value, str) and value:
            x[f"{trait}={category(value)}"] = 1.0
    users = max(len(state.users), 1)
    for days in WINDOWS:
        start = now - days * DAY
        sessions = [s for s in state.recent_sessions if s[0] >= start]
        tickets = [t for t in state.recent_tickets if t[K_TIME] >= start]
        x[f"sessions_{days}d"] = math.log1p(len(sessions))
        x[f"sessions_per_user_{days}d"] = len(sessions) / users
        x[f"friction_sessions_{days}d"] = float(sum(s[1] > 0 for s in sessions))
        x[f"abandoned_checkouts_{days}d"] = float(sum(s[2] for s in sessions))
        x[f"tickets_{days}d"] = float(len(tickets))
        x[f"high_priority_{days}d"] = float(sum(t[K_HIGH] for t in tickets))
        x[f"bad_rating_{days}d"] = float(sum(t[K_BAD] for t in tickets))
        x[f"negative_{days}d"] = float(sum(t[K_NEGATIVE] for t in tickets))
    # Usage trend: the last 30 days against the 90-day monthly average (an account that is
    # leaving stops coming back before it cancels).
    x["sessions_trend"] = x["sessions_30d"] - math.log1p(math.expm1(x["sessions_90d"]) / 3)
    if state.recent_sessions:
        friction = sum(s[1] for s in state.recent_sessions)
        x["friction_per_session"] = math.log1p(friction / len(state.recent_sessions))
    last = state.recent_sessions[-1][0] if state.recent_sessions else state.first_time
    x["days_since_session"] = _days(now - last)
    if kind == "lead":
        since = state.quote_since if state.quote_since is not None else now
        x["days_in_quote"] = _days(now - since)
        # Engagement during the quote stage, per user and day: the stage lasts from days to
        # months, so counts over a fixed window would mostly measure its length.
        stage_days = max((now - since) / DAY, 1.0)
        # log, not log1p: visit rates are multiplicative (an interested account's users come
        # back some times as often), and the +0.5 keeps an account with no visit finite.
        x["quote_visits"] = math.log((state.quote_sessions + 0.5) / users / stage_days * 7)
        x["quote_friction"] = state.quote_friction / max(state.quote_sessions, 1)
        # The buying committee: how many of the account's people came to look, not only how
        # often (deals many stakeholders engage in are won more often).
        x["quote_visitors"] = math.log1p(len(state.quote_users))
        # The sales conversation, as the CRM records it (``detectors.account.QUOTE_TRAITS``);
        # always present, 0.0 when absent, so that the scaler sees both values.
        for flag in FLAGS:
            x[flag] = _flag(state.traits.get(flag))
        x["sales_replies"] = math.log1p(_number(state.traits.get("sales_replies")) or 0.0)
        x["quotes_lost"] = float(state.quotes_lost)
    else:
        since = state.contract_since if state.contract_since is not None else now
        x["tenure_days"] = _days(now - since)
        x["renewals"] = math.log1p(state.renewals)
        x["mrr"] = math.log1p(state.mrr)
    return x


#: Plain words for a windowed count (``describe``), ``{n}`` the count.
_WORDS = {
    "sessions": "{n} web session(s)",
    "friction_sessions": "{n} session(s) with friction",
    "abandoned_checkouts": "{n} abandoned checkout(s)",
    "tickets": "{n} ticket(s)",
    "high_priority": "{n} high-priority ticket(s)",
    "bad_rating": "{n} bad satisfaction rating(s)",
    "negative": "{n} ticket(s) with negative wording",
}


def describe(feature: str, state: AccountState, x: Mapping[str, float]) -> str:
    """A feature of ``account_features`` in plain words, for people reading a score."""
    name, _, window = feature.rpartition("_")
    if window.endswith("d") and window[:-1].isdigit():
        if name == "sessions_per_user":
            return f"{x[feature]:.1f} web sessions per user in the last {window[:-1]} days"
        if name in _WORDS:
            n = math.expm1(x[feature]) if name == "sessions" else x[feature]
            return f"{_WORDS[name].format(n=round(n))} in the last {window[:-1]} days"
    if "=" in feature:
        trait, _, value = feature.partition("=")
        return f"{trait} {value}"
    return {
        "users": f"{len(state.users)} active user(s)",
        "seats": f"account size: {math.expm1(x.get('seats', 0.0)):.0f} seats",
        "sessions_trend": "fewer web visits than usual",
        "friction_per_session": "friction in most of their sessions",
        "days_since_session": f"no web visit for "
                              f"{math.expm1(min(x.get(feature, 0.0), 20.0)):.0f} days",
        "days_in_quote": f"{math.expm1(x.get(feature, 0.0)):.0f} days in the quote stage",
        "quotes_lost": f"{state.quotes_lost} quote(s) lost before",
        "quote_visits": f"{math.exp(x.get(feature, 0.0)):.1f} web visits per user a week "
                        f"since the quote",
        "quote_friction": "friction in their sessions since the quote",
        "quote_visitors": f"{len(state.quote_users)} of their people visited since the quote",
        "demo_requested": "asked for a demo",
        "discount_requested": "asked for a discount",
        "sales_replies": f"answered sales {_number(state.traits.get('sales_replies')) or 0:.0f}"
                         f" time(s)",
        "tenure_days": "contract tenure",
        "renewals": f"{state.renewals} renewal(s)",
        "mrr": f"monthly revenue {state.mrr:.2f}",
    }.get(feature, feature)


class B2BScorer(checkpoint.Learned):
    """Lead score and renewal risk of accounts, learned from their outcomes (see the module).

    Parameters
    ----------
    lead_model, renewal_model
        River binary classifiers; default ``b2b_model()`` each. ``True``: the quote is won
        (lead), the contract is cancelled (renewal).
    top
        Factors named by ``explain``.
    window
        Latest outcomes per kind ``quality`` covers.
    record
        Keep every ``(kind, probability, outcome, time)`` in ``history`` (benches, tests).

    Outcomes whose features are not all finite and of a sane magnitude
    (``models.finite.usable``) are not learned; ``rejected`` counts them.

    ``checkpoint`` and ``restore`` (``models.checkpoint.Learned``) keep what it learned
    across restarts, as the churn scorer's do.

    >>> copy = B2BScorer()
    >>> copy.restore(B2BScorer(top=2).checkpoint()); copy.learned, copy.top
    ({'lead': 0, 'renewal': 0}, 3)
    """

    name = "b2b"
    LEARNED = ("models", "recent", "learned", "vocabulary", "rejected")
    FINITE = ("models",)

    def __init__(self, lead_model: Any = None, renewal_model: Any = None, top: int = 3,
                 window: int = 1000, record: bool = False) -> None:
        if top < 1 or window < 1:
            raise ValueError("top and window must be >= 1")
        self.models: dict[str, Any] = {
            "lead": lead_model if lead_model is not None else b2b_model(),
            "renewal": renewal_model if renewal_model is not None else b2b_model(),
        }
        self.top = top
        self.recent: dict[str, deque[tuple[float, bool]]] = {
            kind: deque(maxlen=window) for kind in KINDS}
        self.learned = dict.fromkeys(KINDS, 0)
        #: Values seen of each categorical trait (``account_features``), in order seen.
        self.vocabulary: dict[str, list[str]] = {trait: [] for trait in CATEGORICAL}
        self.rejected = 0
        self.record = record
        self.history: list[tuple[str, float, bool, float]] = []

    def observe(self, state: AccountState | None, account_id: str, event: Any) -> AccountState:
        """Learn the outcome ``event`` settles (scored first, from the account as it was),
        then fold ``event`` into the account's state and return it."""
        if state is not None:
            settled = outcome(state, event)
            if settled is not None:
                self.learn(state, settled[0], settled[1], event.time)
        return apply_account(state, account_id, [event])

    def learn(self, state: AccountState, kind: str, label: bool, now: float) -> float | None:
        """Score ``state`` at ``now`` with the ``kind`` model, then learn ``label``; returns
        the score made before learning (None when the features were unusable)."""
        for trait in CATEGORICAL:
            value = state.plan if trait == "plan" else state.traits.get(trait)
            seen = self.vocabulary[trait]
            if isinstance(value, str) and value and category(value) not in seen \
                    and len(seen) < MAX_VALUES:
                seen.append(category(value))
        x = account_features(state, now, kind, self.vocabulary)
        if not usable(x):
            self.rejected += 1
            return None
        model = self.models[kind]
        p = float(model.predict_proba_one(x).get(True, 0.5))
        self.recent[kind].append((p, label))
        if self.record:
            self.history.append((kind, p, label, now))
        model.learn_one(x, label)
        self.learned[kind] += 1
        return p

    def score(self, state: AccountState, now: float | None = None) -> dict[str, float]:
        """The account's live scores at ``now`` (default: its latest event): ``lead_score``
        while a quote is open, ``renewal_risk`` while a contract runs."""
        now = state.last_time if now is None else now
        scores = {}
        for kind, key, active in (("lead", "lead_score", state.quote_since is not None),
                                  ("renewal", "renewal_risk", state.contract_since is not None)):
            if active:
                x = account_features(state, now, kind, self.vocabulary)
                if usable(x):
                    p = self.models[kind].predict_proba_one(x).get(True, 0.5)
                    scores[key] = round(float(p), 4)
        return scores

    def explain(self, state: AccountState, kind: str, now: float | None = None) -> list[str]:
        """The factors that pushed the ``kind`` score up most, in plain words: one per kind of
        feature (the 30- and 90-day counts of the same thing are one reason)."""
        now = state.last_time if now is None else now
        x = account_features(state, now, kind, self.vocabulary)
        words, seen = [], set()
        for f in pushes(x, self.models[kind], 3 * self.top):
            if ("=" in f or f in FLAGS) and not x[f]:
                continue  # not being in another industry, or no demo asked, is no reason
            base = f.rpartition("_")[0] if f[-1] == "d" and f[-2].isdigit() else f
            if base not in seen:
                seen.add(base)
                words.append(describe(f, state, x))
        return words[:self.top]

    def document(self, state: AccountState) -> dict[str, Any] | None:
        """The account's score document for people and tools (the account-scores topic):
        each live score with its reasons in words; None when the account has none (no open
        quote, no running contract)."""
        scores = self.score(state)
        if not scores:
            return None
        doc: dict[str, Any] = {"account_id": state.account_id, "time": state.last_time,
                               "users": len(state.users), "plan": state.plan}
        for kind, key in (("lead", "lead_score"), ("renewal", "renewal_risk")):
            if key in scores:
                doc[key] = scores[key]
                doc[f"{kind}_reasons"] = self.explain(state, kind)
        return doc

    def quality(self) -> dict[str, dict[str, float]]:
        """Per kind, ROC AUC, log loss and accuracy of the latest ``window`` outcomes, each
        scored before it was learned (``models.progressive.live_quality``)."""
        return {kind: live_quality(self.recent[kind]) for kind in KINDS}
