"""Feedback on alerts: ``POST /feedback`` on the worker's web server, and the agent that turns
each verdict on the feedback topic into a label and a count.

    POST /feedback  {"alert_id": "...", "session_id": "...", "verdict": "useful" | "false_alarm",
                     "reason": "payment_declined", "by": "ana", "note": "..."}

The endpoint validates the document (``models.feedback.decode_feedback``) and writes it to the
feedback topic, keyed by session id: 202 when accepted, 400 with the reason otherwise (and a
dead letter, as for any bad input). Other tools may write to the topic directly; the agent
validates again, sends the label on the labels topic and counts the verdict in
``frictionwatch_alert_feedback_total{reason,verdict}``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import faust
import msgspec

from models.feedback import FeedbackError, FeedbackTally, decode_feedback, feedback_label
from streams.access import Credentials, check_headers
from streams.deadletter import make_dead_letter
from streams.guard import Guard
from streams.metrics import Metrics

__all__ = ["MAX_FEEDBACK_BYTES", "register_feedback"]

#: Largest feedback document accepted (a note of 2,000 characters fits well).
MAX_FEEDBACK_BYTES = 16 * 1024


def register_feedback(
    app: faust.App,
    feedback_topic: Any,
    labels_topic: Any,
    guard: Guard,
    metrics: Metrics,
    tally: FeedbackTally,
    on_verdict: Callable[[], None] | None = None,
    tokens: tuple[str, ...] = (),
) -> None:
    """The endpoint and the agent. Verdicts are counted in ``tally`` (its ``known`` reasons
    by name), then ``on_verdict`` runs (the worker re-weights its alert policy). With
    ``tokens`` (the collector's bearer tokens) the endpoint asks for one of them: verdicts
    re-weigh the alert policy, so they must not come from just anyone."""
    creds = Credentials(collector_tokens=tokens)
    requests = metrics.collector_requests
    send_dead = guard.dead

    class Feedback(faust.web.View):
        async def post(self, request: faust.web.Request) -> faust.web.Response:
            code, body = await handle(request)
            requests.labels(endpoint="/feedback", code=str(code)).inc()
            return self.json(body, status=code)

    async def handle(request: Any) -> tuple[int, dict[str, Any]]:
        verdict = check_headers(creds, "feedback", request.headers, request.query)
        if not verdict.ok:
            return 401, {"error": "unauthorized", "detail": "missing or wrong bearer token"}
        raw = await request.content.read(MAX_FEEDBACK_BYTES + 1)
        if len(raw) > MAX_FEEDBACK_BYTES:
            await send_dead([make_dead_letter("too_large", f"over {MAX_FEEDBACK_BYTES} bytes",
                                              "feedback", b"", time.time())])
            return 413, {"error": "too_large", "detail": f"over {MAX_FEEDBACK_BYTES} bytes"}
        try:
            fb = decode_feedback(raw)
        except FeedbackError as exc:
            await send_dead([make_dead_letter(exc.reason, exc.detail,  # type: ignore[arg-type]
                                              "feedback", raw, time.time())])
            return 400, {"error": exc.reason, "detail": exc.detail}
        if not await guard.send(feedback_topic, fb.session_id.encode(), raw, stage="feedback",
                                what="feedback"):
            return 503, {"error": "not_sent", "detail": "the feedback could not be sent"}
        return 202, {"accepted": True, "alert_id": fb.alert_id}

    app.page("/feedback")(Feedback)

    @app.agent(feedback_topic, name="feedback")
    async def feedback_agent(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            try:
                fb = decode_feedback(event.value or b"")
            except FeedbackError as exc:
                await send_dead([guard.letter(exc.reason, exc.detail, "feedback", event.value,
                                              event)])
                continue
            try:
                label = feedback_label(fb, now=time.time())
                await guard.send(labels_topic, fb.session_id.encode(),
                                 msgspec.json.encode(label), stage="feedback", what="label",
                                 at=event)
                metrics.alert_feedback.labels(reason=tally.add(fb), verdict=fb.verdict).inc()
                if on_verdict is not None:
                    on_verdict()
            except Exception as exc:  # noqa: BLE001 - one verdict must not end the agent
                guard.errors.exception("agent:feedback", "a verdict failed")
                await send_dead([guard.letter("processing_error", f"{type(exc).__name__}: "
                                              f"{exc}", "feedback", event.value, event)])
