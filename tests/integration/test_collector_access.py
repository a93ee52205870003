"""The collector, safe to expose, against a live worker: it binds where configured, refuses
missing or wrong write keys and bad or stale webhook signatures (and forwards nothing of
them), limits each client's rate, and refuses an over-cap chunked body without reading it."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from kafkahelp import WorkerProcess, http_get, isolated_settings, read_to_end, topic

from streams.access import SIGNATURE_HEADER, TIMESTAMP_HEADER, basic, zendesk_signature
from streams.bundle import events_of, keys_of
from streams.kafka_io import ensure_topics
from streams.settings import Settings

pytestmark = pytest.mark.integration

SEGMENT_KEY, GA4_SECRET, HOOK_SECRET, TOKEN = "seg-key", "ga4-secret", "hook-secret", "tok-1"


def _now_iso() -> str:
    # Current times: the edge may refuse times far from now.
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def segment_call(session: str, **extra: Any) -> bytes:
    return json.dumps({
        "type": "track", "event": "Checkout Started", "messageId": f"m-{session}",
        "anonymousId": "anon-1", "timestamp": _now_iso(),
        "context": {"sessionId": session}, "properties": {"revenue": 10.0}, **extra,
    }).encode()


def ga4_payload(session: str) -> bytes:
    return json.dumps({"client_id": "1.2", "events": [{"name": "begin_checkout", "params": {
        "session_id": session, "currency": "EUR", "value": 10.0,
        "timestamp_micros": int(time.time() * 1e6)}}]}).encode()


def ticket(customer: str) -> bytes:
    """A Zendesk ticket.created event webhook (tests/data/adapters has the full example)."""
    return json.dumps({
        "type": "zen:event-type:ticket.created", "account_id": 1, "id": f"ev-{customer}",
        "time": _now_iso(), "zendesk_event_version": "2022-11-06",
        "subject": f"zen:ticket:{customer}",
        "detail": {"id": f"t-{customer}", "requester_id": customer, "created_at": _now_iso(),
                   "updated_at": _now_iso(), "status": "NEW", "priority": "NORMAL",
                   "subject": "Charged twice", "description": "I was charged twice.",
                   "tags": [], "via": {"channel": "email"}},
    }).encode()


def post(url: str, path: str, body: bytes, headers: dict[str, str] | None = None,
         source: str | None = None) -> tuple[int, dict[str, Any], dict[str, str]]:
    """POST over a fresh connection, optionally from another loopback source address."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10,
                                      source_address=(source, 0) if source else None)
    try:
        conn.request("POST", path, body=body,
                     headers={"Content-Type": "application/json", **(headers or {})})
        r = conn.getresponse()
        raw = r.read()
        return r.status, json.loads(raw or b"{}"), dict(r.getheaders())
    finally:
        conn.close()


def signed(body: bytes, secret: str = HOOK_SECRET, at: float | None = None) -> dict[str, str]:
    stamp = datetime.fromtimestamp(time.time() if at is None else at, UTC) \
        .strftime("%Y-%m-%dT%H:%M:%SZ")
    return {SIGNATURE_HEADER: zendesk_signature(secret, stamp, body), TIMESTAMP_HEADER: stamp}


def _worker(tmp_path_factory: pytest.TempPathFactory, bootstrap: str, name: str,
            **extra: Any) -> Iterator[WorkerProcess]:
    tmp = tmp_path_factory.mktemp(name)
    settings = isolated_settings(tmp, **extra)
    ensure_topics(settings, bootstrap)
    w = WorkerProcess(settings, bootstrap, tmp / "worker.log").start()
    try:
        yield w
    finally:
        w.stop()


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str
          ) -> Iterator[WorkerProcess]:
    """A worker with a key for every source."""
    yield from _worker(tmp_path_factory, kafka_bootstrap, "keyed",
                       segment_write_keys=[SEGMENT_KEY], ga4_api_secrets=[GA4_SECRET],
                       webhook_secrets=[HOOK_SECRET], collector_tokens=[TOKEN])


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str
            ) -> Iterator[WorkerProcess]:
    """An open worker with a tight rate limit: one request, then one every 5 seconds."""
    yield from _worker(tmp_path_factory, kafka_bootstrap, "limited",
                       rate_limit=0.2, rate_limit_burst=1)


