"""Delivery against a local fake of each API: success, refusals, 429 with Retry-After, 5xx,
timeouts, expiry and duplicates, each path asserted (``streams.deliver``)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry

from detectors.alerting import Alerting
from detectors.base import Signal
from detectors.session import SessionState
from streams.deliver import policy, sender
from streams.deliver.journal import Journal
from streams.deliver.runner import Deliverer, destinations_from
from streams.metrics import DeliveryMetrics, Metrics
from streams.settings import Settings

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def trigger(at: float, customer: str | None = "c1") -> dict[str, Any]:
    """A chat trigger as the worker writes it: a simulated payment blocker at ``at``."""
    state = SessionState(session_id="s1", customer_id=customer, cart_value=80.0,
                         checkout_step=3, first_time=at - 60)
    sig = Signal(type="payment_declined", session_id="s1", time=at, start=at - 5, step=3,
                 evidence={"reasons": ["do_not_honor", "do_not_honor"]})
    _, chats = Alerting().on_signals(state, [sig])
    return chats[0]


def alert(at: float) -> dict[str, Any]:
    state = SessionState(session_id="s2", customer_id="c2", cart_value=500.0, checkout_step=3,
                         first_time=at - 60)
    sig = Signal(type="payment_declined", session_id="s2", time=at, start=at - 5, step=3,
                 evidence={"reasons": ["do_not_honor"]})
    alerts, _ = Alerting().on_signals(state, [sig])
    return alerts[0]


# --- the pure policy ---------------------------------------------------------------------


def test_status_classes() -> None:
    assert [policy.classify(s) for s in (200, 201, 204)] == ["ok"] * 3
    assert [policy.classify(s) for s in (408, 409, 429, 500, 502, 503, 504)] == ["retry"] * 7
    assert [policy.classify(s) for s in (400, 401, 403, 404, 410, 413, 422)] == ["permanent"] * 7


def test_retry_after_seconds_date_and_intercom_reset() -> None:
    assert policy.retry_after_seconds({"retry-after": " 12 "}, NOW) == 12.0
    date = format_datetime(datetime.fromtimestamp(NOW + 30, UTC), usegmt=True)
    assert policy.retry_after_seconds({"Retry-After": date}, NOW) == 30.0
    assert policy.retry_after_seconds({"Retry-After": date}, NOW + 100) == 0.0  # past: now
    assert policy.retry_after_seconds({"X-RateLimit-Reset": str(int(NOW) + 9)}, NOW) == 9.0
    assert policy.retry_after_seconds({"Retry-After": "later"}, NOW) is None
    assert policy.retry_after_seconds({}, NOW) is None


def test_backoff_grows_with_full_jitter_and_honours_retry_after() -> None:
    b = policy.Backoff(base=1.0, cap=10.0, attempts=6, max_retry_after=60.0)
    rng = random.Random(7)
    draws = {n: [b.delay(n, rng) for _ in range(2000)] for n in (1, 2, 3, 6)}
    assert max(draws[1]) <= 1.0 and max(draws[2]) <= 2.0 and max(draws[3]) <= 4.0
    assert max(draws[6]) <= 10.0 < 2 ** 5  # capped
    assert 0.4 < sum(draws[1]) / 2000 < 0.6  # uniform on [0, 1]
    assert [b.delay(1, random.Random(3)) for _ in range(2)] == [b.delay(1, random.Random(3))] * 2
    assert b.delay(1, rng, retry_after=20.0) >= 20.0
    assert b.delay(1, rng, retry_after=3600.0) == 60.0  # an absurd ask is cut
    with pytest.raises(ValueError):
        policy.Backoff(base=0.0)


def test_expiry_of_a_real_trigger() -> None:
    doc = trigger(NOW)
    ttl = Alerting().chat_ttl
    assert not policy.expired(doc, NOW + ttl - 1)
    assert policy.expired(doc, NOW + ttl + 1)
    assert policy.expires_at(doc) == NOW + ttl
    assert not policy.expired(alert(NOW), NOW + 10 ** 9)  # alerts carry no expiry


def test_signature_verifies_with_the_documented_recipe() -> None:
    body = b'{"id":"x"}'
    header = policy.sign("k", "1700000000", body)
    expected = hmac.new(b"k", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(header, "sha256=" + expected)
    assert policy.sign("k", "1700000001", body) != header  # the timestamp is signed


def test_recent_ids_are_bounded() -> None:
    r = policy.RecentIds(100)
    for i in range(1000):
        r.add(str(i))
    assert len(r) == 100 and "999" in r and "899" not in r


def test_journal_survives_a_restart_and_stays_bounded(tmp_path: Path) -> None:
    path = tmp_path / "delivered.log"
    j = Journal(path, capacity=10)
    for i in range(35):
        j.add(f"intercom:{i}")
    assert len(path.read_text().splitlines()) <= 20
    again = Journal(path, capacity=10)
    assert "intercom:34" in again and "intercom:25" in again and "intercom:5" not in again


def test_messages_per_tool() -> None:
    doc = trigger(NOW)
    slack = policy.slack_message(doc)
    assert set(slack) == {"text", "blocks"} and "payment_declined" in slack["text"]
    assert doc["id"] in slack["blocks"][-1]["elements"][0]["text"]
    msg = policy.intercom_message(doc, "42")
    assert msg is not None
    assert msg["message_type"] == "inapp" and msg["from"] == {"type": "admin", "id": "42"}
    assert msg["to"] == {"type": "user", "user_id": doc["data"]["customer"]}
    assert msg["body"] == doc["data"]["message"]
    assert policy.intercom_message(trigger(NOW, customer=None), "42") is None
    ticket = policy.zendesk_ticket(alert(NOW))["ticket"]
    assert ticket["external_id"] == alert(NOW)["id"] and ticket["priority"] == "high"
    assert "frictionwatch" in ticket["tags"] and ticket["comment"]["public"] is False


# --- a fake API ------------------------------------------------------------------------


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"{}"
    delay: float = 0.0


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: bytes


class FakeApi:
    """Answers each request with the next scripted reply (the last one repeats)."""

    def __init__(self, replies: list[Reply]) -> None:
        self.replies = replies
        self.seen: list[Seen] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append(Seen(request.path, dict(request.headers), await request.read()))
        reply = self.replies[min(len(self.seen), len(self.replies)) - 1]
        if reply.delay:
            await asyncio.sleep(reply.delay)
        return web.Response(status=reply.status, headers=reply.headers, body=reply.body,
                            content_type="application/json")


def with_api(replies: list[Reply],
             body: Callable[[str, FakeApi, aiohttp.ClientSession], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        api = FakeApi(replies)
        app = web.Application()
        app.router.add_route("POST", "/{tail:.*}", api.handle)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        try:
            async with aiohttp.ClientSession() as session:
                return await body(str(server.make_url("")).rstrip("/"), api, session)
        finally:
            await server.close()
    return asyncio.run(main())


class Sleeps:
    """Records the waits instead of sleeping them."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


