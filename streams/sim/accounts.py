"""Simulated B2B accounts over months: quotes won or lost, contracts renewed or cancelled,
with outcomes that depend on what a model can see: the stream the account scores
(``models.b2b``) are measured on (``bench/b2b_quality.py``).

Off by default: nothing else in the simulator calls it, and it draws from its own random
streams (``random.Random(f"b2b:{seed}")``, and ``f"b2b-quote:{seed}"`` for the quote stage's
buying committee and sales conversation), so the web simulator's and the customer
lifecycle's seeded output are the same whether it runs or not.

Each account arrives on a random day with traits (``seats``, ``industry``, ``plan``: an
``Identify`` per user carrying ``account_id``, as a Segment ``group`` call maps) and requests a
quote (``quote_status: requested``). While the quote is open (14 to 42 days) the members of
its buying committee visit the portal (``SessionSummary``, with friction), its users open
tickets (``Ticket``), and the CRM records the sales conversation as traits of the sales
contact (``demo_requested``, ``sales_replies`` as a running count, ``discount_requested``);
then the quote is ``won`` or ``lost``. A won quote starts a contract (``Subscription
started``) renewed every ``TERM_DAYS`` unless the account cancels at the renewal.

Ground truth (what the outcomes depend on; a model sees all of it through the features but
the hidden terms):

- each account has a hidden *interest* (standard normal) and a hidden *friction proneness*
  (log-normal: friction signals per session); interest raises how often its users visit;
- in the quote stage interest shows as engagement, which is what wins the quote: each user
  but the requester joins the buying committee with probability ``sigmoid(1.2 * interest -
  0.8)``, and only the committee visits; a demo is asked for with probability
  ``sigmoid(1.5 * interest - 0.3)``, sales' emails are answered ``Poisson(1.2 *
  exp(0.6 * interest))`` times, a discount is asked for with probability ``sigmoid(0.8 *
  interest - 1.0)``;
- the quote is won with log-odds ``LEAD`` : ``-2.4 + 1.2 * log(1 + people who visited) +
  0.6 * log((visits + 0.5) / users / quote days * 7) + 1.4 * demo + 1.0 * log(1 + replies) +
  0.6 * discount + INDUSTRY_FIT[industry] + 0.5 * (log(seats) - 3) - 1.2 * (friction per
  session - 0.5) - 0.6 * bad ratings - 0.6 * (quote days - 28) / 14 + N(0, 0.4)``, all in
  the quote stage: every term but the last is shown by the account's events, the last
  (budget, a competitor) by none; the true probabilities rank the outcomes at ROC AUC 0.88
  to 0.91 (``bench/b2b_quality.py``, seeds 1-5), about where published lead-scoring models
  on real deals reach (0.8 to 0.9);
- a contracted account's *dissatisfaction* rises with friction signals (0.15 each), tickets
  (0.2), high-priority tickets (0.3) and bad ratings (0.6) and halves every 45 days;
  30 days before each renewal the account decides, with log-odds ``RENEWAL`` : ``-2.0 +
  1.6 * dissatisfaction - 0.6 * interest - 0.3 * (log(seats) - 3) + 0.5 * (plan == "team")
  + N(0, 0.4)``, to cancel; an account that has decided visits at half its rate until
  it cancels at the renewal.

>>> events = list(simulate_accounts(AccountsConfig(accounts=10, days=200, seed=2)))
>>> sorted({e.__struct_config__.tag for e in events})
['identify', 'session_summary', 'subscription', 'ticket']
>>> all(a.time <= b.time for a, b in zip(events, events[1:]))
True
>>> events == list(simulate_accounts(AccountsConfig(accounts=10, days=200, seed=2)))
True
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from detectors import events as ev
from streams.sim.lifecycle import DAY, EPOCH

__all__ = ["AccountsConfig", "INDUSTRY_FIT", "simulate_accounts"]

#: Industry -> (share of accounts, how much it adds to the log-odds of winning the quote).
INDUSTRY_FIT = {"software": (0.3, 0.8), "finance": (0.2, 0.3), "retail": (0.2, 0.0),
                "health": (0.15, -0.4), "manufacturing": (0.15, -0.8)}
#: Days between renewals of a contract (quarterly: several outcomes per account a year).
TERM_DAYS = 90
#: Days before a renewal the account decides to renew or not.
DECIDE_DAYS = 30
#: Dissatisfaction halves in this many days without new trouble.
HALF_LIFE_DAYS = 45.0
#: Portal visits per user per day, before interest and dissatisfaction.
VISITS = 0.12
#: Log-odds of winning a quote before the terms (``LEAD`` in the module's docstring): about
#: 45-50% of quotes are won.
LEAD_BASE = -2.4
#: Spread of the hidden term of ``LEAD`` (what no event shows: budget, a competitor).
HIDDEN = 0.4
_FRICTION = ("dead_click", "rage_click", "error_page", "slow_page", "api_error")


@dataclass(frozen=True)
class AccountsConfig:
    """What to simulate: about ``accounts`` accounts arriving over the first ``days`` less
    two months, followed for ``days`` days, deterministic for a ``seed``."""

    accounts: int = 1000
    days: int = 365
    seed: int = 1

    def __post_init__(self) -> None:
        if self.accounts < 1 or self.days < 60:
            raise ValueError("need accounts >= 1 and days >= 60")


def _poisson(rng: random.Random, lam: float) -> int:
    # Knuth's method: the rates here are small.
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def _sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-max(min(z, 30.0), -30.0)))


class _Account:
    def __init__(self, i: int, rng: random.Random, quote_rng: random.Random,
                 emit: Callable[[Any], None]) -> None:
        self.aid = f"acct_{i:05d}"
        self.rng, self.quote_rng, self.emit = rng, quote_rng, emit
        self.seats = max(2, min(5000, round(rng.lognormvariate(3.0, 1.1))))
        r, acc = rng.random(), 0.0
        for industry, (share, _) in INDUSTRY_FIT.items():  # noqa: B007 - the loop picks it
            acc += share
            if r <= acc:
                break
        self.industry = industry
        self.plan = "team" if self.seats < 20 else "business" if self.seats < 200 \
            else "enterprise"
        self.users = [f"{self.aid}_u{j}" for j in range(min(2 + int(math.sqrt(self.seats)), 25))]
        self.interest = rng.gauss(0.0, 1.0)
        self.friction_rate = rng.lognormvariate(math.log(0.5), 0.6)
        self.unhappy = 0.0
        self.bad = 0
        self.n = 0
        #: Users who visited since the set was last cleared (the quote stage's committee).
        self.visitors: set[str] = set()

    def eid(self, kind: str) -> str:
        self.n += 1
        return f"{self.aid}:{kind}:{self.n}"

    def identify(self, t: float, user: str, traits: dict[str, Any]) -> None:
        self.emit(ev.Identify(id=self.eid("identify"), time=t, session_id=user,
                              customer_id=user, traits={"account_id": self.aid, **traits}))

    def subscription(self, t: float, action: Any) -> None:
        self.emit(ev.Subscription(id=self.eid("sub"), time=t, session_id=self.users[0],
                                  customer_id=self.users[0], action=action, plan=self.plan,
                                  mrr=float(self.seats * 12)))

    def day(self, t0: float, visits: float, who: list[str] | None = None
            ) -> tuple[int, int]:
        """A day of the visits of ``who`` (default: all the users), ``visits`` each, and of
        the users' tickets: (sessions, friction signals)."""
        rng = self.rng
        who = who or self.users
        sessions = signals = 0
        for _ in range(_poisson(rng, visits * len(who))):
            t = t0 + rng.uniform(0, DAY - 7200)
            user = rng.choice(who)
            friction = _poisson(rng, self.friction_rate)
            counts: dict[str, int] = {}
            for _ in range(friction):
                kind = rng.choice(_FRICTION)
                counts[kind] = counts.get(kind, 0) + 1
            self.visitors.add(user)
            self.emit(ev.SessionSummary(id=self.eid("session"), time=t,
                                        session_id=self.eid("web"), customer_id=user,
                                        friction=counts, seconds=rng.uniform(60, 1800)))
            sessions += 1
            signals += friction
            self.unhappy += 0.15 * friction / len(self.users)
            if rng.random() < min(0.02 + 0.06 * friction, 0.4):
                self.ticket(t + rng.uniform(60, 3600), user, friction)
        if rng.random() < 0.01 * math.sqrt(len(self.users)):  # a question, no friction
            self.ticket(t0 + rng.uniform(0, DAY - 7200), rng.choice(self.users), 0)
        return sessions, signals

    def ticket(self, t: float, user: str, friction: int) -> None:
        rng = self.rng
        tid = self.eid("ticket")
        high = rng.random() < 0.1 + 0.15 * (friction > 1)
        bad = rng.random() < 0.1 + 0.1 * min(friction, 3)
        self.emit(ev.Ticket(id=self.eid("t"), time=t, session_id=user, customer_id=user,
                            action="created", ticket_id=tid,
                            priority="high" if high else "normal"))
        self.emit(ev.Ticket(id=self.eid("t"), time=t + rng.uniform(0.1, 0.9) * 3600,
                            session_id=user, customer_id=user, action="solved",
                            ticket_id=tid, status="solved", satisfaction="bad" if bad else None))
        self.bad += bad
        self.unhappy += (0.2 + 0.3 * high + 0.6 * bad) / len(self.users)


