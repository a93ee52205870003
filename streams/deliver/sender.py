"""The destinations' HTTP requests, and sending one with retries (aiohttp).

Each destination turns a CloudEvents document into one request (``Destination.request``);
``send`` makes it, retrying what may succeed later (``policy.classify``) with exponential
backoff and full jitter, honouring ``Retry-After``, and stopping early when a chat trigger's
expiry would pass before the next try.
"""

from __future__ import annotations

import asyncio
import base64
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import msgspec

from streams.deliver import policy

__all__ = ["Destination", "Request", "Result", "intercom", "send", "slack", "webhook", "zendesk"]


@dataclass(frozen=True, slots=True)
class Request:
    url: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Result:
    #: One of ``policy.OUTCOMES``.
    outcome: str
    attempts: int
    status: int | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Destination:
    """A tool deliveries go to: its name (a ``policy.DESTINATIONS`` label), the logical
    topics it takes (``alerts``, ``chat_triggers``) and how a document becomes a request
    (None: nothing to send for this document, e.g. no recipient)."""

    name: str
    topics: frozenset[str]
    build: Callable[[Mapping[str, Any], float], Request | None]

    def request(self, doc: Mapping[str, Any], now: float) -> Request | None:
        return self.build(doc, now)


def _json(payload: object) -> bytes:
    return msgspec.json.encode(payload)


def slack(url: str, topics: frozenset[str]) -> Destination:
    """A Slack incoming webhook (``POST`` JSON ``{"text", "blocks"}``). Slack offers no
    idempotency key for them: duplicates are kept out on our side only."""
    def build(doc: Mapping[str, Any], now: float) -> Request:
        return Request(url, _json(policy.slack_message(doc)),
                       {"Content-Type": "application/json"})
    return Destination("slack", topics, build)


def intercom(base_url: str, token: str, admin_id: str, version: str,
             topics: frozenset[str]) -> Destination:
    """Intercom's ``POST /messages`` (an admin-initiated in-app message), bearer token and
    ``Intercom-Version``. Intercom documents no idempotency key for it; the document's id
    still travels as ``Idempotency-Key`` (ignored there, useful to a proxy) and duplicates
    are kept out on our side."""
    url = base_url.rstrip("/") + "/messages"

    def build(doc: Mapping[str, Any], now: float) -> Request | None:
        body = policy.intercom_message(doc, admin_id)
        if body is None:
            return None
        return Request(url, _json(body), {
            "Content-Type": "application/json", "Accept": "application/json",
            "Authorization": f"Bearer {token}", "Intercom-Version": version,
            "Idempotency-Key": str(doc.get("id")),
        })
    return Destination("intercom", topics, build)


def zendesk(base_url: str, email: str, token: str, topics: frozenset[str]) -> Destination:
    """Zendesk's ``POST /api/v2/tickets.json`` with API-token basic auth
    (``{email}/token:{token}``) and its ``Idempotency-Key`` header: a retry with the same key
    creates no second ticket."""
    url = base_url.rstrip("/") + "/api/v2/tickets.json"
    auth = base64.b64encode(f"{email}/token:{token}".encode()).decode("ascii")

    def build(doc: Mapping[str, Any], now: float) -> Request:
        return Request(url, _json(policy.zendesk_ticket(doc)), {
            "Content-Type": "application/json", "Authorization": f"Basic {auth}",
            "Idempotency-Key": str(doc.get("id")),
        })
    return Destination("zendesk", topics, build)


def webhook(url: str, secret: str, topics: frozenset[str]) -> Destination:
    """Any HTTPS endpoint: the CloudEvents document as it is (structured mode), signed:
    ``X-Frictionwatch-Timestamp`` (Unix seconds) and ``X-Frictionwatch-Signature:
    sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`` (``policy.sign``), and the id as
    ``Idempotency-Key``."""
    def build(doc: Mapping[str, Any], now: float) -> Request:
        body = _json(doc)
        stamp = str(int(now))
        headers = {"Content-Type": "application/cloudevents+json",
                   "Idempotency-Key": str(doc.get("id")),
                   "X-Frictionwatch-Timestamp": stamp}
        if secret:
            headers["X-Frictionwatch-Signature"] = policy.sign(secret, stamp, body)
        return Request(url, body, headers)
    return Destination("webhook", topics, build)


async def send(
    session: aiohttp.ClientSession,
    request: Request,
    backoff: policy.Backoff,
    rng: random.Random,
    *,
    timeout: float = 10.0,
    expires_at: float | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> Result:
    """POST ``request`` until it is accepted, refused for good, or out of attempts (or,
    with ``expires_at``, until waiting longer would pass the expiry)."""
    status: int | None = None
    detail = ""
    for attempt in range(1, backoff.attempts + 1):
        retry_after: float | None = None
        try:
            async with session.post(request.url, data=request.body, headers=request.headers,
                                    timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                status = resp.status
                text = (await resp.read())[:300].decode(errors="replace")
                kind = policy.classify(status)
                if kind == "ok":
                    return Result("delivered", attempt, status)
                detail = f"HTTP {status}: {text}"
                if kind == "permanent":
                    return Result("rejected", attempt, status, detail)
                retry_after = policy.retry_after_seconds(dict(resp.headers), clock())
        except TimeoutError:
            status, detail = None, f"no answer in {timeout} s"
        except aiohttp.ClientError as exc:
            status, detail = None, f"{type(exc).__name__}: {exc}"[:300]
        if attempt == backoff.attempts:
            break
        wait = backoff.delay(attempt, rng, retry_after)
        if expires_at is not None and clock() + wait > expires_at:
            return Result("expired", attempt, status, detail)
        await sleep(wait)
    return Result("exhausted", backoff.attempts, status, detail)