FAST = policy.Backoff(base=0.01, cap=0.05, attempts=4)
ALL = frozenset({"alerts", "chat_triggers"})


def send_to(replies: list[Reply], make: Callable[[str], sender.Destination],
            doc: dict[str, Any], **kw: Any) -> tuple[sender.Result, list[Seen], list[float]]:
    sleeps = Sleeps()
    backoff = kw.pop("backoff", FAST)

    async def body(url: str, api: FakeApi,
                   session: aiohttp.ClientSession) -> tuple[sender.Result, list[Seen]]:
        req = make(url).request(doc, NOW)
        assert req is not None
        res = await sender.send(session, req, backoff, random.Random(1), sleep=sleeps,
                                clock=lambda: NOW, **kw)
        return res, api.seen
    res, seen = with_api(replies, body)
    return res, seen, sleeps.waits


def intercom(url: str) -> sender.Destination:
    return sender.intercom(url, "tok", "42", "2.11", ALL)


def test_intercom_success_sends_the_documented_request() -> None:
    doc = trigger(NOW)
    res, seen, waits = send_to([Reply(200, body=b'{"type":"user_message","id":"1"}')],
                               intercom, doc)
    assert (res.outcome, res.attempts, res.status) == ("delivered", 1, 200) and waits == []
    (req,) = seen
    assert req.path == "/messages"
    assert req.headers["Authorization"] == "Bearer tok"
    assert req.headers["Intercom-Version"] == "2.11"
    assert req.headers["Idempotency-Key"] == doc["id"]
    body = msgspec.json.decode(req.body)
    assert body["message_type"] == "inapp" and body["from"] == {"type": "admin", "id": "42"}


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_4xx_is_permanent_after_one_attempt(status: int) -> None:
    res, seen, waits = send_to([Reply(status, body=b'{"errors":[{"code":"x"}]}')], intercom,
                               trigger(NOW))
    assert (res.outcome, res.attempts, res.status) == ("rejected", 1, status)
    assert len(seen) == 1 and waits == [] and f"HTTP {status}" in res.detail


