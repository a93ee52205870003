"""Support trends: which ticket topics are rising now, each against its own past.

A topic is a key phrase of ticket text: a word or a pair of adjacent words, lower-cased,
with English stop words (scikit-learn's list), prices and long numbers removed and a plural
``s`` cut (``key_phrases``). Triage categories are too coarse for this ("coupons" holds every
coupon problem there is; "promo code winter25" is the one that broke today); they are kept
beside each topic as a dimension.

``SupportTrends`` counts every phrase's new tickets in a sliding window (an hour by default)
and, for the tickets older than that, keeps a count that decays with a half-life (a week): the
phrase's own baseline. A phrase rises when the window holds more tickets than its baseline
makes believable: the baseline rate is a Gamma posterior (a prior of one ticket an hour that
weighs a fifth of an hour, plus the decayed count over the decayed hours watched), so the
window's count is negative-binomial under "nothing changed"; the phrase is reported when that
tail probability is below ``alpha`` and the window also holds ``min_tickets`` tickets from
``min_customers`` customers, ``min_growth`` times the expected count. A phrase never seen
before has a zero count over all the hours watched, so its rate is the prior's spread over
them: a new topic needs a handful of tickets, a steady one a real jump. The negative binomial
(not a Poisson at the point estimate) keeps rare phrases, whose rate is known poorly, from
alarming on luck.

Rising phrases that share most of their window's tickets are one topic (a burst of "promo
code WINTER25 not accepted" raises "promo code", "winter25" and "code winter25" together);
each topic comes with its volume per hour, growth against baseline, a few example tickets
(ids and short redacted snippets), its tickets' triage categories and the friction signals
seen in the same customers' web sessions (``SessionSummary`` events, by customer).

State is bounded: at most ``max_topics`` phrases (the stalest evicted first: fewest tickets in
the window, then the smallest decayed count), ``max_customers`` customers' friction, and the
window's tickets. Kleinberg (2002), "Bursty and hierarchical structure in streams", frames
bursts as a rate above a state's own; this is the one-state-versus-baseline test of it, with
a false-alarm control instead of a state machine.

>>> from detectors.events import Ticket
>>> def ticket(i, t, text, customer="c"):
...     return Ticket(id=f"t{i}", time=t, session_id="s", customer_id=f"{customer}{i % 7}",
...                   action="created", ticket_id=str(i), subject=text)
>>> tr = SupportTrends(warmup=3600.0)
>>> for i in range(48):  # a day of one ticket per half hour about orders
...     tr.learn_one(ticket(i, i * 1800.0, "Where is my order?"))
>>> tr.rising(48 * 1800.0)
[]
>>> for i in range(100, 108):  # then eight in 40 minutes about a new promo code
...     tr.learn_one(ticket(i, 86400.0 + (i - 100) * 300.0, "Promo code WINTER25 not accepted"))
>>> [top] = tr.rising(86400.0 + 2400.0)
>>> top["topic"], top["tickets"], top["customers"], top["phrases"][:2]
('code winter25', 8, 7, ['code winter25', 'promo code'])
>>> top["examples"][0]
{'ticket_id': '100', 'time': 86400.0, 'snippet': 'Promo code WINTER25 not accepted'}
"""

from __future__ import annotations

import math
import re
from collections import Counter, OrderedDict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from scipy.special import betainc
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from detectors.events import SessionSummary, Ticket
from models import checkpoint

__all__ = ["SupportTrends", "TrendWatch", "covered", "key_phrases", "kb_tokens",
           "redact_snippet", "uncovered"]

#: Prices ("$12.34", "12,50"), so a ticket's amount is not a phrase.
_MONEY = re.compile(r"[$€£]?\d+[.,]\d{2}\b")
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
#: Words the stop list lacks that every ticket says; they would be phrases of everything.
_EXTRA_STOP = frozenset({"hi", "hello", "thanks", "thank", "please", "help", "hey", "just",
                         "i'm", "it's", "don't", "can't", "didn't", "doesn't", "won't",
                         "isn't", "wasn't", "haven't", "ve", "ll"})
