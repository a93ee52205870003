"""Delivery decisions with no I/O: retry schedule, status classes, ``Retry-After``, expiry,
webhook signatures, the bounded record of recent deliveries, and each tool's message.

Everything here is a pure function of its arguments (randomness comes from a ``random.Random``
the caller passes), so the shell (``streams.deliver.sender``, ``streams.deliver.runner``) is
thin and these rules are tested without a network.

>>> statuses = [classify(s) for s in (200, 202, 400, 404, 408, 409, 429, 500, 503)]
>>> statuses
['ok', 'ok', 'permanent', 'permanent', 'retry', 'retry', 'retry', 'retry', 'retry']
>>> retry_after_seconds({"Retry-After": "7"}, now=0.0)
7.0
"""

from __future__ import annotations

import hashlib
import hmac
import random
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal

__all__ = ["Backoff", "DESTINATIONS", "OUTCOMES", "RecentIds", "StatusClass", "classify",
           "expired", "expires_at", "intercom_message", "retry_after_seconds", "sign",
           "slack_message", "summary", "zendesk_ticket"]

#: Where deliveries go: a bounded Prometheus label ("none": nothing configured).
DESTINATIONS = ("slack", "intercom", "zendesk", "webhook", "none")
#: What became of one document at one destination: a bounded Prometheus label.
OUTCOMES = (
    "delivered",  # the API accepted it (2xx)
    "duplicate",  # delivered before (the record of recent deliveries): not sent again
    "expired",  # a chat trigger past its expiry: an offer to a customer who left is useless
    "skipped",  # nothing to address it to (an Intercom offer to a session with no customer)
    "rejected",  # a 4xx other than 408/409/429: sending it again cannot help; dead-lettered
    "exhausted",  # every attempt failed (5xx, 408, 409, 429, timeouts); dead-lettered
    "not_configured",  # no destination configured: counted, nothing sent
)

StatusClass = Literal["ok", "retry", "permanent"]


def classify(status: int) -> StatusClass:
    """What an HTTP status means for a delivery: done, worth another try, or never.

    408 (timeout), 409 (a conflict, e.g. Zendesk's idempotency key still in flight) and 429
    (rate limited) are retried like 5xx; other 4xx say the request itself is wrong (bad token,
    unknown contact, invalid body), so repeating it cannot help.
    """
    if 200 <= status < 300:
        return "ok"
    if status in (408, 409, 429) or status >= 500:
        return "retry"
    return "permanent"


def retry_after_seconds(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds to wait that a 429/503 response asks for: ``Retry-After`` as seconds or as an
    HTTP date (RFC 9110 10.2.3), else Intercom's ``X-RateLimit-Reset`` (a Unix time); None
    when it names none. Never negative.

    >>> retry_after_seconds({"Retry-After": "Wed, 21 Oct 2015 07:28:10 GMT"}, 1445412480.0)
    10.0
    >>> retry_after_seconds({"X-RateLimit-Reset": "1000"}, now=997.5)
    2.5
    >>> retry_after_seconds({"Retry-After": "soon"}, now=0.0) is None
    True
    """
    lower = {k.lower(): v for k, v in headers.items()}
    value = lower.get("retry-after")
    if value is not None:
        value = value.strip()
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, when.timestamp() - now)
    reset = lower.get("x-ratelimit-reset")
    if reset is not None:
        try:
            return max(0.0, float(reset) - now)
        except ValueError:
            return None
    return None


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with full jitter: before retry ``n`` (1, 2, ...) wait a uniform
    draw in ``[0, min(cap, base * 2 ** (n - 1))]`` (AWS Architecture Blog, "Exponential
    Backoff And Jitter": full jitter spreads clients that failed together). A ``Retry-After``
    the server sent is honoured as the least wait, up to ``max_retry_after``.

    >>> b = Backoff(base=1.0, cap=8.0, attempts=4)
    >>> rng = random.Random(1)
    >>> [round(b.delay(n, rng), 2) for n in (1, 2, 3, 4, 5)]
    [0.13, 1.69, 3.06, 2.04, 3.96]
    >>> b.delay(1, rng, retry_after=3.0) >= 3.0
    True
    """

    base: float = 0.5
    cap: float = 30.0
    #: Attempts in all (the first one included) before a delivery is given up.
    attempts: int = 5
    max_retry_after: float = 300.0

    def __post_init__(self) -> None:
        if self.base <= 0 or self.cap < self.base or self.attempts < 1:
            raise ValueError("need base > 0, cap >= base and attempts >= 1")

    def delay(self, retry: int, rng: random.Random, retry_after: float | None = None) -> float:
        wait = rng.uniform(0.0, min(self.cap, self.base * 2 ** (retry - 1)))
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_retry_after))
        return wait


def _parse_time(text: object) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def expires_at(doc: Mapping[str, Any]) -> float | None:
    """A document's expiry (Unix seconds): a chat trigger's ``data.expires``; None for
    documents without one (alerts)."""
    data = doc.get("data")
    return _parse_time(data.get("expires")) if isinstance(data, Mapping) else None