def _quote(a: _Account, t: float, quote_days: int) -> dict[str, float]:
    """The quote stage requested at ``t``: the buying committee's visits and the sales
    conversation the CRM records (its own random stream, ``a.quote_rng``); returns what the
    events show of it, from which the outcome is drawn."""
    q = a.quote_rng
    # The requester, and each other user who takes part in the evaluation.
    committee = [a.users[0]] + [u for u in a.users[1:]
                                if q.random() < _sigmoid(1.2 * a.interest - 0.8)]
    visits = VISITS * math.exp(0.5 * a.interest)
    a.visitors.clear()
    sessions = signals = 0
    bad_before = a.bad
    for d in range(1, quote_days):
        s, f = a.day(t + d * DAY, visits, committee)
        sessions, signals = sessions + s, signals + f
    bad = a.bad - bad_before
    # The CRM's record of the sales conversation, as traits of the sales contact: a demo
    # asked for, each email answered (a running count), a discount asked for.
    stage = (quote_days - 1) * DAY
    demo = q.random() < _sigmoid(1.5 * a.interest - 0.3)
    if demo:
        a.identify(t + q.uniform(0.05, 0.6) * stage, a.users[0], {"demo_requested": True})
    replies = _poisson(q, 1.2 * math.exp(0.6 * a.interest))
    for n, when in enumerate(sorted(q.uniform(0.02, 0.95) for _ in range(replies)), 1):
        a.identify(t + when * stage, a.users[0], {"sales_replies": n})
    discount = q.random() < _sigmoid(0.8 * a.interest - 1.0)
    if discount:
        a.identify(t + q.uniform(0.5, 0.95) * stage, a.users[0], {"discount_requested": True})
    return {"visitors": len(a.visitors), "sessions": sessions,
            "friction": signals / sessions if sessions else 0.0, "bad": bad,
            "demo": float(demo), "replies": replies, "discount": float(discount)}