@pytest.mark.parametrize("status", [408, 409, 500, 502, 503])
def test_retryable_statuses_are_retried_until_success(status: int) -> None:
    res, seen, waits = send_to([Reply(status), Reply(status), Reply(201)], intercom,
                               trigger(NOW))
    assert (res.outcome, res.attempts) == ("delivered", 3) and len(seen) == 3
    assert len(waits) == 2 and all(0 <= w <= FAST.cap for w in waits)
    # The same idempotency key on every attempt.
    assert len({s.headers["Idempotency-Key"] for s in seen}) == 1


def test_5xx_for_ever_is_exhausted_after_the_attempts() -> None:
    res, seen, waits = send_to([Reply(503)], intercom, trigger(NOW))
    assert (res.outcome, res.attempts, res.status) == ("exhausted", 4, 503)
    assert len(seen) == 4 and len(waits) == 3


def test_429_retry_after_seconds_is_honoured() -> None:
    res, seen, waits = send_to([Reply(429, {"Retry-After": "7"}), Reply(200)],
                               lambda u: sender.slack(u + "/hook", ALL), alert(NOW))
    assert res.outcome == "delivered" and res.attempts == 2
    assert waits[0] >= 7.0


def test_429_retry_after_http_date_is_honoured() -> None:
    date = format_datetime(datetime.fromtimestamp(NOW + 15, UTC), usegmt=True)
    res, _, waits = send_to([Reply(429, {"Retry-After": date}), Reply(200)],
                            lambda u: sender.zendesk(u, "a@b.c", "t", ALL), alert(NOW))
    assert res.outcome == "delivered" and 15.0 <= waits[0] < 15.1


def test_intercom_429_rate_limit_reset_is_honoured() -> None:
    reset = {"X-RateLimit-Limit": "167", "X-RateLimit-Remaining": "0",
             "X-RateLimit-Reset": str(int(NOW) + 10)}
    res, _, waits = send_to([Reply(429, reset), Reply(200)], intercom, trigger(NOW))
    assert res.outcome == "delivered" and waits[0] >= 10.0


def test_timeouts_are_retried() -> None:
    res, seen, waits = send_to([Reply(200, delay=1.0), Reply(200)], intercom, trigger(NOW),
                               timeout=0.2)
    assert (res.outcome, res.attempts) == ("delivered", 2) and len(seen) == 2


def test_timeouts_for_ever_are_exhausted() -> None:
    res, _, _ = send_to([Reply(200, delay=1.0)], intercom, trigger(NOW), timeout=0.1,
                        backoff=policy.Backoff(base=0.01, cap=0.01, attempts=2))
    assert res.outcome == "exhausted" and res.status is None and "no answer" in res.detail


def test_a_wait_past_the_expiry_ends_the_trigger() -> None:
    doc = trigger(NOW)
    res, seen, waits = send_to([Reply(429, {"Retry-After": "3600"})], intercom, doc,
                               expires_at=policy.expires_at(doc))
    assert res.outcome == "expired" and len(seen) == 1 and waits == []


