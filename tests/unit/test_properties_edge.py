"""Properties of the edge (issue 13, item 3): every adapter and ``normalize``, for any input.

- ``normalize`` never raises, whatever the bytes and the ``fw-source`` header;
- every input is answered for: accepted events plus dead letters cover each item;
- every accepted event encodes onto its topic and decodes back equal
  (``detectors.events.decode_batch``), holds only finite numbers and a time ``datetime`` can
  represent;
- dead letters stay bounded: each within the body limit (base64) plus its own fields, all of
  one input within twice its size plus those fields (no copies of the rest of a payload);
- canonical messages stay in proportion to the input (a batch-level context bounded once).
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from fuzzgen import accounted, event_problem, exemplars, items_of
from fuzzstrategies import BASE, PROFILE, json_values, mutated, raw_inputs, sources
from hypothesis import given
from hypothesis import strategies as st

from detectors.events import check_batch, decode_batch, encode_batch
from streams.adapters import adapt
from streams.adapters.base import AdapterError
from streams.deadletter import encode_dead_letter
from streams.normalize import Normalized, normalize

MAX_BYTES = 512 * 1024
MAX_EVENTS = 1000
#: A record's own fields (reason, detail, stage, topic, offsets): not copies of the input.
RECORD_SLACK = 8192

_enc = msgspec.json.Encoder()


def run(raw: bytes, source: str | None) -> Normalized:
    return normalize(raw, source, max_bytes=MAX_BYTES, max_events=MAX_EVENTS, now=BASE,
                     topic="fw.ingest", partition=0, offset=1)


def check_events(events: list[Any]) -> None:
    assert decode_batch(encode_batch(events)) == events
    for e in events:
        assert event_problem(e) is None, (event_problem(e), e)


def check_normalized(raw: bytes, source: str | None, out: Normalized) -> None:
    accepted = [e for evs in (*out.web.values(), *out.support.values()) for e in evs]
    items = items_of(raw, source) if accepted else 1
    assert accounted(len(accepted), len(out.dead), items), (len(accepted), len(out.dead), items)
    for evs in (*out.web.values(), *out.support.values()):
        check_events(evs)
        # One canonical message per key: in proportion to what came in.
        assert len(encode_batch(evs)) <= 4 * len(raw) + RECORD_SLACK * len(evs)
    sizes = [len(encode_dead_letter(d)) for d in out.dead]
    for size in sizes:
        assert size <= MAX_BYTES * 4 // 3 + RECORD_SLACK
    assert sum(sizes) <= 2 * len(raw) + RECORD_SLACK * len(sizes)


@PROFILE
@given(raw_inputs())
def test_normalize_answers_for_any_input(case: tuple[bytes, str | None]) -> None:
    raw, source = case
    check_normalized(raw, source, run(raw, source))


@PROFILE
@given(st.binary(max_size=300), sources)
def test_normalize_any_bytes(raw: bytes, source: str | None) -> None:
    check_normalized(raw, source, run(raw, source))


@PROFILE
@given(json_values, sources)
def test_normalize_any_json(value: Any, source: str | None) -> None:
    raw = _enc.encode(value)
    check_normalized(raw, source, run(raw, source))


@pytest.mark.parametrize("case", exemplars(BASE), ids=lambda i: i.kind)
def test_normalize_issue_exemplars(case: Any) -> None:
    """The issue's reproducers (crash inputs, deep nesting, inf revenue, amplification, an
    unhashable type), each answered for with bounded, decodable output."""
    check_normalized(case.raw, case.source, run(case.raw, case.source))
    out = run(case.raw, case.source)
    assert not any(d.reason == "processing_error" for d in out.dead), out.dead[0].detail


@pytest.mark.parametrize("fmt", ["segment", "ga4", "support", "canonical"])
@PROFILE
@given(data=st.data())
def test_adapter_raises_only_adapter_error(fmt: str, data: st.DataObject) -> None:
    """Each adapter, on its own format mutated or on any JSON: an ``AdapterError`` for a
    payload it cannot use, else events and rejections that answer for every item."""
    if data.draw(st.booleans()):
        _, payload = data.draw(mutated(fmt))
    else:
        payload = data.draw(json_values)
    try:
        adapted = adapt(payload, fmt)
    except AdapterError as exc:
        assert exc.reason and len(exc.detail) < 10_000
        return
    raw = _enc.encode(payload)
    items = items_of(raw, fmt)
    n = len(adapted.events) + len(adapted.rejected)
    assert n >= 1 and (not adapted.events or n >= items)
    # Adapters build events unchecked; normalize refuses those ``check_batch`` finds out of
    # bounds. What it lets through must hold every invariant.
    refused = check_batch(adapted.events)
    check_events([e for i, e in enumerate(adapted.events) if i not in refused])