def test_collector_refuses_missing_or_wrong_credentials(keyed: WorkerProcess,
                                                        kafka_bootstrap: str) -> None:
    url = keyed.url
    # Segment: Basic auth with the write key as the user name, or writeKey in the body.
    code, body, headers = post(url, "/collect/segment", segment_call("refused-1"))
    assert code == 401 and headers.get("WWW-Authenticate", "").startswith("Basic"), body
    code, _, headers = post(url, "/collect/segment", segment_call("refused-2"),
                            {"Authorization": basic("wrong")})
    assert code == 401 and headers.get("WWW-Authenticate", "").startswith("Basic")
    code, _, _ = post(url, "/collect/segment", segment_call("refused-3", writeKey="wrong"))
    assert code == 401
    code, body, _ = post(url, "/collect/segment", segment_call("ok-seg-basic"),
                         {"Authorization": basic(SEGMENT_KEY)})
    assert (code, body.get("accepted")) == (200, 1), body
    code, body, _ = post(url, "/collect/segment", segment_call("ok-seg-body",
                                                               writeKey=SEGMENT_KEY))
    assert (code, body.get("accepted")) == (200, 1), body

    # GA4 Measurement Protocol: api_secret in the query.
    assert post(url, "/collect/ga4", ga4_payload("refused-4"))[0] == 401
    assert post(url, "/collect/ga4?measurement_id=G-1&api_secret=nope",
                ga4_payload("refused-5"))[0] == 401
    code, body, _ = post(url, f"/collect/ga4?measurement_id=G-1&api_secret={GA4_SECRET}",
                         ga4_payload("ok-ga4"))
    assert (code, body.get("accepted")) == (200, 1), body

    # Help-desk webhook: Zendesk's signature over timestamp + body, fresh.
    t = ticket("refused-cust")
    assert post(url, "/collect/support", t)[0] == 401
    assert post(url, "/collect/support", t, signed(t, secret="other"))[0] == 403
    assert post(url, "/collect/support", t, signed(t, at=time.time() - 3600))[0] == 403
    assert post(url, "/collect/support", t + b" ", signed(t))[0] == 403
    good = ticket("ok-cust")
    code, body, _ = post(url, "/collect/support", good, signed(good))
    assert (code, body.get("accepted")) == (200, 1), body

    # /collect: any configured credential, e.g. the bearer token.
    assert post(url, "/collect", segment_call("refused-6"),
                {"Authorization": "Bearer nope"})[0] == 401
    code, body, _ = post(url, "/collect", segment_call("ok-token"),
                         {"Authorization": f"Bearer {TOKEN}"})
    assert (code, body.get("accepted")) == (200, 1), body

    # An oversized body: refused unread from a sender the headers do not vouch for (401), 413
    # when its credential could only be in that body; neither is dead-lettered.
    big = b"x" * (keyed.settings.max_payload_bytes + 1)
    assert post(url, "/collect/segment", big, {"Authorization": basic("wrong")})[0] == 401
    assert post(url, "/collect/segment", big)[0] == 413

    # Refused requests are counted ...
    metrics = http_get(url + "/metrics")
    assert 'frictionwatch_collector_requests_total{code="401",endpoint="/collect/segment"} 4.0' \
        in metrics
    assert 'frictionwatch_collector_requests_total{code="403",endpoint="/collect/support"} 3.0' \
        in metrics
    # ... and nothing of them is forwarded: only the accepted sessions reach their topic.
    settings = keyed.settings
    web = read_to_end(kafka_bootstrap, topic(settings, "web_events"))
    sessions = {k for r in web for k in keys_of(r.value, r.key)}
    assert sessions == {"ok-seg-basic", "ok-seg-body", "ok-ga4", "ok-token"}
    support = read_to_end(kafka_bootstrap, topic(settings, "support_events"))
    customers = {e.customer_id for r in support for e in events_of(r.value, r.key)}
    assert customers == {"ok-cust"}
    assert read_to_end(kafka_bootstrap, topic(settings, "dead_letters")) == []