def test_zendesk_request_has_basic_token_auth_and_idempotency_key() -> None:
    doc = alert(NOW)
    res, seen, _ = send_to([Reply(201, body=b'{"ticket":{"id":35436}}')],
                           lambda u: sender.zendesk(u, "agent@shop.example", "zt", ALL), doc)
    assert res.outcome == "delivered"
    (req,) = seen
    assert req.path == "/api/v2/tickets.json"
    user, _, secret = base64.b64decode(req.headers["Authorization"].split()[1]).decode() \
        .partition(":")
    assert (user, secret) == ("agent@shop.example/token", "zt")
    assert req.headers["Idempotency-Key"] == doc["id"]
    assert msgspec.json.decode(req.body)["ticket"]["external_id"] == doc["id"]


def test_slack_body_is_text_and_blocks() -> None:
    _, seen, _ = send_to([Reply(200, body=b"ok")],
                         lambda u: sender.slack(u + "/services/T/B/X", ALL), alert(NOW))
    assert seen[0].path == "/services/T/B/X"
    assert set(msgspec.json.decode(seen[0].body)) == {"text", "blocks"}


def test_webhook_is_signed_over_timestamp_and_body() -> None:
    doc = alert(NOW)
    _, seen, _ = send_to([Reply(204, body=b"")],
                         lambda u: sender.webhook(u + "/fw", "whsec", ALL), doc)
    (req,) = seen
    stamp = req.headers["X-Frictionwatch-Timestamp"]
    assert stamp == str(int(NOW))
    mac = hmac.new(b"whsec", stamp.encode() + b"." + req.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(req.headers["X-Frictionwatch-Signature"], "sha256=" + mac)
    assert req.headers["Idempotency-Key"] == doc["id"]
    assert req.headers["Content-Type"].startswith("application/cloudevents+json")
    assert msgspec.json.decode(req.body) == doc  # the document itself


# --- the deliverer without Kafka ---------------------------------------------------------


def deliverer(tmp_path: Path, **settings: Any) -> tuple[Deliverer, CollectorRegistry]:
    registry = CollectorRegistry()
    s = Settings(_env_file=None, data_dir=tmp_path, deliver_attempts=2,  # type: ignore[call-arg]
                 deliver_backoff_base=0.01, deliver_backoff_max=0.01, **settings)
    d = Deliverer(s, "unused:9092", destinations_from(s), Metrics(registry),
                  DeliveryMetrics(registry), rng=random.Random(1))
    return d, registry


def run_deliverer(d: Deliverer, replies: list[Reply], calls: list[tuple[bytes, str]],
                  **settings_with_url: str) -> tuple[list[Any], list[Seen]]:
    """``d.deliver`` each call, its destinations from the settings given ("{url}": the fake
    API's); the results and what the API saw."""
    async def body(url: str, api: FakeApi,
                   session: aiohttp.ClientSession) -> tuple[list[Any], list[Seen]]:
        d.session = session
        d.destinations = destinations_from(d.settings.model_copy(update={
            k: v.replace("{url}", url) for k, v in settings_with_url.items()}))
        return [await d.deliver(raw, topic) for raw, topic in calls], api.seen
    out: tuple[list[Any], list[Seen]] = with_api(replies, body)
    return out


def test_a_trigger_read_twice_goes_out_once(tmp_path: Path) -> None:
    import time

    d, _ = deliverer(tmp_path)
    raw = msgspec.json.encode(trigger(time.time()))
    cfg = {"deliver_intercom_url": "{url}", "deliver_intercom_token": "t",
           "deliver_intercom_admin_id": "42"}
    results, seen = run_deliverer(d, [Reply(200)], [(raw, "chat_triggers")] * 2, **cfg)
    assert [r.outcomes for r in results] == [[("intercom", "delivered")],
                                             [("intercom", "duplicate")]]
    assert len(seen) == 1
    # A restarted deliverer reads the journal from disk: still a duplicate.
    d2, _ = deliverer(tmp_path)
    results, seen = run_deliverer(d2, [Reply(200)], [(raw, "chat_triggers")], **cfg)
    assert results[0].outcomes == [("intercom", "duplicate")] and seen == []


def test_expired_triggers_are_dropped_and_refusals_dead_lettered(tmp_path: Path) -> None:
    import time

    d, _ = deliverer(tmp_path)
    old = msgspec.json.encode(trigger(time.time() - 3600))
    fresh = msgspec.json.encode(trigger(time.time() + 5, customer="c9"))
    cfg = {"deliver_intercom_url": "{url}", "deliver_intercom_token": "t",
           "deliver_intercom_admin_id": "42"}
    results, seen = run_deliverer(d, [Reply(404)], [(old, "chat_triggers"),
                                                    (fresh, "chat_triggers")], **cfg)
    assert results[0].outcomes == [("intercom", "expired")] and results[0].dead == []
    assert results[1].outcomes == [("intercom", "rejected")]
    assert [r for r, _ in results[1].dead] == ["undeliverable"]
    assert len(seen) == 1


def test_routing_bad_input_and_nothing_configured(tmp_path: Path) -> None:
    import time

    d, _ = deliverer(tmp_path)
    cfg = {"deliver_slack_webhook_url": "{url}/hook", "deliver_webhook_url": "{url}/fw"}
    raw_alert = msgspec.json.encode(alert(time.time()))
    raw_chat = msgspec.json.encode(trigger(time.time()))
    results, seen = run_deliverer(d, [Reply(200)], [
        (raw_alert, "alerts"), (raw_chat, "chat_triggers"), (b"{oops", "alerts"),
        (b'{"data": {}}', "alerts")], **cfg)
    assert sorted(results[0].outcomes) == [("slack", "delivered"), ("webhook", "delivered")]
    assert results[1].outcomes == [("webhook", "delivered")]  # Slack takes alerts only
    assert results[2].dead[0][0] == "not_json" and results[3].dead[0][0] == "missing_id"
    assert sorted(s.path for s in seen) == ["/fw", "/fw", "/hook"]

    nothing, _ = deliverer(tmp_path / "none")
    assert nothing.destinations == []
    res = asyncio.run(nothing.deliver(raw_alert, "alerts"))
    assert res.outcomes == [("none", "not_configured")] and res.dead == []


def test_incomplete_destinations_are_not_half_used(tmp_path: Path) -> None:
    s = Settings(_env_file=None, deliver_intercom_token="t",  # type: ignore[call-arg]
                 deliver_zendesk_url="https://x.zendesk.com")
    assert destinations_from(s) == []
    with pytest.raises(ValueError):
        Settings(_env_file=None, deliver_slack_topics="alerts,sessions")  # type: ignore[call-arg]


def test_outcomes_are_counted_in_prometheus(tmp_path: Path) -> None:
    import time
    from types import SimpleNamespace

    d, registry = deliverer(tmp_path)
    raw = msgspec.json.encode(trigger(time.time()))
    record = SimpleNamespace(topic=d.settings.topic_prefix + "chat-triggers", partition=0,
                             offset=5, value=raw)

    async def body(url: str, api: FakeApi, session: aiohttp.ClientSession) -> None:
        d.session = session
        d.destinations = [intercom(url)]
        await d.handle(record)
        await d.handle(record)
    with_api([Reply(200)], body)

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)
    assert sample("frictionwatch_deliveries_total", destination="intercom",
                  outcome="delivered") == 1.0
    assert sample("frictionwatch_deliveries_total", destination="intercom",
                  outcome="duplicate") == 1.0
    assert sample("frictionwatch_deliveries_total", destination="slack",
                  outcome="expired") == 0.0  # every child exists from the start
    assert sample("frictionwatch_delivery_attempts_total", destination="intercom") == 1.0
    assert sample("frictionwatch_delivery_seconds_count", destination="intercom") == 1.0


def test_a_document_no_request_can_be_made_of_is_dead_lettered(tmp_path: Path) -> None:
    import time

    d, _ = deliverer(tmp_path)

    def broken(doc: Any, now: float) -> sender.Request:
        raise TypeError("data is not an object")
    d.destinations = [sender.Destination("webhook", ALL, broken)]
    res = asyncio.run(d.deliver(msgspec.json.encode(alert(time.time())), "alerts"))
    assert res.outcomes == [("webhook", "rejected")]
    assert res.dead[0][0] == "undeliverable" and "data is not an object" in res.dead[0][1]
