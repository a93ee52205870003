"""Hostile inputs for frictionwatch's edge, deterministic with a seed (issue 13, item 3).

Importable from the tests (``tests`` is on pytest's ``pythonpath``) and from ``bench/fuzz.py``.
Two sources of inputs, each an ``Input(kind, raw, source)``: the bytes of one ingest message
(or HTTP body) and the ``fw-source`` header, None when the format is left to detection.

- ``HOSTILE``: one generator per class of the issue: huge strings in each field, extreme
  numbers in each numeric field, times outside ``datetime``'s range and far from now, deep
  nesting, wrong JSON types, huge batches and batch-level contexts, unmapped events in bulk,
  invalid UTF-8, truncated JSON, empty bodies, plus the issue's own reproducers (``EXEMPLARS``);
- mutations of valid Segment, GA4, help-desk and canonical payloads (from the simulator and
  ``tests/data/adapters``): fields dropped, duplicated, retyped, swapped, set hostile, and
  bytes spliced.

>>> gen = FuzzGen(seed=1, sim_seconds=5)
>>> a = [(i.kind, i.raw) for i in gen.inputs(50)]
>>> a == [(i.kind, i.raw) for i in FuzzGen(seed=1, sim_seconds=5).inputs(50)]
True
>>> len(a)
50
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from detectors.events import EVENT_TYPES, encode_batch, encode_event
from streams.adapters import detect
from streams.adapters.base import AdapterError
from streams.normalize import normalize
from streams.sim import SimConfig, Simulator

__all__ = ["DATA", "EXEMPLARS", "SANE", "FuzzGen", "Input", "Template", "accounted", "corpus",
           "deep", "event_problem", "exemplars", "finite", "items_of", "model_weights_finite",
           "today"]

DATA = Path(__file__).resolve().parent / "data" / "adapters"

_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder()


@dataclass(frozen=True, slots=True)
class Input:
    """One generated input: its class (for the figures), its bytes and its source header."""

    kind: str
    raw: bytes
    source: str | None


@dataclass(frozen=True, slots=True)
class Template:
    """A valid payload to mutate: its format and its JSON bytes (decoded afresh per use, so
    mutations never touch the shared original)."""

    source: str
    raw: bytes


def today() -> float:
    """Midnight UTC of today: simulated traffic near now, so a time window around now (the
    bounds at the edge) still accepts the valid part, and the run is the same all day."""
    return float(int(time.time()) // 86400 * 86400)


def _test_data() -> list[Template]:
    out = []
    for path in sorted(DATA.glob("*.json")):
        source = next((name for name in ("segment", "ga4", "snowplow", "posthog")
                       if path.name.startswith(name)), "support")
        payload = _dec.decode(path.read_bytes())
        if type(payload) is list:  # a list of calls or events: each, and the whole list
            out += [Template(source, _enc.encode(item)) for item in payload]
        out.append(Template(source, _enc.encode(payload)))
    return out


def corpus(seed: int = 0, sim_seconds: float = 120.0, start: float | None = None
           ) -> list[Template]:
    """Valid payloads: the adapters' test data, ``sim_seconds`` of simulated traffic (Segment,
    GA4 and help-desk webhooks) and the canonical events they adapt to (single and batched)."""
    start = today() if start is None else start
    sim = Simulator(SimConfig(seed=seed, events_per_second=100.0, duration=sim_seconds,
                              support_share=0.5, start=start))
    out = _test_data()
    canonical: list[Any] = []
    for msg in sim.messages():
        raw = msg.encode()
        out.append(Template(msg.source, raw))
        norm = normalize(raw, msg.source, max_bytes=1 << 20, max_events=1000, now=start)
        for evs in (*norm.web.values(), *norm.support.values()):
            canonical += evs
    for i, e in enumerate(canonical):
        out.append(Template("canonical", encode_event(e)))
        if i % 10 == 0:  # a few batches of one session's consecutive events
            batch = [x for x in canonical[i:i + 5] if x.session_id == e.session_id]
            out.append(Template("canonical", encode_batch(batch)))
    return out


def deep(depth: int, leaf: bytes = b"1") -> bytes:
    """JSON nested ``depth`` arrays deep (RecursionError bait)."""
    return b"[" * depth + leaf + b"]" * depth


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _segment_call(i: int, sid: str, at: float, **props: Any) -> dict[str, Any]:
    return {"type": "track", "event": "Product Clicked", "messageId": f"m-{sid}-{i}",
            "anonymousId": sid, "timestamp": _iso(at),
            "properties": {"x": 1, "y": 2, **props}}


def exemplars(start: float | None = None) -> list[Input]:
    """The issue's reproducers, one input each (the crash inputs, silent loss, poisoned state,
    amplification, the unhashable type), in their own words."""
    start = today() if start is None else start
    iso = _iso(start)
    big = "x" * 400_000
    sid = "anon-exemplar"
    clicks = [{"type": "track", "event": "Element Clicked", "messageId": f"m-big-{i}",
               "anonymousId": sid, "timestamp": iso,
               "properties": {"x": 10, "y": 10, "target": big}} for i in range(3)]
    out = [Input("exemplar:big_target", _enc.encode(c), "segment") for c in clicks]
    out.append(Input("exemplar:step_1e308", _enc.encode(
        {"type": "track", "event": "Checkout Step Viewed", "messageId": "m-step",
         "anonymousId": "anon-step", "timestamp": iso,
         "properties": {"step": 1e308}}), "segment"))
    out.append(Input("exemplar:year_10000", _enc.encode(
        {"type": "track", "event": "Checkout Step Viewed", "messageId": "m-y10k",
         "anonymousId": "anon-y10k", "timestamp": "9999-12-31T23:59:59-23:59",
         "properties": {"step": 2}}), "segment"))
    valid = [_segment_call(i, "anon-deep", start) for i in range(200)]
    nested = _enc.encode({"batch": valid}).replace(
        b'"batch":[', b'"batch":[{"type":"track","event":"x","properties":' + deep(1200)
        + b'},', 1)
    out.append(Input("exemplar:deep_batch", nested, None))
    for i in range(2):
        out.append(Input("exemplar:revenue_1e308", _enc.encode(
            {"type": "track", "event": "Order Completed", "messageId": f"m-rev-{i}",
             "anonymousId": "anon-rev", "userId": "cust-rev", "timestamp": iso,
             "properties": {"order_id": f"o{i}", "revenue": 1e308}}), "segment"))
    micros = int(start * 1e6)
    out.append(Input("exemplar:ga4_unmapped_bulk", _enc.encode(
        {"client_id": "1.2", "timestamp_micros": micros, "extra": "y" * 400_000,
         "events": [{"name": f"unmapped_{i}", "params": {"session_id": "s"}}
                    for i in range(1000)]}), "ga4"))
    calls = [_segment_call(i, "anon-ctx", start) for i in range(500)]
    out.append(Input("exemplar:segment_big_context", _enc.encode(
        {"batch": calls, "context": {"page": {"url": "https://x.example/" + "u" * 380_000}}}),
        "segment"))
    out.append(Input("exemplar:type_list", _enc.encode(
        {"type": [1, 2], "event": "Product Clicked", "anonymousId": "a"}), "segment"))
    return out


#: Names of the exemplars, for reports.
EXEMPLARS = tuple(sorted({i.kind for i in exemplars(0.0)}))


# --- invariants (shared by the property tests and bench/fuzz.py) ---------------------------


def items_of(raw: bytes, source: str | None) -> int:
    """How many items (calls, events) an input holds at its top level, as its adapter splits
    it: a batch's length, else 1."""
    try:
        payload = _dec.decode(raw)
        fmt = source.strip().lower() if source else detect(payload)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError, AdapterError):
        return 1
    if type(payload) is list:
        return len(payload)
    if type(payload) is dict:
        if fmt in ("segment", "posthog") and type(payload.get("batch")) is list:
            return len(payload["batch"])
        if fmt == "ga4" and type(payload.get("events")) is list:
            return len(payload["events"])
    return 1


