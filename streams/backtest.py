"""Offline backtest: the worker's own core (normalize, then the detection engine) over a JSONL
file, as fast as one core allows.

Each line is one message, as on the ingest topic: a payload in any supported format, or a
``frictionwatch simulate --out`` envelope ``{"time", "source", "key", "payload"}`` (its payload
is handed on as the raw bytes it was, never re-encoded). Bad lines become dead letters, as in
the worker, and are counted. Canonical events, one per line (what ``--save-canonical``
writes), take a fast path: a whole block of lines decodes into typed events in one call.

>>> import io, json
>>> from detectors.engine import Engine
>>> from detectors.session import SessionProcessor
>>> lines = [json.dumps({"type": "page_view", "id": "e1", "time": 1.0, "session_id": "s"}),
...          "not json"]
>>> res = run(io.BytesIO("\\n".join(lines).encode()), Engine(SessionProcessor()))
>>> res.messages, res.events, res.dead, len(res.outputs.outcomes)
(2, 1, 1, 1)
"""

from __future__ import annotations

import gc
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import msgspec

from detectors.engine import Engine, Outputs
from detectors.events import SUPPORT_EVENT_TYPES, decode_lines, encode_batch, encode_event
from detectors.incidents import IncidentPipeline
from streams.normalize import canonical_ok, normalize
from streams.privacy import DEFAULT as DEFAULT_PRIVACY
from streams.privacy import Privacy

__all__ = ["BacktestResult", "iter_messages", "run", "run_simulated"]


class _Envelope(msgspec.Struct):
    payload: msgspec.Raw
    source: str | None = None
    time: float | None = None
    key: str | None = None


_envelope = msgspec.json.Decoder(_Envelope)
_CANONICAL = b'{"type":"'


def iter_messages(lines: Iterable[bytes]) -> Iterator[tuple[bytes, str | None]]:
    """(raw message bytes, source or None) per non-blank line."""
    for line in lines:
        line = line.strip(b" \r\n")  # not tabs: a Snowplow TSV line may end in empty fields
        if not line.strip():
            continue
        if line.startswith(b'{"time"') or b'"payload"' in line[:200]:
            try:
                env = _envelope.decode(line)
                yield bytes(env.payload), env.source
                continue
            except (msgspec.ValidationError, msgspec.DecodeError):
                pass
        yield line, None


@dataclass
class BacktestResult:
    messages: int = 0
    events: int = 0
    dead: int = 0
    dead_reasons: Counter[str] = field(default_factory=Counter)
    outputs: Outputs = field(default_factory=Outputs)
    #: Journey incident documents (when run with an ``IncidentPipeline``).
    incidents: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def run(lines: IO[bytes], engine: Engine, *, max_bytes: int = 512 * 1024,
        max_events: int = 1000, progress: Callable[[int], None] | None = None,
        progress_every: int = 20_000, canonical_out: IO[bytes] | None = None,
        block_bytes: int = 1 << 20, incidents: IncidentPipeline | None = None,
        dead_out: IO[str] | None = None, privacy: Privacy = DEFAULT_PRIVACY) -> BacktestResult:
    """Feed every message to ``engine`` in file order; close it at the end (every session
    expires and reports its outcome).

    ``incidents`` (over ``engine``'s funnel) watches the journeys as the worker's incidents
    agent does, its windows closed as event time passes, block by block.
    ``canonical_out`` receives the adapted events as envelope lines (source "canonical"): the
    same backtest over that file skips the adapters and runs several times faster.
    ``dead_out`` receives one JSON line per dead letter: the message's number (its non-blank
    line), the reason, the detail and the start of the original as text.
    ``privacy`` redacts what normalize adapts, as in the worker; canonical lines taking the
    fast path are read as they are (the file is the user's own, and nothing here reaches
    Kafka).
    """
    res = BacktestResult()
    out = res.outputs
    feed = engine.feed
    feed_many = engine.feed_many
    support = frozenset(SUPPORT_EVENT_TYPES)
    args = (res, feed, max_bytes, max_events, canonical_out, dead_out, privacy)
    next_progress = progress_every
    # Hundreds of thousands of live session states make the cyclic collector's passes a large
    # cost (measured: about a third); nothing here builds cycles, so pause it.
    was_enabled = gc.isenabled()
    gc.disable()
    t0 = time.perf_counter()
    try:
        for block in _blocks(lines, block_bytes):
            # Canonical events, one per line (what --save-canonical writes): the whole block
            # decodes in one call. Anything else (another format, an array of events, a bad
            # line) fails the block's decode at once and goes line by line.
            events = _canonical_block(block) if block.startswith(_CANONICAL) else None
            if events is None:
                for raw, source in iter_messages(block.split(b"\n")):
                    _general(raw, source, *args)
            else:
                # Runs of session events go to the engine in one call each; the rest one by
                # one: support events (customer state is the worker's: counted) and events
                # normalize would reject (its generic path names the problem).
                odd = [i for i, e in enumerate(events)
                       if type(e) in support or not e.id or not e.session_id]
                start = 0
                split = None
                for i in odd:
                    feed_many(events[start:i], out)
                    start = i + 1
                    if canonical_ok([events[i]], max_events):  # a support event: count it
                        res.messages += 1
                        res.events += 1
                        continue
                    if split is None:  # the same lines decode_lines saw
                        split = [x for x in block.split(b"\n") if x.strip()]
                    _general(split[i], None, *args)
                feed_many(events[start:] if start else events, out)
                fast = len(events) - len(odd)
                res.messages += fast
                res.events += fast
            if incidents is not None:
                res.incidents += incidents.advance(engine.watermark)
            elif engine.funnel is not None:  # nobody reads the windows: keep memory bounded
                engine.funnel.close(engine.watermark)
            if progress is not None and res.messages >= next_progress:
                progress(res.messages)
                next_progress = res.messages + progress_every
        engine.close(out)
        if incidents is not None:
            res.incidents += incidents.finish()
    finally:
        if was_enabled:
            gc.enable()
    res.seconds = time.perf_counter() - t0
    return res


