"""Hypothesis strategies for the property tests (``tests/unit/test_properties_*.py``): JSON
with hostile leaves, valid payloads of each format mutated, canonical events with hostile
fields. The plain-random generators for the bench are in ``fuzzgen``.

``EXAMPLES`` sets how many examples each property tries (``FW_FUZZ_EXAMPLES``; default keeps
each test file under about 30 s on CI).
"""

from __future__ import annotations

import functools
import os
from typing import Any

import msgspec
from fuzzgen import Template, corpus, nodes
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from detectors.events import EVENT_TYPES

__all__ = ["EXAMPLES", "SESSIONS", "BASE", "PROFILE", "canonical_events", "hostile_numbers",
           "hostile_times", "json_values", "mutated", "raw_inputs", "sources", "templates"]

EXAMPLES = int(os.environ.get("FW_FUZZ_EXAMPLES", "60"))
#: Shared by every property: no deadline (the first example pays for imports and models), and
#: large generated inputs are the point, not a problem.
#: Under CI (``CI`` set) the examples are derandomized: a submission's CI judges the code, not
#: the luck of a draw; developers' runs keep exploring new examples.
PROFILE = settings(max_examples=EXAMPLES, deadline=None, derandomize=bool(os.environ.get("CI")),
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                          HealthCheck.large_base_example])

#: Event time the valid traffic is at (a fixed day: the property tests are reproducible).
BASE = 1_767_225_600.0  # 2026-01-01T00:00:00Z
SESSIONS = ("s1", "s2", "s3")

_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder()


@functools.cache
def templates() -> dict[str, list[Template]]:
    """A few hundred valid payloads per format (test data and simulated traffic)."""
    out: dict[str, list[Template]] = {}
    for t in corpus(seed=1, sim_seconds=10.0, start=BASE):
        pool = out.setdefault(t.source, [])
        if len(pool) < 300:
            pool.append(t)
    return out


hostile_numbers = st.one_of(
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e308, -1e308, 10**309, -(10**400), 2**63, 2**64, -(2**63) - 1, 5e-324,
                     -0.0, 0, -1]),
)
hostile_times = st.one_of(
    st.sampled_from(["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59",
                     "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "1970-01-01T00:00:00Z",
                     "2999-01-01T00:00:00Z", "+275760-09-13T00:00:00Z", "", "nan"]),
    st.datetimes().map(lambda d: d.isoformat()),
    st.sampled_from([1e300, -1e300, 253402300800.0, -62135596801.0, 1e20, 0.0]),
)
_strings = st.one_of(st.text(max_size=30), st.sampled_from(["", " ", "\u0000", "x" * 70_000]))
_leaves = st.one_of(st.none(), st.booleans(), hostile_numbers, _strings, hostile_times)
json_values = st.recursive(
    _leaves,
    lambda children: st.one_of(st.lists(children, max_size=5),
                               st.dictionaries(st.text(max_size=12), children, max_size=5)),
    max_leaves=15,
)
sources = st.sampled_from([None, "segment", "ga4", "support", "canonical", "bogus", " GA4 "])


_nodes = nodes


@st.composite
def mutated(draw: st.DrawFn, source: str | None = None) -> tuple[str, Any]:
    """(format, payload): a valid payload of ``source`` (any if None) with up to three of its
    values replaced by hostile JSON, deleted, or the payload left as it is."""
    fmt = source or draw(st.sampled_from(["segment", "ga4", "support", "canonical"]))
    pool = templates()[fmt]
    payload = _dec.decode(pool[draw(st.integers(0, len(pool) - 1))].raw)
    if type(payload) is dict and draw(st.integers(0, 9)) == 0:
        # The tag every adapter dispatches on, e.g. ``"type": [1,2]`` (unhashable).
        payload["type" if fmt != "ga4" else "events"] = draw(json_values)
    for _ in range(draw(st.integers(0, 3))):
        nodes = _nodes(payload)
        if not nodes:
            break
        c, k = nodes[draw(st.integers(0, len(nodes) - 1))]
        if draw(st.booleans()):
            c[k] = draw(json_values)
        elif type(c) is dict:
            del c[k]
        else:
            c.pop(k)
    return fmt, payload


@st.composite
def raw_inputs(draw: st.DrawFn) -> tuple[bytes, str | None]:
    """(bytes, fw-source header): mutated payloads, as bytes, sometimes spliced, truncated,
    made deep or not UTF-8; or arbitrary bytes."""
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(st.binary(max_size=200)), draw(sources)
    fmt, payload = draw(mutated())
    raw = _enc.encode(payload)
    source = draw(st.one_of(st.just(fmt), sources))
    if kind == 1:  # truncated
        raw = raw[:draw(st.integers(0, len(raw)))]
    elif kind == 2:  # bytes spliced in
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(st.sampled_from([b"\xff", b"\xed\xa0\x80", b"\\ud800", b"\x00",
                                               b"[" * 1200, b'{"a":' * 1500])) + raw[at:]
    elif kind == 3:  # deep nesting in place of a value
        depth = draw(st.sampled_from([999, 1000, 1001, 3000]))
        marker = _enc.encode("\x00DEEP\x00")
        nodes = _nodes(payload)
        if nodes:
            c, k = nodes[draw(st.integers(0, len(nodes) - 1))]
            c[k] = "\x00DEEP\x00"
            raw = _enc.encode(payload).replace(marker, b"[" * depth + b"]" * depth, 1)
    return raw, source


_FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "success": st.booleans(), "converted": st.booleans(),
    "action": st.sampled_from(["add", "remove", "view", "created", "updated", "solved",
                               "started", "renewed", "cancelled", "expired"]),
    "traits": st.dictionaries(st.text(max_size=5), json_values, max_size=4),
    "friction": st.dictionaries(st.sampled_from(["rage_click", "dead_click", "x"]),
                                st.integers(0, 5) | hostile_numbers, max_size=3),
    "tags": st.lists(st.text(max_size=8), max_size=4),
}
_NUMERIC = {"x", "y", "price", "cart_value", "revenue", "amount", "mrr", "lcp_ms", "inp_ms",
            "cls", "ttfb_ms", "seconds", "step", "status_code", "quantity", "abandoned_step"}


@st.composite
def canonical_event(draw: st.DrawFn, base: float = BASE) -> dict[str, Any]:
    """One canonical event as a JSON object: every field present or not, numbers ordinary
    or hostile, the time near ``base`` or anywhere."""
    kind = draw(st.sampled_from(sorted(EVENT_TYPES)))
    e: dict[str, Any] = {
        "type": kind,
        "id": draw(st.text(min_size=1, max_size=8)),
        "time": draw(st.one_of(st.floats(base, base + 7200), st.floats(base, base + 7200),
                               st.floats(allow_nan=False, allow_infinity=False),
                               st.sampled_from([1e300, 253402300800.0, -62135596801.0]))),
        "session_id": draw(st.sampled_from(SESSIONS)),
    }
    if draw(st.booleans()):
        e["customer_id"] = draw(st.sampled_from(["c1", "c2"]))
    for name in EVENT_TYPES[kind].__struct_fields__:
        if name in e or not draw(st.booleans()):
            continue
        if name in _FIELD_VALUES:
            e[name] = draw(_FIELD_VALUES[name])
        elif name in _NUMERIC:
            e[name] = draw(st.one_of(st.integers(0, 5), st.floats(0, 500), hostile_numbers))
        else:
            e[name] = draw(st.one_of(st.text(max_size=10), st.just("x" * 50_000)))
    return e


canonical_events = st.lists(canonical_event(), min_size=1, max_size=25)