def accounted(accepted: int, dead: int, items: int) -> bool:
    """Normalize answered for the input: some event or dead letter, and when it accepted part
    of a batch, an answer for every item (nothing dropped in silence)."""
    return accepted + dead >= 1 and (accepted == 0 or accepted + dead >= items)


def finite(v: Any) -> bool:
    """Whether ``v`` is a number a float holds, and finite."""
    try:
        return math.isfinite(float(v))
    except (OverflowError, ValueError, TypeError):
        return False


#: No field of a canonical event (money, steps, coordinates, durations, Web Vitals, counts)
#: has a sensible value beyond a quadrillion; what is past it (1e308, a 309-digit step) is
#: what overflows the models' scalers and sums (the issue's crash inputs).
SANE = 1e15


def _number_problem(name: str, v: Any) -> str | None:
    if not finite(v):
        return f"event_nonfinite:{name}"
    if abs(float(v)) > SANE:
        return f"event_out_of_range:{name}"
    return None


def event_problem(e: Any) -> str | None:
    """Why an accepted event is unfit downstream: a non-finite, unrepresentable or absurd
    number (beyond ``SANE``), or a time ``datetime`` cannot hold. None if fit."""
    for name in e.__struct_fields__:
        v = getattr(e, name)
        if type(v) in (int, float) and name != "time":
            problem = _number_problem(name, v)
            if problem:
                return problem
        if type(v) is dict:
            for x in v.values():
                if type(x) in (int, float):
                    problem = _number_problem(name, x)
                    if problem:
                        return problem
    try:
        datetime.fromtimestamp(e.time, UTC)
    except (OverflowError, ValueError, OSError):
        return "event_time_out_of_range"
    return None