def _blocks(f: IO[bytes], size: int) -> Iterator[bytes]:
    """Whole lines, about ``size`` bytes at a time (fewer calls than a line at a time)."""
    rest = b""
    while True:
        data = f.read(size)
        if not data:
            break
        data = rest + data if rest else data
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            rest = data  # one line longer than a block: read on
            continue
        rest = data[cut:]
        yield data[:cut]
    if rest:
        yield rest


def _canonical_block(block: bytes) -> list[Any] | None:
    """Every non-blank line of ``block`` as one canonical event, or None if one is not."""
    try:
        return decode_lines(block)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None


def _general(raw: bytes, source: str | None, res: BacktestResult, feed: Callable[..., Any],
             max_bytes: int, max_events: int, canonical_out: IO[bytes] | None,
             dead_out: IO[str] | None, privacy: Privacy) -> None:
    res.messages += 1
    out = res.outputs
    norm = normalize(raw, source, max_bytes=max_bytes, max_events=max_events, now=0.0,
                     privacy=privacy)
    if norm.dead:
        res.dead += len(norm.dead)
        for d in norm.dead:
            res.dead_reasons[d.reason] += 1
            if dead_out is not None:
                dead_out.write(json.dumps({
                    "message": res.messages, "reason": d.reason, "detail": d.detail,
                    "original": d.original_bytes.decode(errors="replace"),
                    "truncated": d.truncated}) + "\n")
    for evs in norm.web.values():
        res.events += len(evs)
        feed(evs, None, out)
    for evs in norm.support.values():
        res.events += len(evs)  # customer state is the worker's; nothing to detect yet
    if canonical_out is not None:  # one line per message and session, as normalize split it
        for evs in (*norm.web.values(), *norm.support.values()):
            canonical_out.write((encode_event(evs[0]) if len(evs) == 1 else encode_batch(evs))
                                + b"\n")


def run_simulated(messages: Iterable[Any], engine: Engine, close: bool = True) -> Outputs:
    """Feed simulator messages (``streams.sim.SimMessage``) through normalize and
    ``engine`` in order, then close it: what the worker would have produced (benches).
    ``close=False`` leaves the sessions still open at the end of the data as they are (their
    outcomes are not known yet)."""
    out = Outputs()
    for msg in messages:
        norm = normalize(msg.encode(), msg.source, max_bytes=1 << 20, max_events=1000, now=0.0)
        for evs in norm.web.values():
            engine.feed(evs, None, out)
    if close:
        engine.close(out)
    return out
