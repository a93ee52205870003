"""Ticket triage: the category of a new support ticket from its text, learned online from the
category an agent finally sets.

``triage_model()`` is a River text pipeline: overlapping 4-character pieces of the lower-cased
text (``char_ngrams``) counted into a multinomial naive Bayes. Naive Bayes learns from a single
example at once (a count update), which a stream of tickets with 77 intents needs: most intents
are rare early on. Character pieces match what words miss in short, misspelt customer
messages ("recieved", "top-up" and "top up", "cards" and "card"). Measured on BANKING77
(Casanueva et al. 2020, CC BY 4.0; ``bench/model_quality.py``), progressive accuracy: 0.81
with 4-character pieces, 0.76 with words and word pairs, 0.81 with both.

>>> m = triage_model()
>>> for text, cat in [("my card has not arrived yet", "card_arrival"),
...                   ("where is my new card", "card_arrival"),
...                   ("I was charged twice for one purchase", "duplicate_charge"),
...                   ("double charge on my statement", "duplicate_charge")]:
...     m.learn_one(text, cat)
>>> m.predict_one("my card still has not arrived")
'card_arrival'
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Mapping
from typing import Any

from river import feature_extraction, naive_bayes

from models import checkpoint

__all__ = ["TicketTriage", "char_ngrams", "triage_model"]


_NOT_WORD = re.compile(r"[^a-z0-9 ]")


def char_ngrams(text: str, n: int = 4) -> list[str]:
    """Overlapping ``n``-character pieces of the lower-cased text, punctuation as spaces and
    the text padded with one, so that word starts and ends are pieces of their own.

    >>> char_ngrams("Top-up!")
    [' top', 'top ', 'op u', 'p up', ' up ', 'up  ']
    """
    s = " " + _NOT_WORD.sub(" ", text.lower()) + " "
    return [s[i:i + n] for i in range(len(s) - n + 1)]


def triage_model(alpha: float = 0.1) -> Any:
    """Text in, category out. ``alpha``: additive smoothing of the counts (0.1 measured best
    of 0.02-1 on BANKING77; River's default 1.0 flattens rare intents)."""
    return (feature_extraction.BagOfWords(tokenizer=char_ngrams, lowercase=False)
            | naive_bayes.MultinomialNB(alpha=alpha))


def _confidence(proba: Mapping[str, float], category: str | None) -> float | None:
    """The predicted category's probability; None when there is none or it is not finite."""
    if not category:
        return None
    p = float(proba[category])
    return round(p, 4) if math.isfinite(p) else None


class TicketTriage(checkpoint.Learned):
    """Triage of live tickets: predicts a new ticket's category (and the queue it routes to)
    from its subject and text, and learns from the category an agent finally sets.

    The text of tickets awaiting their category is kept (at most ``max_open``, the oldest
    dropped) so that the update that carries the category can be learned from; each ticket is
    learned once. ``quality()`` is the accuracy of the predictions whose category is known,
    over the latest ``window``.

    >>> from detectors.events import Ticket
    >>> def ticket(i, action, text=None, category=None):
    ...     return Ticket(id=f"{i}{action}", time=1.0, session_id="s", customer_id="c",
    ...                   action=action, ticket_id=str(i), text=text, category=category)
    >>> tri = TicketTriage(queues={"card_arrival": "cards"})
    >>> tri.on_ticket(ticket(1, "created", "my card has not arrived"))["category"]  # untrained
    >>> tri.on_ticket(ticket(1, "updated", category="card_arrival"))  # the agent's category
    >>> rec = tri.on_ticket(ticket(2, "created", "where is my card, not arrived"))
    >>> rec["category"], rec["queue"], tri.learned
    ('card_arrival', 'cards', 1)
    """

    #: What a checkpoint holds: the model and the open tickets' texts.
    LEARNED = ("model", "recent", "learned", "open")

    def __init__(self, model: Any = None, queues: Mapping[str, str] | None = None,
                 default_queue: str = "general", max_open: int = 10_000,
                 window: int = 1000) -> None:
        self.model = model if model is not None else triage_model()
        self.queues = dict(queues or {})
        self.default_queue = default_queue
        self.max_open = max_open
        #: ticket id -> (text, predicted category or None), tickets awaiting their category.
        self.open: dict[str, tuple[str, str | None]] = {}
        self.recent: deque[bool] = deque(maxlen=window)
        self.learned = 0

    def on_ticket(self, ticket: Any) -> dict[str, Any] | None:
        """A triage record for a new ticket with text, else None (learning as it goes)."""
        text = " ".join(x for x in (ticket.subject, ticket.text) if x)
        known = self.open.pop(ticket.ticket_id, None)
        record = None
        if known is None and text and ticket.action == "created":
            proba = self.model.predict_proba_one(text)
            category = max(proba, key=proba.__getitem__) if proba else None
            record = {"type": "ticket_triage", "ticket_id": ticket.ticket_id,
                      "customer_id": ticket.customer_id, "time": ticket.time,
                      "category": category,
                      "confidence": _confidence(proba, category),
                      "queue": self.queues.get(category or "", self.default_queue)}
            known = (text, category)
        if known is not None:
            if ticket.category:
                self.recent.append(known[1] == ticket.category)
                # A text too short for one n-gram teaches nothing; learned first, it would
                # leave naive Bayes with a class of no terms, dividing by zero on every text.
                if char_ngrams(known[0]):
                    self.model.learn_one(known[0], ticket.category)
                    self.learned += 1
            else:
                self.open[ticket.ticket_id] = known  # re-inserted last: the newest
                if len(self.open) > self.max_open:
                    del self.open[next(iter(self.open))]
        return record

    def quality(self) -> dict[str, float]:
        """Accuracy of the latest predictions against the agents' categories (NaN: none)."""
        n = len(self.recent)
        return {"accuracy": sum(self.recent) / n if n else math.nan}

