"""Privacy at the edge (issue 15, item 6): no email, card number, phone number or URL secret
planted in any field of any source format survives into anything the pipeline writes to a
topic (canonical bundles and their keys, dead letters with their base64 originals and
details, the detection core's signals, alerts and chat triggers), through the collector's
path and the normalize stage's, malformed payloads included; the simulator's traffic comes
through unchanged apart from the emails its identify calls carry; allow and deny lists and
the switch work; and redaction costs the offline core at most 10% (``bench/privacy_cost.py``).
"""

from __future__ import annotations

import base64
import functools
import statistics
from types import ModuleType
from typing import Any

import msgspec
import pytest
from benchload import load_bench
from fuzzgen import nodes
from fuzzstrategies import BASE, PROFILE, templates
from hypothesis import given
from hypothesis import strategies as st

from detectors.events import Identify, JsError, PageView, Ticket
from streams import detection
from streams.bulk import Record, group_records
from streams.bundle import Entry, encode_bundle
from streams.deadletter import encode_dead_letter
from streams.normalize import normalize
from streams.privacy import CARD, EMAIL, OFF, PHONE, REDACTED, Privacy, luhn_ok
from streams.settings import Settings

SETTINGS = Settings(_env_file=None)  # type: ignore[call-arg]
_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder()

# --- secrets, in the forms people write them ----------------------------------------------

_LOWER = "abcdefghijklmnopqrstuvwxyz"
_ALNUM = _LOWER + "0123456789"
_DIGITS = "0123456789"

emails = st.builds(
    lambda local, labels, tld: f"{local}@{'.'.join(labels)}.{tld}",
    st.text(_ALNUM + "._+-", min_size=1, max_size=20).filter(lambda s: s[0] in _ALNUM),
    # Not "2x", "3x": retina image names (logo@2x.png) are left alone by design.
    st.lists(st.text(_ALNUM + "-", min_size=1, max_size=12).filter(
        lambda s: s[0] in _ALNUM and not (s[:-1].isdigit() and s[-1] == "x")),
        min_size=1, max_size=3),
    st.text(_LOWER, min_size=2, max_size=6),
)


def _with_check_digit(body: str) -> str:
    return next(body + d for d in _DIGITS if luhn_ok(body + d))


#: How cards are printed: digit counts per group (Visa 4-4-4-4, Amex 4-6-5, Diners 4-6-4,
#: 19-digit 4-4-4-4-3, old Visa 4-3-3-3), with spaces, dashes or nothing between.
_CARD_LAYOUTS = ((4, 4, 4, 4), (4, 6, 5), (4, 6, 4), (4, 4, 4, 4, 3), (4, 3, 3, 3))


@st.composite
def cards(draw: st.DrawFn) -> str:
    layout = draw(st.sampled_from(_CARD_LAYOUTS))
    number = _with_check_digit(draw(st.text(_DIGITS, min_size=sum(layout) - 1,
                                            max_size=sum(layout) - 1)))
    sep = draw(st.sampled_from(["", " ", "-"]))
    parts, at = [], 0
    for n in layout:
        parts.append(number[at:at + n])
        at += n
    return sep.join(parts)


@st.composite
def phones(draw: st.DrawFn) -> str:
    d = lambda n: draw(st.text(_DIGITS, min_size=n, max_size=n))  # noqa: E731
    kind = draw(st.integers(0, 5))
    if kind == 0:  # E.164, written as it is or grouped
        cc = draw(st.sampled_from(["1", "44", "33", "49", "353", "91", "61"]))
        # 8 to 15 digits with the country code: the range ``streams.privacy`` takes.
        rest = d(draw(st.integers(8 - len(cc), 15 - len(cc))))
        rest = str(draw(st.integers(1, 9))) + rest[1:]
        sep = draw(st.sampled_from(["", " ", "-"]))
        chunks = [rest[i:i + 3] for i in range(0, len(rest), 3)] if sep else [rest]
        return f"+{cc}{' ' if sep else ''}{sep.join(chunks)}"
    area = str(draw(st.integers(2, 9))) + d(2)
    if kind == 1:
        return f"({area}) {d(3)}-{d(4)}"
    if kind == 2:
        sep = draw(st.sampled_from(["-", ".", " "]))
        return f"{area}{sep}{d(3)}{sep}{d(4)}"
    if kind == 3:
        return f"1-{area}-{d(3)}-{d(4)}"
    if kind == 4:  # United Kingdom
        return f"0{d(2)} {d(4)} {d(4)}"
    return "0" + str(draw(st.integers(1, 9))) + "".join(f" {d(2)}" for _ in range(4))  # France


