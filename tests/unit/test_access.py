"""The collector's access checks, without a broker: write keys, signatures, the rate limit."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from streams.access import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Credentials,
    TokenBuckets,
    basic,
    check_body,
    check_headers,
    zendesk_signature,
)
from streams.settings import Settings

CREDS = Credentials(
    segment_write_keys=("seg-1", "seg-2"),
    ga4_api_secrets=("ga4-secret",),
    webhook_secrets=("old-secret", "new-secret"),
    webhook_tolerance=300.0,
    collector_tokens=("tok",),
)
NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z
STAMP = "2026-01-01T00:00:00Z"
BODY = b'{"ticket": {"id": 1}}'


def signed(secret: str = "new-secret", stamp: str = STAMP, body: bytes = BODY) -> dict[str, str]:
    return {SIGNATURE_HEADER: zendesk_signature(secret, stamp, body), TIMESTAMP_HEADER: stamp}


def test_nothing_configured_leaves_every_endpoint_open() -> None:
    for source in ("segment", "ga4", "support", None):
        assert check_headers(Credentials(), source, {}, {}).ok


def test_segment_basic_auth_takes_the_write_key_as_user_name() -> None:
    assert check_headers(CREDS, "segment", {"Authorization": basic("seg-2")}, {}).ok
    # Segment's docs: without the colon still works (backward compatibility).
    bare = "Basic " + base64.b64encode(b"seg-1").decode()
    assert check_headers(CREDS, "segment", {"authorization": bare}, {}).ok
    for header in (basic("seg-3"), basic(""), "Basic !!!", "Basic " + base64.b64encode(
            b"\xff\xfe").decode(), "Bearer seg-1", basic("seg-1x")):
        v = check_headers(CREDS, "segment", {"Authorization": header}, {})
        assert (v.ok, v.need_body, v.status) == (False, False, 401), header
        assert v.challenge == 'Basic realm="frictionwatch"'


def test_segment_write_key_in_the_body_when_no_header() -> None:
    v = check_headers(CREDS, "segment", {}, {})
    assert not v.ok and v.need_body
    assert check_body(CREDS, "segment", {}, b"{}", NOW, write_key="seg-1").ok
    for key in (None, "", "seg-9"):
        refused = check_body(CREDS, "segment", {}, b"{}", NOW, write_key=key)
        assert (refused.ok, refused.status) == (False, 401)
        assert refused.challenge


def test_ga4_api_secret_and_measurement_id() -> None:
    assert check_headers(CREDS, "ga4", {}, {"api_secret": "ga4-secret"}).ok
    for query in ({}, {"api_secret": "nope"}, {"api_secret": ""}):
        v = check_headers(CREDS, "ga4", {}, query)
        assert (v.ok, v.need_body, v.status, v.challenge) == (False, False, 401, None)
    # Another source's credential does not open GA4.
    assert not check_headers(CREDS, "ga4", {"Authorization": basic("seg-1")}, {}).ok
    pinned = Credentials(ga4_api_secrets=("s",), ga4_measurement_ids=("G-1",))
    assert check_headers(pinned, "ga4", {}, {"api_secret": "s", "measurement_id": "G-1"}).ok
    assert not check_headers(pinned, "ga4", {}, {"api_secret": "s", "measurement_id": "G-2"}).ok


def test_zendesk_signature_matches_an_independent_computation() -> None:
    expected = base64.b64encode(
        hmac.new(b"new-secret", STAMP.encode() + BODY, hashlib.sha256).digest()).decode()
    assert zendesk_signature("new-secret", STAMP, BODY) == expected


def test_webhook_signature_right_wrong_stale() -> None:
    headers = signed()
    v = check_headers(CREDS, "support", headers, {})
    assert v.need_body
    assert check_body(CREDS, "support", headers, BODY, NOW).ok
    assert check_body(CREDS, "support", signed("old-secret"), BODY, NOW + 299).ok  # rotation
    bad = [
        (signed("other"), BODY, NOW),                       # wrong secret
        (headers, BODY + b" ", NOW),                        # body changed
        (headers, BODY, NOW + 301),                         # stale
        (headers, BODY, NOW - 301),                         # from the future
        (signed(stamp="yesterday"), BODY, NOW),             # unreadable time
        (signed(stamp="2026-01-01T00:00:00"), BODY, NOW),   # time without a zone
        ({SIGNATURE_HEADER: headers[SIGNATURE_HEADER]}, BODY, NOW),  # no timestamp
    ]
    for hdrs, body, now in bad:
        got = check_body(CREDS, "support", hdrs, body, now)
        assert (got.ok, got.status) == (False, 403), (hdrs, body, now)


def test_webhook_without_signature_is_401() -> None:
    v = check_headers(CREDS, "support", {}, {})
    assert (v.ok, v.need_body, v.status) == (False, False, 401)


def test_epoch_seconds_timestamp_is_accepted() -> None:
    stamp = str(int(NOW))
    assert check_body(CREDS, "support", signed(stamp=stamp), BODY, NOW + 10).ok


def test_collect_any_configured_credential_and_bearer_token() -> None:
    assert check_headers(CREDS, None, {"Authorization": "Bearer tok"}, {}).ok
    assert check_headers(CREDS, None, {"Authorization": basic("seg-1")}, {}).ok
    assert check_headers(CREDS, None, {}, {"api_secret": "ga4-secret"}).ok
    assert check_body(CREDS, None, signed(), BODY, NOW).ok
    # The token opens the per-source endpoints too.
    for source in ("segment", "ga4", "support"):
        assert check_headers(CREDS, source, {"Authorization": "Bearer tok"}, {}).ok
    for header in ("Bearer nope", "Bearer ", basic("nope")):
        v = check_headers(CREDS, None, {"Authorization": header}, {})
        assert (v.ok, v.need_body, v.status) == (False, False, 401)


def test_token_only_closes_every_endpoint() -> None:
    creds = Credentials(collector_tokens=("tok",))
    for source in ("segment", "ga4", "support", None):
        v = check_headers(creds, source, {}, {})
        assert not v.ok and not v.need_body and v.status == 401


def test_a_source_without_keys_stays_open_beside_one_with_keys() -> None:
    creds = Credentials(segment_write_keys=("k",))
    assert check_headers(creds, "ga4", {}, {}).ok
    assert not check_headers(creds, "segment", {"Authorization": basic("x")}, {}).ok


def test_bucket_allows_burst_then_refuses_with_the_wait() -> None:
    b = TokenBuckets(rate=2.0, burst=3, max_clients=100)
    assert [b.take("a", 10.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert b.take("a", 10.0) == pytest.approx(0.5)   # one token takes half a second
    assert b.take("a", 10.25) == pytest.approx(0.25)  # a refusal spends nothing
    assert b.take("a", 10.5) == 0.0
    assert b.take("b", 10.5) == 0.0                   # another client has its own bucket
    assert b.take("a", 100.0) == 0.0                  # refills, up to the burst only
    assert [b.take("a", 100.0) for _ in range(3)][-1] > 0


def test_bucket_table_is_bounded_oldest_evicted() -> None:
    b = TokenBuckets(rate=1.0, burst=1, max_clients=3)
    for client in ("a", "b", "c"):
        b.take(client, 0.0)
    b.take("a", 0.0)  # "a" is the most recently seen now (refused, still touched)
    b.take("d", 0.0)
    assert len(b) == 3
    assert b.take("b", 0.0) == 0.0   # "b" was evicted: a fresh bucket
    assert b.take("a", 0.0) > 0      # "a" was kept, still empty
    for i in range(10_000):
        b.take(f"x{i}", 0.0)
    assert len(b) == 3


@pytest.mark.parametrize("bad", [dict(rate=0, burst=1, max_clients=1),
                                 dict(rate=1, burst=0, max_clients=1),
                                 dict(rate=1, burst=1, max_clients=0)])
def test_bucket_rejects_bad_parameters(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        TokenBuckets(**bad)  # type: ignore[arg-type]


def test_settings_read_key_lists_from_json_or_commas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRICTIONWATCH_SEGMENT_WRITE_KEYS", "a, b,,c")
    monkeypatch.setenv("FRICTIONWATCH_WEBHOOK_SECRETS", '["x,y", "z"]')
    monkeypatch.setenv("FRICTIONWATCH_COLLECTOR_TOKENS", "")
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.segment_write_keys == ["a", "b", "c"]
    assert s.webhook_secrets == ["x,y", "z"]
    assert s.collector_tokens == []
    assert "x,y" not in repr(s) and "'a'" not in repr(s)  # secrets stay out of logs
    assert Settings(_env_file=None).web_host == "127.0.0.1"  # type: ignore[call-arg]