def _lifetime(a: _Account, start: int, days: int, truth: list[Any] | None) -> None:
    """An account's quote and, if won, its contract, from day ``start`` to ``days``."""
    rng = a.rng
    t = EPOCH + start * DAY
    for j, user in enumerate(a.users):
        traits: dict[str, Any] = {"seats": a.seats, "industry": a.industry, "plan": a.plan} \
            if j == 0 else {}
        a.identify(t + j, user, traits)
    a.identify(t + 60, a.users[0], {"quote_status": "requested"})
    quote_days = rng.randint(14, 42)
    end = start + quote_days
    shown = _quote(a, t, quote_days)
    if end >= days:
        return
    lead = (LEAD_BASE + 1.2 * math.log1p(shown["visitors"])
            + 0.6 * math.log((shown["sessions"] + 0.5) / len(a.users) / quote_days * 7)
            + 1.4 * shown["demo"] + 1.0 * math.log1p(shown["replies"]) + 0.6 * shown["discount"]
            + INDUSTRY_FIT[a.industry][1] + 0.5 * (math.log(a.seats) - 3)
            - 1.2 * (shown["friction"] - 0.5) - 0.6 * shown["bad"]
            - 0.6 * (quote_days - 28) / 14 + a.quote_rng.gauss(0.0, HIDDEN))
    won = rng.random() < _sigmoid(lead)
    if truth is not None:
        truth.append(("lead", _sigmoid(lead), won))
    t_end = EPOCH + end * DAY
    a.identify(t_end, a.users[0], {"quote_status": "won" if won else "lost"})
    if not won:
        return
    a.subscription(t_end + 60, "started")
    a.unhappy = 0.0
    decay = 0.5 ** (1 / HALF_LIFE_DAYS)
    leaving = False
    for day in range(end + 1, days):
        a.unhappy *= decay
        since = day - end
        if since % TERM_DAYS == TERM_DAYS - DECIDE_DAYS:
            risk = (-2.0 + 1.6 * a.unhappy - 0.6 * a.interest - 0.3 * (math.log(a.seats) - 3)
                    + 0.5 * (a.plan == "team") + rng.gauss(0.0, 0.4))
            leaving = rng.random() < _sigmoid(risk)
            if truth is not None:
                truth.append(("renewal", _sigmoid(risk), leaving))
        if since % TERM_DAYS == 0:
            a.subscription(EPOCH + day * DAY, "cancelled" if leaving else "renewed")
            if leaving:
                return
        rate = VISITS * math.exp(0.5 * a.interest - 0.3 * a.unhappy) / (2 if leaving else 1)
        a.day(EPOCH + day * DAY, rate)


def simulate_accounts(config: AccountsConfig, truth: list[Any] | None = None) -> Iterator[Any]:
    """The accounts' canonical events, in time order. ``truth``, when given, receives each
    outcome's ``(kind, true probability, outcome)`` (hidden terms included), in the order
    the outcomes were drawn: the best a model could score (``bench/b2b_quality.py``)."""
    rng = random.Random(f"b2b:{config.seed}")
    quote_rng = random.Random(f"b2b-quote:{config.seed}")
    events: list[Any] = []
    for i in range(config.accounts):
        _lifetime(_Account(i, rng, quote_rng, events.append), rng.randrange(config.days - 60),
                  config.days, truth)
    events.sort(key=lambda e: e.time)
    yield from events