def model_weights_finite(model: Any) -> bool:
    """Whether a River model's learned numbers (linear weights, scaler statistics) are all
    finite (NaN or inf there poisons every later score and the checkpoint)."""
    steps = model.steps.values() if hasattr(model, "steps") else [model]
    for step in steps:
        for attr in ("weights", "means", "vars", "_weights"):
            values = getattr(step, attr, None)
            if isinstance(values, dict) and not all(finite(v) for v in values.values()):
                return False
        intercept = getattr(step, "intercept", None)
        if type(intercept) is float and not finite(intercept):
            return False
    return True


# --- hostile values -----------------------------------------------------------------------

#: Numbers as JSON text (some are not representable as a float or an int64).
_NUMBERS = (b"1e308", b"-1e308", b"1.7976931348623157e308", b"1" + b"0" * 309,
            b"-" + b"9" * 400, b"18446744073709551616", b"-9223372036854775809", b"5e-324",
            b"-0.0", b"0", b"-1", b"1e300", b"123456789012345678901234567890.5")
#: Times a parser may take but ``datetime`` cannot hold, or far from now.
_TIMES = ("9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59Z",
          "0001-01-01T00:00:00Z", "1970-01-01T00:00:00Z", "2999-01-01T00:00:00Z",
          "1900-01-01T00:00:00Z", "+275760-09-13T00:00:00Z", "2024-02-30T00:00:00Z",
          "2026-13-01", "nan", "")
_TIME_NUMBERS = (1e300, -1e300, 253402300800.0, -62135596801.0, 1e20, -1e20, 0.0,
                 4102444800.0)


_SOURCES = ("segment", "ga4", "support", "canonical", "snowplow", "posthog")
_SOURCE_WEIGHTS = (35, 25, 15, 25, 5, 5)



def nodes(payload: Any) -> list[tuple[Any, Any]]:
    """(container, key or index) of every value in ``payload``, without recursion."""
    out: list[tuple[Any, Any]] = []
    stack = [payload]
    while stack:
        node = stack.pop()
        items = node.items() if type(node) is dict else enumerate(node) \
            if type(node) is list else ()
        for k, v in items:
            out.append((node, k))
            if type(v) in (dict, list):
                stack.append(v)
    return out

