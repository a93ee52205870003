"""The HTTP collector on the worker's web server, so a site or Segment's webhook destination can
send to frictionwatch directly.

    POST /collect/segment   a Segment event, or a batch {"batch": [...]}
    POST /collect/ga4       a GA4 Measurement Protocol payload
    POST /collect/support   a support-desk (Zendesk-style) ticket webhook
    POST /collect/snowplow  Snowplow enriched events: TSV lines, or their JSON form
    POST /collect/posthog   a PostHog capture body, one event or {"api_key", "batch": [...]}
    POST /collect           any of the above, detected from its shape

Snowplow and PostHog have no credential of their own here: with ``collector_tokens`` set they
need one as ``Authorization: Bearer`` (PostHog's project ``api_key`` is a public token, not a
secret). PostHog bodies are read as plain JSON: posthog-js compresses its own unless
``disable_compression`` is set, so point a PostHog destination or export at the collector.

Each request goes through, in this order: the client's rate limit (429 with ``Retry-After``),
the credentials its request line and headers carry (401, with ``WWW-Authenticate: Basic`` where
Segment's write key is expected; ``streams.access``), the body read in chunks up to
``settings.max_payload_bytes`` (413 as soon as it is passed, the rest unread), a help-desk
signature or Segment body write key when that is how the sender authenticates (403 for a bad or
stale signature). Only then is the body parsed, with the same pure ``streams.normalize`` the
normalize agent uses, and its events go straight to their keyed canonical topics (no extra hop
through ingest). Personal data is redacted there first (``streams.privacy``, settings
``privacy_*``): the raw body itself never reaches a topic, and what dead letters keep of it is
redacted too. Answers: 200 with counts when at least one event was accepted (rejected items
still go to the dead-letter topic with their reasons), 400 with the reason when nothing in the
body is usable. A refused request (401, 403, 429) is counted but neither parsed nor forwarded.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

import faust
import msgspec

from streams.access import Credentials, TokenBuckets, Verdict, check_body, check_headers
from streams.deadletter import DeadLetter, make_dead_letter
from streams.metrics import Metrics
from streams.normalize import Normalized, normalize
from streams.settings import Settings

__all__ = ["register_collector", "credentials", "read_capped", "ENDPOINTS"]

log = logging.getLogger(__name__)

#: Bytes asked of the socket per read while a body is read up to its cap.
CHUNK = 64 * 1024

#: path -> source format (None: detect from the payload's shape)
ENDPOINTS: dict[str, str | None] = {
    "/collect/segment": "segment",
    "/collect/ga4": "ga4",
    "/collect/support": "support",
    "/collect/snowplow": "snowplow",
    "/collect/posthog": "posthog",
    "/collect": None,
}


def credentials(settings: Settings) -> Credentials:
    return Credentials(
        segment_write_keys=tuple(settings.segment_write_keys),
        ga4_api_secrets=tuple(settings.ga4_api_secrets),
        ga4_measurement_ids=tuple(settings.ga4_measurement_ids),
        webhook_secrets=tuple(settings.webhook_secrets),
        webhook_tolerance=settings.webhook_tolerance,
        collector_tokens=tuple(settings.collector_tokens),
    )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere


async def read_capped(content: Any, limit: int) -> bytes | None:
    """The body from an aiohttp ``StreamReader``, or None as soon as it passes ``limit`` bytes
    (chunked bodies included: no length is trusted, at most ``limit + CHUNK`` bytes are held)."""
    parts: list[bytes] = []
    size = 0
    while True:
        chunk = await content.read(CHUNK)
        if not chunk:
            return b"".join(parts)
        size += len(chunk)
        if size > limit:
            return None
        parts.append(chunk)


def register_collector(
    app: faust.App,
    settings: Settings,
    publish: Callable[[Normalized], Awaitable[None]],
    send_dead: Callable[[Sequence[DeadLetter]], Awaitable[None]],
    metrics: Metrics,
) -> None:
    limit = settings.max_payload_bytes
    creds = credentials(settings)
    buckets = TokenBuckets(settings.rate_limit, settings.rate_limit_burst,
                           settings.rate_limit_clients) if settings.rate_limit > 0 else None
    open_paths = [p for p, source in ENDPOINTS.items() if not creds.required(source)]
    if open_paths and not _loopback(settings.web_host):
        log.warning("The collector listens on %s:%s with no credential for %s: anyone who "
                    "reaches it can send events. Set FRICTIONWATCH_SEGMENT_WRITE_KEYS, "
                    "_GA4_API_SECRETS, _WEBHOOK_SECRETS or _COLLECTOR_TOKENS.",
                    settings.web_host, settings.web_port, ", ".join(open_paths))

    def make_view(path: str, source: str | None) -> None:
        requests = metrics.collector_requests

        class Collect(faust.web.View):
            async def post(self, request: faust.web.Request) -> faust.web.Response:
                code, body, headers = await handle(request)
                requests.labels(endpoint=path, code=str(code)).inc()
                response = self.json(body, status=code, headers=headers)
                if code == 413:
                    # The rest of the body is not wanted: close rather than keep the
                    # connection alive for it.
                    cast(Any, response).force_close()
                return response

        async def handle(request: Any) -> tuple[int, dict[str, Any], dict[str, str] | None]:
            if buckets is not None:
                wait = buckets.take(request.remote or "?", time.monotonic())
                if wait > 0:
                    retry = str(max(1, int(wait + 0.999)))
                    return 429, {"error": "rate_limited", "detail": f"retry in {retry} s"}, \
                        {"Retry-After": retry}
            verdict = check_headers(creds, source, request.headers, request.query)
            if not verdict.ok and not verdict.need_body:
                return _refused(verdict)
            # A sender not known yet (its credential is in the body) gets no dead letter for an
            # oversized body: writing one per request would let anyone fill the topic.
            known = verdict.ok
            length = request.content_length
            if length is not None and length > limit:
                if known:
                    await send_dead([_too_large(length, limit)])
                return 413, {"error": "too_large", "detail": f"{length} bytes > limit {limit}"}, \
                    None
            raw = await read_capped(request.content, limit)
            if raw is None:
                if known:
                    await send_dead([_too_large(None, limit)])
                return 413, {"error": "too_large", "detail": f"body over {limit} bytes"}, None
            if verdict.need_body:
                verdict = check_body(creds, source, request.headers, raw, time.time(),
                                     _write_key(raw))
                if not verdict.ok:
                    return _refused(verdict)
            out = normalize(
                raw,
                source,
                max_bytes=limit,
                max_events=settings.max_events_per_message,
                now=time.time(),
                stage="collector",
                max_age=settings.max_event_age,
                max_lead=settings.max_event_lead,
                privacy=settings.privacy,
            )
            await publish(out)
            accepted = sum(map(len, out.web.values())) + sum(map(len, out.support.values()))
            rejected = [{"reason": d.reason, "detail": d.detail} for d in out.dead]
            if accepted == 0 and rejected:
                first = rejected[0]
                return 400, {"error": first["reason"], "detail": first["detail"],
                             "rejected": rejected}, None
            return 200, {"accepted": accepted, "rejected": rejected}, None

        Collect.__name__ = f"Collect_{source or 'any'}"
        app.page(path)(Collect)

    for path, source in ENDPOINTS.items():
        make_view(path, source)


class _WriteKey(msgspec.Struct):
    writeKey: str | None = None  # noqa: N815 - Segment's field name


_write_key_decoder = msgspec.json.Decoder(_WriteKey)


def _write_key(raw: bytes) -> str | None:
    """Segment's ``writeKey`` at the top of a JSON body (msgspec skips the rest unbuilt)."""
    try:
        return _write_key_decoder.decode(raw).writeKey
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return None


def _refused(verdict: Verdict) -> tuple[int, dict[str, Any], dict[str, str] | None]:
    error = "forbidden" if verdict.status == 403 else "unauthorized"
    headers = {"WWW-Authenticate": verdict.challenge} if verdict.challenge else None
    return verdict.status, {"error": error, "detail": verdict.reason}, headers


def _too_large(size: int | None, limit: int) -> DeadLetter:
    detail = f"{size} bytes > limit {limit}" if size is not None else f"body over {limit} bytes"
    # The body is not read (or not kept): the record says so rather than holding it.
    return make_dead_letter("too_large", detail, "collector", b"", time.time())