_URL_KEYS = ["token", "access_token", "api_key", "password", "sessionid", "code", "auth",
             "id_token", "reset_token", "key", "sig"]


@st.composite
def url_secrets(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A URL holding a secret: (the URL, the strings that must not survive)."""
    if draw(st.booleans()):
        token = "tk" + draw(st.text(_ALNUM, min_size=12, max_size=24))
        key = draw(st.sampled_from(_URL_KEYS))
        lead = draw(st.sampled_from(["?", "?utm_source=mail&", "#"]))
        return f"https://shop.example/account{lead}{key}={token}&lang=en", [token]
    email = draw(emails)
    quoted = email.replace("@", "%40").replace("+", "%2B")
    return f"https://shop.example/search?q={quoted}&page=2", [email, quoted]


@st.composite
def secrets(draw: st.DrawFn) -> tuple[str, list[str]]:
    """(text to plant, the strings that must not survive it)."""
    kind = draw(st.integers(0, 3))
    if kind == 3:
        return draw(url_secrets())
    value = draw((emails, cards(), phones())[kind])
    forbidden = [value]
    digits = "".join(c for c in value if c.isdigit())
    if kind and len(digits) >= 8:
        forbidden.append(digits)
    return value, forbidden


# --- what the pipeline writes ---------------------------------------------------------------


@functools.cache
def _engine() -> Any:
    return detection.engine(SETTINGS)


def _dead_blobs(dead: list[Any]) -> list[bytes]:
    out = []
    for d in dead:
        out.append(encode_dead_letter(d))
        out.append(d.original_bytes)
        out.append(d.detail.encode())
    return out


def topic_writes(raw: bytes, source: str | None, max_bytes: int) -> list[bytes]:
    """Everything the collector and the normalize stage would send to a topic for ``raw``
    (values, keys, dead letters' decoded originals), and what the detection core makes of
    the events (signals, alerts, chat triggers)."""
    blobs: list[bytes] = []
    # The collector: normalize, then ``streams.ingest``'s publish (a bundle per key).
    norm = normalize(raw, source, max_bytes=max_bytes,
                     max_events=SETTINGS.max_events_per_message, now=BASE, stage="collector",
                     max_lead=SETTINGS.max_event_lead, privacy=SETTINGS.privacy)
    for groups in (norm.web, norm.support):
        for key, evs in groups.items():
            blobs += [key.encode(), encode_bundle([Entry(key, None, evs)])]
    blobs += _dead_blobs(norm.dead)
    # The normalize stage on the ingest topic (``streams.bulk``).
    g = group_records([Record(0, 7, raw, source)], web_partitions=4, support_partitions=4,
                      settings=SETTINGS.model_copy(update={"max_payload_bytes": max_bytes}),
                      now=BASE)
    for entries in (*g.web.values(), *g.support.values()):
        blobs += entries
    blobs += _dead_blobs(g.dead)
    # Downstream of the canonical topics: what the session agent's core emits.
    for evs in norm.web.values():
        out = _engine().feed(evs)
        blobs += [_enc.encode(x) for x in (*out.signals, *out.alerts, *out.chats,
                                            *out.outcomes, *out.experiments)]
    return blobs


def _plant(payload: Any, secret: str, where: int, mode: int) -> bool:
    """Put ``secret`` into one string of ``payload`` (replacing it, or after it with words
    around); False when the payload has no string."""
    leaves = [(c, k) for c, k in nodes(payload) if type(c[k]) is str]
    if not leaves:
        return False
    c, k = leaves[where % len(leaves)]
    c[k] = secret if mode == 0 else f"{c[k]} see {secret} thanks"
    return True


@PROFILE
@given(fmt=st.sampled_from(["segment", "ga4", "support", "canonical"]),
       pick=st.integers(0, 10_000), planted=st.lists(
           st.tuples(secrets(), st.integers(0, 10_000), st.integers(0, 1)), min_size=1,
           max_size=3),
       damage=st.integers(0, 5), cut=st.integers(0, 10_000),
       header=st.booleans())
def test_no_planted_secret_reaches_any_topic(fmt: str, pick: int,
                                             planted: list[tuple[Any, int, int]],
                                             damage: int, cut: int, header: bool) -> None:
    pool = templates()[fmt]
    payload = _dec.decode(pool[pick % len(pool)].raw)
    forbidden: list[str] = []
    for (text, bad), where, mode in planted:
        if _plant(payload, text, where, mode):
            forbidden += bad
    raw = _enc.encode(payload)
    max_bytes = SETTINGS.max_payload_bytes
    if damage == 1:  # truncated after the secrets: not JSON any more
        end = max(raw.find(s.encode()) + len(s) for s in forbidden)
        raw = raw[:min(len(raw), end + cut % 40)]
    elif damage == 2:  # not UTF-8
        raw = b"\xff" + raw
    elif damage == 3:  # over the size limit: a prefix is kept
        max_bytes = max(1, len(raw) - 1 - cut % 64)
    elif damage == 4:  # one item of a batch rejected whole
        raw = _enc.encode([payload, {"type": "nonsense", "x": [t for (t, _), _, _ in planted]}]) \
            if fmt in ("segment", "canonical") else raw
    for blob in topic_writes(raw, fmt if header else None, max_bytes):
        low = blob.lower()
        for s in forbidden:
            assert s.lower().encode() not in low, (s, blob[:2000])


def test_each_kind_is_replaced_in_each_free_text_field() -> None:
    p = SETTINGS.privacy
    e = JsError(id="e", time=1.0, session_id="s", message="user jo@x.io card 4111 1111 1111 "
                "1111 phone +1 415 555 2671", source="https://a.example/app.js?key=abc123",
                url="https://a.example/reset?token=t0k3n&utm_source=mail")
    r = p.event(e)
    assert r.message == f"user {EMAIL} card {CARD} phone {PHONE}"
    assert r.source == f"https://a.example/app.js?key={REDACTED}"
    assert r.url == f"https://a.example/reset?token={REDACTED}&utm_source=mail"
    t = Ticket(id="t", time=1.0, session_id="s", customer_id="jo@x.io", action="created",
               ticket_id="1", subject="call me: (555) 123-4567", text="mail jo%40x.io",
               tags=("vip", "jo@x.io"))
    r = p.event(t)
    assert (r.subject, r.text, r.tags) == (f"call me: {PHONE}", f"mail {EMAIL}", ("vip", EMAIL))
    # An id holding an email becomes a stable keyed hash: the customer stays one customer.
    assert r.customer_id.startswith("pii:") and p.event(t).customer_id == r.customer_id
    assert Privacy(salt="other").event(t).customer_id != r.customer_id


@pytest.mark.parametrize("text", [
    "order 1234567890123 shipped",  # fails the Luhn check
    "paid 1299.00 EUR for 3 items on 2026-01-01 at 12:30:00",
    "epoch 1767225600123 or 1767225600.123",
    "at 37.7749 -122.4194, from 192.168.100.200",
    "/product/p123?utm_source=newsletter&utm_medium=email&page=2",
    "logo@2x.png", "#checkout > button.pay", "version 10.15.7",
    "sess_5494007560675c4e",  # a hex id with a Luhn-valid run of digits inside
])
def test_ordinary_values_survive(text: str) -> None:
    assert SETTINGS.privacy.text(text) is text


def test_simulated_traffic_comes_through_unchanged_but_identify_emails() -> None:
    from streams.sim import SimConfig, Simulator

    sim = Simulator(SimConfig(seed=4, events_per_second=50, duration=300))
    changed: dict[str, int] = {}
    n = 0
    for m in sim.messages():
        on = normalize(m.encode(), m.source, max_bytes=1 << 20, max_events=1000, now=0.0)
        off = normalize(m.encode(), m.source, max_bytes=1 << 20, max_events=1000, now=0.0,
                        privacy=OFF)
        assert not on.dead and not off.dead
        a = [e for g in (*on.web.values(), *on.support.values()) for e in g]
        b = [e for g in (*off.web.values(), *off.support.values()) for e in g]
        assert len(a) == len(b)
        n += len(a)
        for x, y in zip(a, b, strict=True):
            if x != y:
                assert isinstance(y, Identify) and x == msgspec.structs.replace(
                    y, traits={**y.traits, "email": EMAIL}), (x, y)
                changed[type(y).__name__] = changed.get(type(y).__name__, 0) + 1
    assert n > 5_000 and changed.get("Identify", 0) > 10


def test_allow_deny_and_switch_come_from_settings() -> None:
    s = Settings(_env_file=None, privacy_allow='["email", "title", "code"]',  # type: ignore[call-arg]
                 privacy_deny="referrer,plan")
    e = PageView(id="e", time=1.0, session_id="s", title="jo@x.io", referrer="https://r",
                 path="/a?code=SUMMER&email=jo%40x.io&utm=x")
    r = s.privacy.event(e)
    # An allowed query key is not secret by name, but what its value holds is still found.
    assert (r.title, r.referrer, r.path) == ("jo@x.io", None,
                                             f"/a?code=SUMMER&email={EMAIL}&utm=x")
    assert SETTINGS.privacy.event(e).path == f"/a?code={REDACTED}&email={REDACTED}&utm=x"
    i = Identify(id="e", time=1.0, session_id="s", customer_id="c",
                 traits={"plan": "pro", "email": "jo@x.io", "phone": "+1 415 555 2671"})
    assert s.privacy.event(i).traits == {"email": "jo@x.io", "phone": PHONE}
    off = Settings(_env_file=None, privacy_redact=False).privacy  # type: ignore[call-arg]
    assert off.event(i) is i and off.original(b'{"e":"jo@x.io"}') == b'{"e":"jo@x.io"}'


def test_dead_letters_keep_redacted_originals_and_true_sizes() -> None:
    raw = b'{"type":"track","event":"x","properties":{"email":"jo@x.io"'  # truncated
    out = normalize(raw, "segment", max_bytes=1 << 20, max_events=10, now=0.0)
    (d,) = out.dead
    assert d.reason == "not_json" and b"jo@x.io" not in d.original_bytes
    assert EMAIL.encode() in d.original_bytes and d.original_size == len(raw)
    big = b'{"email":"' + b"a" * 5000 + b'","x":"jo@x.io"}'
    (d,) = normalize(b"[" + big + b"]", None, max_bytes=100, max_events=10, now=0.0).dead
    assert d.reason == "too_large" and b"jo@x.io" not in base64.b64decode(d.original)


@pytest.mark.parametrize("doc", [
    {"email": "a@b.io", "plan": "pro", "api_key": 42, "n": 3, "ok": True, "x": None},
    {"Password": "", "token": REDACTED, "phone": "+44 20 7946 0958", "coupon": "SAVE10"},
    {"tier": "gold", "orders": 2, "price": 12.5},
    {"user": {"email": "a@b.io"}, "plan": "pro"},  # nested: the general path
])
def test_flat_dicts_redact_as_the_general_walk_does(doc: dict[str, Any]) -> None:
    # Traits take a one-pass path (``Privacy._flat``); it must agree with the JSON walk,
    # which the nested document below each takes (wrapped in a list).
    p = Privacy(allow=("coupon",), deny=("plan",))
    flat = p.json(doc)
    (walked,) = p.json([doc])
    assert flat == walked
    assert (flat is doc) == (walked == doc)


def test_hostile_strings_cost_linear_time() -> None:
    import time

    p = SETTINGS.privacy
    for text in ["1 " * 20_000, "1-" * 30_000, "a" * 70_000 + "@", "4111 " * 10_000,
                 "a=b&" * 15_000, "@" * 60_000]:
        t0 = time.process_time()
        p.text(text)
        # Measured at 0.01-0.07 s each; a quadratic pass took 4 to 40 s.
        assert time.process_time() - t0 < 1.0, text[:10]


def _bench() -> ModuleType:
    return load_bench("privacy_cost")


def test_redaction_costs_the_offline_core_at_most_ten_percent() -> None:
    """The acceptance: the offline core (normalize and the detection engine over simulated
    traffic in the formats users send) with redaction, the time spent inside
    ``Privacy.events`` timed within each run (less the timer's own, measured with redaction
    off): run / (run - redaction) must stay under 1.10. Timed within the run because the
    ratio of two runs (``python bench/privacy_cost.py``, which counts indirect costs too)
    moves by 10-20% with a shared machine's load; ``--inside`` prints this figure there."""
    bench = _bench()
    data = bench.traffic(seed=2, rate=50, seconds=300)
    share, costs, _ = bench.inside(data, rounds=3)
    assert share > 0.0 and statistics.median(costs) <= 1.10, costs