def test_feedback_needs_the_bearer_token_when_tokens_are_set(keyed: WorkerProcess) -> None:
    """Verdicts re-weigh the alert policy: with collector tokens set, /feedback wants one."""
    verdict = json.dumps({"alert_id": "a-1", "session_id": "s-1", "verdict": "useful"}).encode()
    assert post(keyed.url, "/feedback", verdict)[0] == 401
    assert post(keyed.url, "/feedback", verdict, {"Authorization": "Bearer nope"})[0] == 401
    code, body, _ = post(keyed.url, "/feedback", verdict, {"Authorization": f"Bearer {TOKEN}"})
    assert code == 202, body


def test_second_request_over_the_rate_gets_429_with_retry_after(limited: WorkerProcess) -> None:
    # Its own loopback source address, so other tests' requests do not share its bucket.
    first = post(limited.url, "/collect/segment", segment_call("rate-1"), source="127.0.0.3")
    assert first[0] == 200, first
    code, body, headers = post(limited.url, "/collect/segment", segment_call("rate-2"),
                               source="127.0.0.3")
    assert code == 429 and body["error"] == "rate_limited", body
    assert headers["Retry-After"].isdigit() and 1 <= int(headers["Retry-After"]) <= 5
    # Another client is not held back.
    assert post(limited.url, "/collect/segment", segment_call("rate-3"),
                source="127.0.0.4")[0] == 200
    assert 'frictionwatch_collector_requests_total{code="429",endpoint="/collect/segment"} 1.0' \
        in http_get(limited.url + "/metrics")


def test_over_cap_chunked_body_is_refused_before_it_ends(limited: WorkerProcess) -> None:
    """A chunked body over the cap gets 413 while the client still holds the rest back: the
    server cannot have read it whole (it has not been sent)."""
    limit = limited.settings.max_payload_bytes
    host, port = limited.url.removeprefix("http://").split(":")
    chunk = b"x" * 65536
    with socket.create_connection((host, int(port)), timeout=10,
                                  source_address=("127.0.0.5", 0)) as s:
        s.sendall(b"POST /collect/segment HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        sent = 0
        while sent <= limit + len(chunk):
            s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
        # No terminating chunk: the body never ends. The answer must come all the same.
        s.settimeout(10)
        head = s.recv(65536)
    assert head.startswith(b"HTTP/1.1 413"), head[:200]
    assert b"too_large" in head


def test_worker_listens_only_where_configured(limited: WorkerProcess) -> None:
    assert limited.settings.web_host == "127.0.0.1"
    port = limited.settings.web_port
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
    others = ["127.0.0.2"]
    try:
        out = subprocess.run(["hostname", "-I"], capture_output=True, text=True, timeout=5)
        others += [a for a in out.stdout.split() if a and not a.startswith("127.")]
    except (OSError, subprocess.SubprocessError):
        pass
    for address in others:
        with pytest.raises(OSError):
            socket.create_connection((address, port), timeout=3).close()


def test_health_is_ready_and_live(limited: WorkerProcess) -> None:
    health = json.loads(http_get(limited.url + "/health"))
    assert health["status"] == "ok" and health["assigned_partitions"] > 0
    assert health["reasons"] == [] and health["broker"]["reachable"] is True
    assert json.loads(http_get(limited.url + "/health/live"))["status"] == "alive"


def test_default_settings_bind_loopback() -> None:
    assert Settings(_env_file=None).web_host == "127.0.0.1"  # type: ignore[call-arg]