_STOP = ENGLISH_STOP_WORDS | _EXTRA_STOP
#: Most phrases a ticket contributes: a long ticket must not weigh more than a short one.
MAX_PHRASES = 40
#: Characters of ticket text read for phrases (a pasted log must not cost more).
MAX_TEXT = 600


def _norm(tok: str) -> str | None:
    if tok.isdigit():
        # HTTP statuses and the like ("404", "500") say something; order numbers do not.
        return tok if len(tok) == 3 else None
    if len(tok) < 2 or tok in _STOP or "'" in tok:
        return None
    if len(tok) > 3 and tok.endswith("s") and not tok.endswith("ss"):
        tok = tok[:-1]  # cards -> card: enough stemming for counting, no library needed
    return tok


def _tokens(text: str) -> list[str | None]:
    """Normalized words in order, None where a stop word or number broke the run."""
    text = _MONEY.sub(" ", text[:MAX_TEXT].lower())
    return [_norm(t) for t in _TOKEN.findall(text)]


def key_phrases(text: str) -> list[str]:
    """A text's key phrases: its content words and pairs of adjacent content words (not
    across a stop word), each once, in order of first appearance.

    >>> key_phrases("Promo code WINTER25 is not accepted at $12.50!")
    ['promo', 'code', 'winter25', 'accepted', 'promo code', 'code winter25']
    >>> key_phrases("Tracking link gives a 404 error")
    ['tracking', 'link', 'give', '404', 'error', 'tracking link', 'link give', '404 error']
    """
    toks = _tokens(text)
    words = [t for t in toks if t]
    pairs = [f"{a} {b}" for a, b in zip(toks, toks[1:], strict=False) if a and b]
    return list(dict.fromkeys(words + pairs))[:MAX_PHRASES]


def kb_tokens(title: str) -> frozenset[str]:
    """The content words of a knowledge-base article's title (or URL slug), as phrases see
    them.

    >>> sorted(kb_tokens("https://help.example.com/articles/using-promo-codes"))
    ['article', 'code', 'com', 'example', 'http', 'promo', 'using']
    """
    return frozenset(t for t in _tokens(title.replace("-", " ").replace("_", " ")) if t)


def covered(phrases: Sequence[str], articles: Iterable[frozenset[str]],
            min_overlap: int = 2) -> bool:
    """Whether an article title covers a topic: it shares ``min_overlap`` words with the
    topic's key phrases (all of them when the topic has fewer).

    >>> arts = [kb_tokens("Promo codes and discounts"), kb_tokens("Tracking your parcel")]
    >>> covered(["promo code", "code winter25"], arts), covered(["tracking link", "404"], arts)
    (True, False)
    """
    words = {w for p in phrases for w in p.split()}
    need = min(min_overlap, len(words))
    return need > 0 and any(len(words & a) >= need for a in articles)


def uncovered(topics: Iterable[Mapping[str, Any]], articles: Iterable[str],
              min_overlap: int = 2) -> list[Mapping[str, Any]]:
    """The rising topics (``SupportTrends.rising`` records) no article title covers."""
    arts = [kb_tokens(a) for a in articles]
    return [t for t in topics if not covered(t["phrases"], arts, min_overlap)]


_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
_LONG_NUMBER = re.compile(r"\d[\d -]{3,}\d")


def redact_snippet(text: str, length: int = 120) -> str:
    """A short, redacted snippet: emails and long numbers (cards, phones, orders) masked,
    whitespace folded, cut at ``length`` characters.

    >>> redact_snippet("Card 4242 4242 4242 4242 fails, mail me at a.b@example.com")
    'Card [number] fails, mail me at [email]'
    """
    text = _LONG_NUMBER.sub("[number]", _EMAIL.sub("[email]", text))
    text = " ".join(text.split())
    return text if len(text) <= length else text[:length - 1] + "…"