class FuzzGen:
    """Hostile inputs, deterministic with ``seed``.

    Parameters
    ----------
    seed
        Everything random comes from it (the simulator's traffic too).
    sim_seconds
        Simulated traffic the templates come from.
    start
        Event time of the simulated traffic (default: today, ``today()``).
    huge
        Largest huge string or batch; the default is the issue's sizes (400 KB strings, 1,000
        events). Smaller keeps a run fast where the point is breadth, not size.
    sessions
        Session ids mutated canonical events and new Segment calls draw from: a bounded set, so
        a long run keeps bounded state.
    only
        Only these classes (names as in ``classes``); None: all.
    """

    def __init__(self, seed: int = 0, sim_seconds: float = 120.0, start: float | None = None,
                 huge: int = 400_000, sessions: int = 2000, only: set[str] | None = None
                 ) -> None:
        self.seed = seed
        self.start = today() if start is None else start
        self.rng = random.Random(seed)
        self.templates = corpus(seed, sim_seconds, self.start)
        self.by_source: dict[str, list[Template]] = {}
        for t in self.templates:
            self.by_source.setdefault(t.source, []).append(t)
        self.huge = huge
        self.sessions = [f"fz-{seed}-{i}" for i in range(sessions)]
        # (weight, class): mutations of valid payloads dominate, as random hostile traffic
        # would; the large classes are rare so a million inputs take minutes, not hours.
        self.classes: list[tuple[float, str, Callable[[], Input]]] = [
            (30, "valid", self.valid),
            (25, "mutate", self.mutate),
            (8, "bytes", self.bytes_mutation),
            (6, "number", self.extreme_number),
            (6, "time", self.bad_time),
            (6, "wrong_type", self.wrong_type),
            (2, "huge_string", self.huge_string),
            (3, "truncated", self.truncated),
            (3, "invalid_utf8", self.invalid_utf8),
            (2, "empty", self.empty),
            (2, "deep", self.deep_nesting),
            (2, "canonical_random", self.canonical_random),
            (0.3, "huge_batch", self.huge_batch),
            (0.2, "unmapped_bulk", self.unmapped_bulk),
            (0.2, "huge_context", self.huge_context),
        ]
        if only is not None:
            self.classes = [c for c in self.classes if c[1] in only]
            if not self.classes:
                raise ValueError(f"no input class among {sorted(only)}")
        self._cum: list[float] = []
        total = 0.0
        for w, _, _ in self.classes:
            total += w
            self._cum.append(total)

    # --- the stream --------------------------------------------------------------------------

    def inputs(self, n: int, with_exemplars: bool = False) -> Iterator[Input]:
        """``n`` inputs; with ``with_exemplars`` the issue's reproducers come first."""
        done = 0
        if with_exemplars:
            for x in exemplars(self.start)[:n]:
                done += 1
                yield x
        rng, cum, classes = self.rng, self._cum, self.classes
        total = cum[-1]
        while done < n:
            r = rng.random() * total
            i = 0
            while cum[i] < r:
                i += 1
            done += 1
            yield classes[i][2]()

    # --- helpers -------------------------------------------------------------------------------

    def _template(self, source: str | None = None) -> tuple[Template, Any]:
        if source is None:  # by format first: help-desk webhooks are rare in the traffic
            source = self.rng.choices(_SOURCES, _SOURCE_WEIGHTS)[0]
        pool = self.by_source[source]
        t = pool[self.rng.randrange(len(pool))]
        return t, _dec.decode(t.raw)

    def _source(self, t: Template) -> str | None:
        """The header as producers send it: mostly right, sometimes absent (detect)."""
        return None if self.rng.random() < 0.3 else t.source

    def _nodes(self, payload: Any) -> list[tuple[Any, Any]]:
        return nodes(payload)

    def _leaves(self, payload: Any, kinds: tuple[type, ...]) -> list[tuple[Any, Any]]:
        return [(c, k) for c, k in self._nodes(payload) if type(c[k]) in kinds]

    def _set_somewhere(self, kinds: tuple[type, ...], value: Callable[[Any], Any],
                       kind: str) -> Input:
        """A template with one value of type ``kinds`` (any value if none) set to
        ``value(old)``."""
        t, payload = self._template()
        spots = self._leaves(payload, kinds) or self._nodes(payload)
        if spots:
            c, k = spots[self.rng.randrange(len(spots))]
            c[k] = value(c[k])
        return Input(kind, _enc.encode(payload), self._source(t))

    def _hostile_value(self) -> Any:
        rng = self.rng
        choice = rng.randrange(9)
        if choice == 0:
            return "s" * rng.choice((0, 1, 1000, 70_000))
        if choice == 1:
            return float(_dec.decode(rng.choice(_NUMBERS[:3])))
        if choice == 2:
            return 10 ** rng.choice((19, 30, 309))
        if choice == 3:
            return rng.choice(([], {}, [1, 2], {"a": [1]}, None, True, False))
        if choice == 4:
            return rng.choice(_TIMES)
        if choice == 5:
            return rng.choice(_TIME_NUMBERS)
        if choice == 6:
            return "\u0000\ud7ff\uffff\U0010ffff" * rng.randrange(1, 50)
        if choice == 7:
            return rng.choice(("1e308", "NaN", "Infinity", "-inf", "0x10", "  12 "))
        return [rng.random()] * rng.randrange(1, 200)

    # --- classes ---------------------------------------------------------------------------

    def valid(self) -> Input:
        t, _ = self._template()
        return Input("valid", t.raw, self._source(t))

    def mutate(self) -> Input:
        """Structural mutations of a valid payload: drop, duplicate, retype, swap, hostile
        value; one to four of them."""
        t, payload = self._template()
        rng = self.rng
        for _ in range(rng.randrange(1, 5)):
            nodes = self._nodes(payload)
            if not nodes:
                break
            c, k = nodes[rng.randrange(len(nodes))]
            op = rng.randrange(6)
            if op == 0:  # drop
                if type(c) is dict:
                    del c[k]
                else:
                    c.pop(k)
            elif op == 1:  # duplicate (a list item twice, or a value under another key)
                if type(c) is list:
                    c.append(c[k])
                else:
                    c[f"{k}_dup"] = c[k]
            elif op == 2:  # retype
                c[k] = self._hostile_value()
            elif op == 3:  # swap two scalar values (a container could end up inside itself)
                c2, k2 = nodes[rng.randrange(len(nodes))]
                if type(c[k]) not in (dict, list) and type(c2[k2]) not in (dict, list):
                    c[k], c2[k2] = c2[k2], c[k]
            elif op == 4:  # change a string a little
                if type(c[k]) is str:
                    s = c[k]
                    i = rng.randrange(len(s) + 1)
                    c[k] = s[:i] + rng.choice(("'", '"', "\\", "\u00e9", "%00", "", "0")) + s[i:]
            else:  # a session id from the bounded pool (two sources' events meet)
                if type(c[k]) is str:
                    c[k] = rng.choice(self.sessions)
        return Input("mutate", _enc.encode(payload), self._source(t))

    def bytes_mutation(self) -> Input:
        """Byte-level: splice a chunk of another payload in, flip bytes, duplicate a slice."""
        t, _ = self._template()
        raw = bytearray(t.raw)
        rng = self.rng
        for _ in range(rng.randrange(1, 4)):
            op = rng.randrange(4)
            i = rng.randrange(len(raw) + 1)
            if op == 0:
                other = self.templates[rng.randrange(len(self.templates))].raw
                j = rng.randrange(len(other) + 1)
                raw[i:i] = other[j:j + rng.randrange(1, 64)]
            elif op == 1 and raw:
                raw[min(i, len(raw) - 1)] = rng.randrange(256)
            elif op == 2:
                raw[i:i] = raw[i:i + rng.randrange(1, 32)]
            else:
                del raw[i:i + rng.randrange(1, 16)]
        return Input("bytes", bytes(raw), self._source(t))

    def extreme_number(self) -> Input:
        """A numeric field (any field if none) as a number no float or int64 holds well."""
        t, payload = self._template()
        spots = self._leaves(payload, (int, float)) or self._nodes(payload)
        marker = "\x00NUMBER\x00"
        if spots:
            c, k = spots[self.rng.randrange(len(spots))]
            c[k] = marker
        raw = _enc.encode(payload).replace(_enc.encode(marker), self.rng.choice(_NUMBERS), 1)
        return Input("number", raw, self._source(t))

    def bad_time(self) -> Input:
        """The payload's time (ISO string or epoch number) out of range or far from now."""
        t, payload = self._template()
        rng = self.rng
        for c, k in self._nodes(payload):
            if k in ("timestamp", "sentAt", "receivedAt", "originalTimestamp", "created_at",
                     "updated_at", "time", "timestamp_micros"):
                v = c[k]
                if k == "timestamp_micros":
                    c[k] = rng.choice((10 ** 20, -(10 ** 20), 2 ** 63, 253402300800 * 10 ** 6))
                elif type(v) in (int, float):
                    c[k] = rng.choice(_TIME_NUMBERS)
                else:
                    c[k] = rng.choice(_TIMES)
        return Input("time", _enc.encode(payload), self._source(t))

    def wrong_type(self) -> Input:
        """One field as another JSON type: a list where a string goes, ``"type": [1,2]``..."""
        rng = self.rng
        t, payload = self._template()
        nodes = self._nodes(payload)
        if nodes and rng.random() < 0.8:
            c, k = nodes[rng.randrange(len(nodes))]
            old = c[k]
            c[k] = rng.choice(([1, 2], {"a": 1}, None, True, 1, 1.5, "s", [], {},
                               [old], {"v": old}))
        elif type(payload) is dict:
            payload["type"] = [1, 2]
        return Input("wrong_type", _enc.encode(payload), self._source(t))

    def huge_string(self) -> Input:
        """One string field (any field) as a huge string; sometimes over the body limit."""
        size = self.rng.choice((1000, 10_000, 100_000, self.huge, int(self.huge * 1.4)))
        return self._set_somewhere((str,), lambda _: "h" * size, "huge_string")

    def truncated(self) -> Input:
        t, _ = self._template()
        return Input("truncated", t.raw[:self.rng.randrange(len(t.raw))], self._source(t))

    def invalid_utf8(self) -> Input:
        t, _ = self._template()
        raw = t.raw
        i = self.rng.randrange(len(raw) + 1)
        bad = self.rng.choice((b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80",
                               b"\\ud800", b"\\udfff\\ud800", b"\x00"))
        # Inside a string value if there is one near: a quote just before the cut.
        j = raw.find(b'"', i)
        at = j + 1 if j >= 0 else i
        return Input("invalid_utf8", raw[:at] + bad + raw[at:], self._source(t))

    def empty(self) -> Input:
        raw = self.rng.choice((b"", b" ", b"\n\t ", b"{}", b"[]", b"null", b"0", b'""', b"[{}]",
                               b'{"batch":[]}', b'{"client_id":"1","events":[]}', b"[[]]",
                               b'{"ticket":{}}', b"\xef\xbb\xbf{}"))
        source = self.rng.choice((None, "segment", "ga4", "support", "canonical", "bogus",
                                  "SEGMENT "))
        return Input("empty", raw, source)

    def deep_nesting(self) -> Input:
        """Arrays or objects 1,000+ deep: the whole body, or one field of a valid one."""
        rng = self.rng
        depth = rng.choice((1000, 1500, 5000, 20_000))
        t, payload = self._template()
        if rng.random() < 0.3:
            nested = deep(depth)
            if rng.random() < 0.5:
                nested = b'{"a":' * depth + b"1" + b"}" * depth
            return Input("deep", nested, self._source(t))
        marker = "\x00DEEP\x00"
        nodes = self._nodes(payload)
        if nodes:
            c, k = nodes[rng.randrange(len(nodes))]
            c[k] = marker
        raw = _enc.encode(payload).replace(_enc.encode(marker), deep(depth), 1)
        return Input("deep", raw, self._source(t))

    def canonical_random(self) -> Input:
        """Canonical events of any type with random, often hostile, field values."""
        rng = self.rng
        events = []
        for _ in range(rng.randrange(1, 6)):
            kind = rng.choice(list(EVENT_TYPES))
            e: dict[str, Any] = {"type": kind, "id": f"c{rng.randrange(10 ** 9)}",
                                 "time": self.start + rng.uniform(0, 3600),
                                 "session_id": rng.choice(self.sessions)}
            if rng.random() < 0.5:
                e["customer_id"] = f"cust-{rng.randrange(500)}"
            for f in EVENT_TYPES[kind].__struct_fields__:
                if f not in e and rng.random() < 0.5:
                    e[f] = self._canonical_value(f)
            if rng.random() < 0.3:
                field = rng.choice(list(e))
                e[field] = self._hostile_value()
            events.append(e)
        payload: Any = events if len(events) > 1 or rng.random() < 0.5 else events[0]
        return Input("canonical_random", _enc.encode(payload),
                     rng.choice(("canonical", "canonical", None)))

    def _canonical_value(self, field: str) -> Any:
        rng = self.rng
        if field in ("success", "converted"):
            return rng.random() < 0.5
        if field == "action":
            return rng.choice(("add", "remove", "view", "created", "updated", "solved",
                               "started", "renewed", "cancelled", "expired"))
        if field in ("step", "status_code", "quantity", "abandoned_step"):
            return rng.choice((1, 2, 3, 4, 0, -1, 500, 2 ** 62))
        if field in ("traits", "friction"):
            return {f"k{i}": rng.randrange(5) for i in range(rng.randrange(4))}
        if field == "tags":
            return [f"t{i}" for i in range(rng.randrange(4))]
        if field in ("x", "y", "price", "cart_value", "revenue", "amount", "mrr", "lcp_ms",
                     "inp_ms", "cls", "ttfb_ms", "seconds"):
            return rng.choice((0.0, 12.5, 99.99, 1e6, -5.0, 1e308, 3000.0))
        return rng.choice(("a", "#pay", "/checkout", "card_declined", "x" * 100))

    def huge_batch(self) -> Input:
        """A Segment batch or list, or a canonical array, of 500 to 3,000 events."""
        rng = self.rng
        n = rng.choice((500, 1000, 1001, 3000))
        t, call = self._template("segment")
        items = [call] * n if type(call) is dict else call * (n // max(len(call), 1) + 1)
        if rng.random() < 0.5:
            return Input("huge_batch", _enc.encode({"batch": items[:n]}), "segment")
        canon = [_dec.decode(self._template("canonical")[0].raw) for _ in range(5)]
        canon = [c for c in canon if type(c) is dict] or [{"type": "page_view"}]
        return Input("huge_batch", _enc.encode((canon * n)[:n]), rng.choice(("canonical", None)))

    def unmapped_bulk(self) -> Input:
        """A GA4 payload of many unmapped events beside a large extra field."""
        rng = self.rng
        t, payload = self._template("ga4")
        payload["extra"] = "e" * rng.choice((1000, 50_000, self.huge))
        n = rng.choice((50, 200, 1000))
        payload["events"] = [{"name": f"unmapped_{i}", "params": {"session_id": "s"}}
                             for i in range(n)]
        return Input("unmapped_bulk", _enc.encode(payload), "ga4")

    def huge_context(self) -> Input:
        """A Segment batch whose batch-level context holds a large URL."""
        rng = self.rng
        sid = rng.choice(self.sessions)
        calls = [_segment_call(i, sid, self.start + i) for i in range(rng.choice((10, 100, 500)))]
        url = "https://x.example/" + "u" * rng.choice((1000, 50_000, int(self.huge * 0.95)))
        return Input("huge_context", _enc.encode({"batch": calls, "context": {"page": {
            "url": url}}}), "segment")
