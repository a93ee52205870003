"""The HTTP collector on the worker's web server, so a site or Segment's webhook destination can
send to frictionwatch directly.

    POST /collect/segment   a Segment event, or a batch {"batch": [...]}
    POST /collect/ga4       a GA4 Measurement Protocol payload
    POST /collect/support   a support-desk (Zendesk-style) ticket webhook
    POST /collect           any of the above, detected from its shape

The body is validated with the same pure ``streams.normalize`` the normalize agent uses, then
its events go straight to their keyed canonical topics (no extra hop through ingest). Answers:
200 with counts when at least one event was accepted (rejected items still go to the
dead-letter topic with their reasons), 400 with the reason when nothing in the body is usable,
413 above ``settings.max_payload_bytes``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import faust
from aiohttp.web_exceptions import HTTPRequestEntityTooLarge

from streams.deadletter import DeadLetter, make_dead_letter
from streams.metrics import Metrics
from streams.normalize import Normalized, normalize
from streams.settings import Settings

__all__ = ["register_collector", "ENDPOINTS"]

#: path -> source format (None: detect from the payload's shape)
ENDPOINTS: dict[str, str | None] = {
    "/collect/segment": "segment",
    "/collect/ga4": "ga4",
    "/collect/support": "support",
    "/collect": None,
}


def register_collector(
    app: faust.App,
    settings: Settings,
    publish: Callable[[Normalized], Awaitable[None]],
    send_dead: Callable[[Sequence[DeadLetter]], Awaitable[None]],
    metrics: Metrics,
) -> None:
    limit = settings.max_payload_bytes

    def make_view(path: str, source: str | None) -> None:
        requests = metrics.collector_requests

        class Collect(faust.web.View):
            async def post(self, request: faust.web.Request) -> faust.web.Response:
                code, body = await handle(request)
                requests.labels(endpoint=path, code=str(code)).inc()
                return self.json(body, status=code)

        async def handle(request: Any) -> tuple[int, dict[str, Any]]:
            length = request.content_length
            if length is not None and length > limit:
                await send_dead([_too_large(length, limit)])
                return 413, {"error": "too_large", "detail": f"{length} bytes > limit {limit}"}
            try:
                raw = await request.read()
            except HTTPRequestEntityTooLarge:  # chunked body above aiohttp's own limit
                await send_dead([_too_large(None, limit)])
                return 413, {"error": "too_large", "detail": f"body over {limit} bytes"}
            if len(raw) > limit:
                await send_dead([_too_large(len(raw), limit)])
                return 413, {"error": "too_large", "detail": f"{len(raw)} bytes > limit {limit}"}
            out = normalize(
                raw,
                source,
                max_bytes=limit,
                max_events=settings.max_events_per_message,
                now=time.time(),
                stage="collector",
            )
            await publish(out)
            accepted = sum(map(len, out.web.values())) + sum(map(len, out.support.values()))
            rejected = [{"reason": d.reason, "detail": d.detail} for d in out.dead]
            if accepted == 0 and rejected:
                first = rejected[0]
                return 400, {"error": first["reason"], "detail": first["detail"],
                             "rejected": rejected}
            return 200, {"accepted": accepted, "rejected": rejected}

        Collect.__name__ = f"Collect_{source or 'any'}"
        app.page(path)(Collect)

    for path, source in ENDPOINTS.items():
        make_view(path, source)


def _too_large(size: int | None, limit: int) -> DeadLetter:
    detail = f"{size} bytes > limit {limit}" if size is not None else f"body over {limit} bytes"
    # The body is not read (or not kept): the record says so rather than holding it.
    return make_dead_letter("too_large", detail, "collector", b"", time.time())

