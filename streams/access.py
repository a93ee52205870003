"""Who may post to the collector, and how often: the pure checks behind ``streams.collector``.

Each source keeps its own convention, so senders configure nothing new:

- Segment (HTTP Tracking API): the write key as the HTTP Basic user name with an empty
  password, or as ``writeKey`` in the JSON body ("writeKey authentication");
- GA4 Measurement Protocol: ``api_secret`` (and ``measurement_id``) query parameters;
- help-desk webhooks: Zendesk's signature, ``base64(HMAC-SHA256(secret, timestamp + body))`` in
  ``X-Zendesk-Webhook-Signature`` with the timestamp in ``X-Zendesk-Webhook-Signature-Timestamp``;
- ``/collect`` (any format) and canonical events: any credential above, or
  ``Authorization: Bearer <token>`` with a configured collector token.

No I/O here: the collector passes headers, query and body in; ``Verdict`` says what to answer.
Secrets are compared in constant time (``hmac.compare_digest``).

>>> keys = Credentials(segment_write_keys=("k1",))
>>> check_headers(keys, "segment", {"Authorization": basic("k1")}, {}).ok
True
>>> v = check_headers(keys, "segment", {"Authorization": basic("nope")}, {})
>>> v.status, v.challenge
(401, 'Basic realm="frictionwatch"')
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

__all__ = [
    "Credentials",
    "Verdict",
    "TokenBuckets",
    "basic",
    "check_headers",
    "check_body",
    "zendesk_signature",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
]

SIGNATURE_HEADER = "X-Zendesk-Webhook-Signature"
TIMESTAMP_HEADER = "X-Zendesk-Webhook-Signature-Timestamp"
CHALLENGE = 'Basic realm="frictionwatch"'


@dataclass(frozen=True)
class Credentials:
    """What the collector accepts; an empty tuple leaves its endpoints open."""

    segment_write_keys: tuple[str, ...] = ()
    ga4_api_secrets: tuple[str, ...] = ()
    #: Empty: any measurement id (the api_secret alone decides).
    ga4_measurement_ids: tuple[str, ...] = ()
    webhook_secrets: tuple[str, ...] = ()
    #: Largest distance (seconds) between a webhook's signature timestamp and now.
    webhook_tolerance: float = 300.0
    collector_tokens: tuple[str, ...] = ()

    def required(self, source: str | None) -> bool:
        """Whether an endpoint for ``source`` (None: ``/collect``) needs a credential."""
        if self.collector_tokens:
            return True
        if source is None:
            return bool(self.segment_write_keys or self.ga4_api_secrets or self.webhook_secrets)
        return bool(self._own(source))

    def _own(self, source: str) -> tuple[str, ...]:
        return {"segment": self.segment_write_keys, "ga4": self.ga4_api_secrets,
                "support": self.webhook_secrets}.get(source, ())


@dataclass(frozen=True)
class Verdict:
    """``ok``: go on; else answer ``status`` (401 no or wrong credential, 403 bad signature)
    with ``reason``, and ``challenge`` as ``WWW-Authenticate`` when set. ``need_body``: the
    headers did not decide; ``check_body`` must (a signature, or Segment's body write key)."""

    ok: bool
    status: int = 200
    reason: str = ""
    challenge: str | None = None
    need_body: bool = False


OK = Verdict(True)


def basic(user: str, password: str = "") -> str:
    """An ``Authorization`` header value for HTTP Basic (what Segment's libraries send).

    >>> basic("abc123")
    'Basic YWJjMTIzOg=='
    """
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _basic_user(header: str) -> str | None:
    """The user name of an HTTP Basic ``Authorization`` value (Segment's write key), if any.

    >>> _basic_user("Basic YWJjMTIzOg=="), _basic_user("Basic !!"), _basic_user("Bearer x")
    ('abc123', None, None)
    """
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    # Segment's docs: the key, a colon, an empty password; without the colon still works.
    return decoded.partition(":")[0]


def _bearer(header: str) -> str | None:
    scheme, _, value = header.strip().partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _match(candidate: str | None, accepted: Iterable[str]) -> bool:
    """Constant-time membership: every accepted value is compared, whatever matched first."""
    if candidate is None:
        return False
    given = candidate.encode()
    found = False
    for secret in accepted:
        found |= hmac.compare_digest(given, secret.encode())
    return found


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:  # plain dicts (tests) are case-sensitive; aiohttp's are not
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value


def check_headers(creds: Credentials, source: str | None, headers: Mapping[str, str],
                  query: Mapping[str, str]) -> Verdict:
    """What the request line and headers decide, before any of the body is read."""
    if not creds.required(source):
        return OK
    auth = _header(headers, "Authorization") or ""
    if _match(_bearer(auth), creds.collector_tokens):
        return OK
    if source in (None, "segment") and _match(_basic_user(auth), creds.segment_write_keys):
        return OK
    if source in (None, "ga4") and _match(query.get("api_secret"), creds.ga4_api_secrets):
        mid = query.get("measurement_id")
        if not creds.ga4_measurement_ids or _match(mid, creds.ga4_measurement_ids):
            return OK
        return Verdict(False, 401, "unknown measurement_id")
    if source in (None, "support") and creds.webhook_secrets \
            and _header(headers, SIGNATURE_HEADER) is not None:
        return Verdict(False, need_body=True)
    if source in (None, "segment") and creds.segment_write_keys and not auth:
        return Verdict(False, need_body=True)  # perhaps a writeKey in the body
    return _refusal(creds, source, auth)


def _refusal(creds: Credentials, source: str | None, auth: str) -> Verdict:
    if source == "ga4":
        return Verdict(False, 401, "missing or wrong api_secret")
    if source == "support":
        return Verdict(False, 401, f"missing {SIGNATURE_HEADER}")
    reason = "wrong credential" if auth else "missing credential"
    challenge = CHALLENGE if source == "segment" or creds.segment_write_keys else None
    return Verdict(False, 401, reason, challenge)


def check_body(creds: Credentials, source: str | None, headers: Mapping[str, str],
               body: bytes, now: float, write_key: str | None = None) -> Verdict:
    """The rest of the decision once the (size-capped) body is read: a help-desk signature,
    or Segment's ``writeKey`` (``write_key``: the body's top-level ``writeKey``, which the
    caller reads with a JSON decoder only when asked to)."""
    signature = _header(headers, SIGNATURE_HEADER)
    if source in (None, "support") and signature is not None and creds.webhook_secrets:
        stamp = _header(headers, TIMESTAMP_HEADER)
        if stamp is None:
            return Verdict(False, 403, f"missing {TIMESTAMP_HEADER}")
        at = _timestamp(stamp)
        if at is None or not abs(now - at) <= creds.webhook_tolerance:
            return Verdict(False, 403, "stale or unreadable signature timestamp")
        given = signature.strip().encode()
        found = False
        for secret in creds.webhook_secrets:
            found |= hmac.compare_digest(given, zendesk_signature(secret, stamp, body).encode())
        return OK if found else Verdict(False, 403, "bad signature")
    if source in (None, "segment") and _match(write_key, creds.segment_write_keys):
        return OK
    return _refusal(creds, source, "")


def zendesk_signature(secret: str, timestamp: str, body: bytes) -> str:
    """Zendesk's webhook signature: base64(HMAC-SHA256(secret, timestamp + body)).

    >>> zendesk_signature("s", "2026-01-01T00:00:00Z", b"{}")
    'cVACOzfUFo6fP5f+8ho5NxPtRMzHe4U74s1duO8v8qk='
    """
    digest = hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _timestamp(text: str) -> float | None:
    """Seconds since the epoch of an ISO 8601 time (Zendesk's) or of a number of seconds.

    >>> _timestamp("2026-01-01T00:00:00Z"), _timestamp("1767225600"), _timestamp("soon")
    (1767225600.0, 1767225600.0, None)
    """
    text = text.strip()
    try:
        value = float(text)
        return value if math.isfinite(value) else None
    except ValueError:
        pass
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        return None
    if at.tzinfo is None:
        return None  # a signature time without a zone could be anything
    try:
        return at.timestamp()
    except (OverflowError, ValueError):
        return None


class TokenBuckets:
    """A token bucket per client: ``rate`` requests per second on average, bursts of up to
    ``burst``; at most ``max_clients`` buckets, the least recently seen evicted first (an
    evicted client starts again with a full bucket, which errs on the side of serving it).

    Hand-written (about 30 lines) because the libraries at hand do not fit: ``token-bucket``
    keeps an unbounded table of keys, and ``throttled-py``'s bounded in-memory store refills
    in whole seconds.

    >>> b = TokenBuckets(rate=1.0, burst=2, max_clients=10)
    >>> b.take("a", now=0.0), b.take("a", now=0.0), b.take("a", now=0.0)
    (0.0, 0.0, 1.0)
    >>> b.take("a", now=1.0)
    0.0
    """

    def __init__(self, rate: float, burst: float, max_clients: int) -> None:
        if not rate > 0 or not burst >= 1 or max_clients < 1:
            raise ValueError("rate > 0, burst >= 1 and max_clients >= 1 are needed")
        self.rate, self.burst, self.max_clients = rate, float(burst), max_clients
        #: client -> (tokens, time of that count)
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, client: str, now: float) -> float:
        """Spend one token of ``client``'s: 0.0 when it may go on, else the seconds until a
        token is there (nothing is spent then)."""
        buckets = self._buckets
        tokens, at = buckets.pop(client, (self.burst, now))
        tokens = min(self.burst, tokens + max(0.0, now - at) * self.rate)
        if tokens >= 1.0:
            buckets[client] = (tokens - 1.0, now)
            wait = 0.0
        else:
            buckets[client] = (tokens, now)
            wait = (1.0 - tokens) / self.rate
        if len(buckets) > self.max_clients:
            buckets.popitem(last=False)
        return wait