@dataclass(slots=True)
class _Phrase:
    #: Window tickets (time, ticket id), oldest first.
    recent: deque[tuple[float, str]] = field(default_factory=deque)
    #: Decayed count of older tickets, as of ``base_t``.
    base: float = 0.0
    base_t: float = 0.0
    #: Tickets per hourly bucket (bucket start -> count), the latest ``history`` buckets.
    hourly: dict[float, int] = field(default_factory=dict)


@dataclass(slots=True)
class _Seen:
    time: float
    customer: str | None
    snippet: str
    category: str | None
    phrases: list[str]


class SupportTrends(checkpoint.Learned):
    """Rising support-ticket topics, each against its own baseline (see the module).

    Parameters: ``window`` seconds of new tickets tested; ``half_life`` seconds of the
    baseline's memory; ``prior_tickets`` in ``prior_hours``: a phrase's rate before any data
    (light: at one ticket in one hour, six hours of a phrase seen 18 times an hour came out
    at 12 an hour, and a steady hour of 37 was a burst; ``bench/trends_quality.py``, seed
    10);
    ``alpha``: the tail probability below which a window is a burst; ``min_tickets``,
    ``min_customers``, ``min_growth``: what a burst must also be; ``warmup``: seconds watched
    before anything is reported; ``bucket`` seconds of the volume buckets, ``history`` buckets
    kept; ``max_topics``, ``max_customers``, ``max_window_tickets``, ``max_examples``: bounds;
    ``overlap``: share of the smaller ticket set two phrases must share to be one topic.

    ``checkpoint()`` and ``restore()`` keep what it learned across a restart.
    """

    #: What a checkpoint holds: the baselines, the window and the customers' friction.
    LEARNED = ("start", "clock", "phrases", "tickets", "friction", "learned", "evicted")
    #: Event times and decayed counts, finite by the events' bounds: nothing to walk.
    FINITE = ()

    def __init__(self, window: float = 3600.0, half_life: float = 7 * 86400.0,
                 prior_tickets: float = 0.2, prior_hours: float = 0.2, alpha: float = 1e-6,
                 min_tickets: int = 5, min_customers: int = 3, min_growth: float = 3.0,
                 warmup: float = 6 * 3600.0, bucket: float = 3600.0, history: int = 24,
                 max_topics: int = 5000, max_customers: int = 50_000,
                 max_window_tickets: int = 20_000, max_examples: int = 5,
                 overlap: float = 0.5) -> None:
        if window <= 0 or half_life <= 0 or bucket <= 0:
            raise ValueError("window, half_life and bucket must be positive")
        if prior_tickets <= 0 or prior_hours <= 0:
            raise ValueError("prior_tickets and prior_hours must be positive")
        if not 0 < alpha < 1 or not 0 < overlap <= 1:
            raise ValueError("alpha must be within (0, 1) and overlap within (0, 1]")
        if min(max_topics, max_customers, max_window_tickets, max_examples, history) < 1:
            raise ValueError("bounds must be >= 1")
        self.window = window
        self.half_life = half_life
        self.prior_tickets = prior_tickets
        self.prior_hours = prior_hours
        self.alpha = alpha
        self.min_tickets = min_tickets
        self.min_customers = min_customers
        self.min_growth = min_growth
        self.warmup = warmup
        self.bucket = bucket
        self.history = history
        self.max_topics = max_topics
        self.max_customers = max_customers
        self.max_window_tickets = max_window_tickets
        self.max_examples = max_examples
        self.overlap = overlap
        #: Event time of the first ticket, and the latest time seen.
        self.start: float | None = None
        self.clock = 0.0
        self.phrases: dict[str, _Phrase] = {}
        #: The window's tickets by id, oldest first.
        self.tickets: OrderedDict[str, _Seen] = OrderedDict()
        #: Customer -> (time of their latest session summary, friction signals by type).
        self.friction: OrderedDict[str, tuple[float, Counter[str]]] = OrderedDict()
        self.learned = 0
        self.evicted = 0

    # --- learning ------------------------------------------------------------------------

    def learn_one(self, event: Any) -> None:
        """Learn from a support event: a new ticket's text, or a customer's session summary
        (their friction, for the join). Other events, ticket updates and a ticket seen
        before change nothing."""
        if type(event) is SessionSummary:
            self._session(event)
        elif type(event) is Ticket and event.action == "created":
            self._ticket(event)

    def _session(self, e: SessionSummary) -> None:
        if not e.customer_id or not e.friction:
            return
        prev = self.friction.pop(e.customer_id, None)
        counts = prev[1] if prev is not None else Counter()
        counts.update(e.friction)
        self.friction[e.customer_id] = (max(e.time, prev[0] if prev else e.time), counts)
        if len(self.friction) > self.max_customers:
            self.friction.popitem(last=False)

    def _ticket(self, e: Ticket) -> None:
        text = " ".join(x for x in (e.subject, e.text) if x)
        if not text or e.ticket_id in self.tickets:
            return
        if self.start is None:
            self.start = self.clock = e.time
        # A late ticket counts as arriving now, so the window stays in time order.
        t = max(e.time, self.clock)
        self._advance(t)
        phrases = key_phrases(text)
        self.tickets[e.ticket_id] = _Seen(t, e.customer_id, redact_snippet(text), e.category,
                                          phrases)
        b = math.floor(t / self.bucket) * self.bucket
        for p in phrases:
            ph = self.phrases.get(p)
            if ph is None:
                ph = self.phrases[p] = _Phrase(base_t=t)
            ph.recent.append((t, e.ticket_id))
            ph.hourly[b] = ph.hourly.get(b, 0) + 1
            if len(ph.hourly) > self.history:
                del ph.hourly[min(ph.hourly)]
        self.learned += 1
        if len(self.tickets) > self.max_window_tickets:
            self._retire(next(iter(self.tickets)))
        if len(self.phrases) > self.max_topics:
            self._evict()

    def _advance(self, now: float) -> None:
        """Move tickets that left the window into their phrases' baselines."""
        self.clock = max(self.clock, now)
        edge = self.clock - self.window
        while self.tickets:
            tid, seen = next(iter(self.tickets.items()))
            if seen.time > edge:
                break
            self._retire(tid)

    def _retire(self, tid: str) -> None:
        seen = self.tickets.pop(tid)
        for p in seen.phrases:
            ph = self.phrases.get(p)
            # Tickets leave in order, so a phrase's oldest is this one, unless the phrase was
            # evicted since (and maybe started again by newer tickets).
            if ph is None or not ph.recent or ph.recent[0][1] != tid:
                continue
            ph.recent.popleft()
            ph.base = self._decayed(ph, seen.time) + 1.0
            ph.base_t = seen.time

    def _decayed(self, ph: _Phrase, t: float) -> float:
        return ph.base * 0.5 ** ((t - ph.base_t) / self.half_life)

    def _evict(self) -> None:
        """Drop the stalest tenth of the phrases: fewest tickets in the window first (none,
        while there are such), then the smallest decayed counts (rare or long-quiet phrases;
        one that returns starts as new)."""
        stale = sorted((len(ph.recent), self._decayed(ph, self.clock), p)
                       for p, ph in self.phrases.items())
        for _, _, p in stale[:max(1, len(self.phrases) // 10)]:
            del self.phrases[p]
            self.evicted += 1

    def quality(self) -> dict[str, float]:
        """Nothing to judge it by online (what rises has no label): no quality gauges."""
        return {}

    # --- the query -----------------------------------------------------------------------

    def _exposure_hours(self, now: float) -> float:
        """Decayed hours watched before the window (each hour weighted as its counts are)."""
        start = now if self.start is None else self.start
        span = max(0.0, now - self.window - start)
        h = self.half_life
        return h / math.log(2) * (1 - 0.5 ** (span / h)) / 3600.0

    def score(self, phrase: str, now: float, tickets: int | None = None
              ) -> dict[str, float] | None:
        """The burst test of one phrase at ``now``: window tickets (or ``tickets``, if
        given), expected tickets, growth and the tail probability (None: not tracked)."""
        ph = self.phrases.get(phrase)
        if ph is None:
            return None
        n = len(ph.recent) if tickets is None else tickets
        # Gamma(a, b) posterior of the hourly rate; the window's count is then negative
        # binomial(a, b / (b + w)) and P(X >= n) = I_{w/(b+w)}(n, a).
        a = self.prior_tickets + self._decayed(ph, now - self.window)
        b = self.prior_hours + self._exposure_hours(now)
        w = self.window / 3600.0
        expected = a / b * w
        p = float(betainc(n, a, w / (b + w))) if n > 0 else 1.0
        return {"tickets": n, "expected": expected, "growth": n / expected, "p_value": p,
                "baseline_per_hour": a / b}

    def rising(self, now: float) -> list[dict[str, Any]]:
        """The topics rising at ``now`` (event time), most significant first; nothing during
        the warm-up. Changes no state but the window's edge (old tickets join baselines)."""
        if self.start is None:
            return []
        self._advance(now)
        if now - self.start < self.warmup:
            return []
        found: list[tuple[float, str, dict[str, float]]] = []
        for p, ph in self.phrases.items():
            if len(ph.recent) < self.min_tickets:
                continue
            s = self.score(p, now)
            if s is None or s["p_value"] > self.alpha or s["growth"] < self.min_growth:
                continue
            found.append((s["p_value"], p, s))
        # Most significant first; ties (tail probabilities that underflow) by volume, then a
        # pair before a word (more specific), then by name for a stable order.
        found.sort(key=lambda f: (f[0], -f[2]["tickets"], -len(f[1].split()), f[1]))
        groups: list[tuple[set[str], list[str], dict[str, float]]] = []
        for _, p, s in found:
            ids = {tid for _, tid in self.phrases[p].recent}
            shared = [len(ids & gids) for gids, _, _ in groups]
            best = max(range(len(groups)), key=shared.__getitem__, default=None)
            if best is not None and shared[best] > 0 and (
                    shared[best] >= self.overlap * min(len(ids), len(groups[best][0]))
                    or not self._rises(p, now, len(ids.difference(*(g[0] for g in groups))))):
                # Mostly the same tickets, or rising only through a stronger topic's tickets
                # (a steady "discount" during a burst of "WINTER25 discount doesn't work").
                groups[best][1].append(p)
            else:
                groups.append((ids, [p], s))
        out = []
        for ids, phrases, s in groups:
            rec = self._topic(phrases, ids, s, now)
            if rec is not None:
                out.append(rec)
        return out

    def _rises(self, phrase: str, now: float, tickets: int) -> bool:
        s = self.score(phrase, now, tickets)
        return (s is not None and tickets >= self.min_tickets and s["p_value"] <= self.alpha
                and s["growth"] >= self.min_growth)

    def _topic(self, phrases: list[str], ids: set[str], s: Mapping[str, float], now: float
               ) -> dict[str, Any] | None:
        seen = [(tid, self.tickets[tid]) for tid in ids if tid in self.tickets]
        seen.sort(key=lambda x: (x[1].time, x[0]))
        customers = {x.customer for _, x in seen if x.customer}
        if len(customers) < self.min_customers:
            return None
        friction: Counter[str] = Counter()
        with_friction = 0
        for c in customers:
            got = self.friction.get(c)
            # Sessions within a day of now: the friction the ticket is likely about.
            if got is not None and now - got[0] <= 86400.0:
                with_friction += 1
                friction.update(dict.fromkeys(got[1], 1))
        lead = phrases[0]
        hourly = self.phrases[lead].hourly
        return {
            "type": "support_trend",
            "topic": lead,
            "phrases": phrases[:10],
            "time": now,
            "since": seen[0][1].time if seen else now,
            "tickets": int(s["tickets"]),
            "customers": len(customers),
            "expected": round(s["expected"], 4),
            "baseline_per_hour": round(s["baseline_per_hour"], 4),
            "growth": round(s["growth"], 2),
            "p_value": s["p_value"],
            "hourly": [[b, hourly[b]] for b in sorted(hourly)],
            "examples": [{"ticket_id": tid, "time": x.time, "snippet": x.snippet}
                         for tid, x in seen[:self.max_examples]],
            "categories": dict(Counter(x.category for _, x in seen if x.category)
                               .most_common(5)),
            "customers_with_friction": with_friction,
            "friction": dict(friction.most_common()),
        }


class TrendWatch:
    """What a worker publishes about support trends: ``update(event)`` learns the event and,
    each ``every`` seconds of event time, asks ``model`` what is rising; a topic is published
    when it starts rising and again every ``repeat`` seconds while it rises, marked with the
    knowledge-base article that covers it (``covered``), if any, in ``kb_article``.

    >>> from detectors.events import Ticket
    >>> def ticket(i, t, text):
    ...     return Ticket(id=f"t{i}", time=t, session_id="s", customer_id=f"c{i}",
    ...                   action="created", ticket_id=str(i), subject=text)
    >>> w = TrendWatch(articles=["Using promo codes", "Tracking your parcel: link not working"])
    >>> out = w.update(ticket(0, 0.0, "Where is my order?"))  # a day before
    >>> for i in range(1, 13):  # then a ticket every 5 minutes about a tracking link
    ...     out += w.update(ticket(i, 86400.0 + 300.0 * i, "Tracking link 404"))
    >>> [(r["topic"], r["tickets"], r["kb_article"]) for r in out]  # once, not every 5 min
    [('link 404', 5, 'Tracking your parcel: link not working')]
    """

    def __init__(self, model: SupportTrends | None = None, articles: Sequence[str] = (),
                 every: float = 300.0, repeat: float = 3600.0, min_overlap: int = 2) -> None:
        if every <= 0 or repeat < 0:
            raise ValueError("every must be positive and repeat not negative")
        self.model = model if model is not None else SupportTrends()
        self.articles = list(articles)
        self.every = every
        self.repeat = repeat
        self.min_overlap = min_overlap
        self._tokens = [kb_tokens(a) for a in self.articles]
        self.next_query: float | None = None
        #: Topic -> event time it was last published (only topics rising within ``repeat``).
        self.published: dict[str, float] = {}

    def update(self, event: Any) -> list[dict[str, Any]]:
        """Learn ``event``; the records to publish now (usually none)."""
        self.model.learn_one(event)
        if self.model.start is None:
            return []
        now = self.model.clock
        if self.next_query is None:
            self.next_query = now + self.every
        out: list[dict[str, Any]] = []
        while now >= self.next_query:
            out += self.query(self.next_query)
            self.next_query += self.every
        return out

    def query(self, now: float) -> list[dict[str, Any]]:
        """The rising topics at ``now`` that are due to be published."""
        out = []
        for topic in self.model.rising(now):
            last = self.published.get(topic["topic"])
            if last is not None and now - last < self.repeat:
                continue
            self.published[topic["topic"]] = now
            art = next((a for a, toks in zip(self.articles, self._tokens, strict=True)
                        if covered(topic["phrases"], [toks], self.min_overlap)), None)
            out.append({**topic, "kb_article": art})
        for k in [k for k, t in self.published.items() if now - t >= self.repeat]:
            del self.published[k]  # bounded: only topics published within ``repeat``
        return out