def expired(doc: Mapping[str, Any], now: float) -> bool:
    """Whether a document is past its expiry (a chat trigger's ``data.expires``); documents
    without one (alerts) never expire.

    >>> expired({"data": {"expires": "2026-01-01T00:02:00Z"}}, now=1767225600.0)
    False
    >>> expired({"data": {"expires": "2026-01-01T00:02:00Z"}}, now=1767225721.0)
    True
    >>> expired({"data": {}}, now=1e12)
    False
    """
    expires = expires_at(doc)
    return expires is not None and now > expires


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The webhook signature header value: ``sha256=`` and the hex HMAC-SHA256, keyed with
    ``secret``, of the timestamp, a ``.`` and the body (Stripe's and Slack's scheme: the
    timestamp inside the signature keeps an old request from being replayed later).

    >>> sign("s3cret", "1700000000", b'{"id":"a"}')[:15]
    'sha256=5728bde1'
    """
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class RecentIds:
    """The ids delivered most recently, at most ``capacity`` of them (the oldest forgotten
    first), so a document read again after a crash or a rebalance is not sent twice.

    >>> r = RecentIds(2)
    >>> r.add("a"); r.add("b"); r.add("c")
    >>> "a" in r, "b" in r, "c" in r, len(r)
    (False, True, True, 2)
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, key: object) -> bool:
        return key in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def __iter__(self) -> Any:
        return iter(self._ids)

    def add(self, key: str) -> None:
        self._ids[key] = None
        self._ids.move_to_end(key)
        while len(self._ids) > self.capacity:
            self._ids.popitem(last=False)


# --- rendering ---------------------------------------------------------------------------


def _data(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    data = doc.get("data")
    return data if isinstance(data, Mapping) else {}


def _money(value: object) -> str | None:
    return f"{value:,.2f}" if isinstance(value, int | float) and value > 0 else None


def summary(doc: Mapping[str, Any]) -> str:
    """One line a person reads: what happened, where, and what is at stake.

    >>> summary({"type": "io.frictionwatch.chat.offer", "subject": "s1",
    ...          "data": {"reason": "payment_declined", "priority": 42.0}})
    'Chat offer: payment_declined in session s1 (42.00 at risk)'
    """
    data = _data(doc)
    kind = str(doc.get("type", ""))
    reason = data.get("reason") or data.get("kind") or kind.rsplit(".", 1)[-1]
    if kind.startswith("io.frictionwatch.chat"):
        head = f"Chat offer: {reason} in session {doc.get('subject')}"
    elif kind.startswith("io.frictionwatch.journey.incident"):
        head = f"Incident: {reason} at {doc.get('subject')}"
    elif kind.startswith("io.frictionwatch.session"):
        head = f"Checkout friction: {reason} in session {doc.get('subject')}"
    else:
        head = f"{kind or 'frictionwatch'}: {reason} ({doc.get('subject')})"
    at_risk = _money(data.get("revenue_at_risk", data.get("priority")))
    return head + (f" ({at_risk} at risk)" if at_risk else "")


def slack_message(doc: Mapping[str, Any]) -> dict[str, Any]:
    """An incoming-webhook payload: ``text`` (the notification's fallback) and Block Kit
    ``blocks`` with the summary, the recommended action and the document's id."""
    data = _data(doc)
    text = summary(doc)
    details = [f"*{text}*"]
    if data.get("recommended_action"):
        details.append(f"Recommended: {data['recommended_action']}")
    if data.get("message"):
        details.append(f"Offer: {data['message']}")
    if data.get("expires"):
        details.append(f"Expires: {data['expires']}")
    return {
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(details)}},
            {"type": "context", "elements": [
                {"type": "mrkdwn", "text": f"frictionwatch `{doc.get('id')}` at {doc.get('time')}"},
            ]},
        ],
    }


def intercom_message(doc: Mapping[str, Any], admin_id: str) -> dict[str, Any] | None:
    """The body of Intercom's ``POST /messages`` for a proactive in-app message from an
    admin to the trigger's customer (``to.user_id``: the customer pseudonym the trigger
    carries); None when the session has no known customer to address."""
    data = _data(doc)
    customer = data.get("customer")
    if not customer:
        return None
    return {
        "message_type": "inapp",
        "body": str(data.get("message") or summary(doc)),
        "from": {"type": "admin", "id": admin_id},
        "to": {"type": "user", "user_id": str(customer)},
    }


def zendesk_ticket(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The body of Zendesk's ``POST /api/v2/tickets.json``: subject, an internal comment with
    the document's details, tags, and the document's id as ``external_id``."""
    data = _data(doc)
    lines = [summary(doc), ""]
    for key in ("recommended_action", "message", "journey", "step", "cart_value",
                "abandon_probability", "abandon_factors", "signals"):
        if data.get(key) not in (None, "", [], {}):
            lines.append(f"{key}: {data[key]}")
    lines.append(f"frictionwatch id: {doc.get('id')}")
    at_risk = data.get("revenue_at_risk", data.get("priority"))
    urgent = isinstance(at_risk, int | float) and at_risk >= 100
    reason = str(data.get("reason") or "alert")
    return {"ticket": {
        "subject": summary(doc)[:150],
        "comment": {"body": "\n".join(lines), "public": False},
        "priority": "high" if urgent else "normal",
        "tags": ["frictionwatch", reason[:80]],
        "external_id": str(doc.get("id")),
    }}
