"""Memory per active session: in the worker's heap and in RocksDB, with 100,000 live sessions.

    python bench/session_memory.py                   # 100,000 sessions
    python bench/session_memory.py --sessions 20000  # quicker

Sessions come from the simulator (``streams.sim``: realistic shops, mixed stages, the
default friction) and reach the engine the way they do in the worker: each raw payload is
normalized (adapters, bounds), encoded as the canonical message the ingest stage sends, decoded
again as the sessions agent does, and fed to one engine built like the worker's
(``streams.detection``: every detector, journeys, alerting, the abandonment model with
``--models``, the default). Feeding stops when the engine holds ``--sessions`` live ones (the
default 30-minute gap expires none by then, so ended-but-unexpired sessions count too, as in a
worker).

What counts, measured with ``tracemalloc`` (Python allocations, exact, no allocator noise):

- **engine**: what dropping the engine's sessions frees: each live ``SessionState`` with
  everything only it references (strings, dicts, lists, floats of its detectors' memory), its
  entry in ``Engine.sessions`` and its deadline and expiry heap entries. Objects shared with
  other sessions or with the detectors (interned names, learned element statistics, models)
  are not per session and are not freed, so not counted;
- **memory:// table**: with ``FRICTIONWATCH_STORE=memory://`` (the default) Faust's table
  also keeps each session's stored value in a dict: the encoded state (bytes) and its key.
  Measured by building that dict. With ``rocksdb://`` this is on disk instead (below).

RocksDB: the encoded states written under their keys to a database opened with Faust's own
options (``faust.stores.rocksdb.RocksDBOptions``, what ``store="rocksdb://"`` uses), flushed
and compacted: bytes on disk per session (SST files), and the mean stored value and key.
RocksDB's memtables and block cache are bounded by those options, not per session.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from detectors.engine import Engine  # noqa: E402
from detectors.events import decode_batch, encode_batch  # noqa: E402
from detectors.session import decode_state, encode_state  # noqa: E402
from streams import detection  # noqa: E402
from streams.normalize import normalize  # noqa: E402
from streams.settings import Settings  # noqa: E402
from streams.sim import SimConfig, Simulator  # noqa: E402
from streams.topics import partition_for  # noqa: E402

#: The in-memory target of issue 14.
TARGET_BYTES = 2048


def build(settings: Settings, n_sessions: int, rate: float, seed: int) -> tuple[Engine, int]:
    """An engine holding ``n_sessions`` live sessions fed from simulated traffic; and the
    number of events fed."""
    eng = detection.engine(settings)
    sim = Simulator(SimConfig(seed=seed, events_per_second=rate))
    events = 0
    sessions = eng.sessions
    offsets = [0] * settings.partitions
    for m in sim.messages():
        out = normalize(m.encode(), m.source, max_bytes=settings.max_payload_bytes,
                        max_events=settings.max_events_per_message, now=m.time)
        for sid, evs in out.web.items():
            # As the sessions agent gets them: decoded from the canonical message's bytes,
            # with their ingest origin (a partition name parsed from each message, so a new
            # string each time, and its offset), which the state keeps for exact recovery.
            p = partition_for(sid.encode(), settings.partitions)
            offsets[p] += 1
            name, _, offset = f"i{p}:{offsets[p]}".rpartition(":")
            eng.feed(decode_batch(encode_batch(evs)), (name, int(offset)))
            events += len(evs)
        if len(sessions) >= n_sessions:
            break
    return eng, events


def traced() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def engine_bytes(eng: Engine, long_from: int = 10) -> tuple[int, int, int]:
    """Bytes that dropping the engine's sessions (and their heap entries) frees: in all, and
    for the sessions with ``long_from`` events or more alone (dropped first), and their count."""
    long = [sid for sid, s in eng.sessions.items() if s.events >= long_from]
    before = traced()
    for sid in long:
        del eng.sessions[sid]
    freed_long = before - traced()
    eng.sessions.clear()
    eng._due.clear()  # noqa: SLF001 - the bench measures the engine's own per-session parts
    eng._expiry.clear()  # noqa: SLF001
    eng._scheduled.clear()  # noqa: SLF001
    return before - traced(), freed_long, len(long)


def table(eng: Engine) -> tuple[dict[bytes, bytes], int]:
    """What a memory:// sessions table holds for ``eng``'s sessions (key -> encoded state, as
    the sessions agent writes it), and its bytes."""
    before = traced()
    values = {sid.encode(): encode_state(s) for sid, s in eng.sessions.items()}
    return values, traced() - before


def rocksdb_bytes(encoded: dict[bytes, bytes], path: Path) -> int:
    """Bytes of SST files after writing ``encoded`` with Faust's RocksDB options."""
    from faust.stores.rocksdb import RocksDBOptions

    db = RocksDBOptions().open(path)
    try:
        for k, v in encoded.items():
            db[k] = v
        db.flush(wait=True)
        db.compact_range(None, None)
    finally:
        db.close()
    return sum(f.stat().st_size for f in path.glob("*.sst"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sessions", type=int, default=100_000)
    ap.add_argument("--rate", type=float, default=2000, help="simulated events/s")
    ap.add_argument("--models", choices=("on", "off"), default="on",
                    help="the abandonment model (it keeps a little per session)")
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args()
    settings = Settings(abandonment_model=args.models == "on")

    tracemalloc.start()
    t0 = time.perf_counter()
    eng, events = build(settings, args.sessions, args.rate, args.seed)
    n = len(eng.sessions)
    print(f"{n:,} live sessions from {events:,} simulated events "
          f"({events / n:.1f} per session; models {args.models}) "
          f"in {time.perf_counter() - t0:.0f} s")
    encoded, in_table = table(eng)
    # Round trips stay exact: what is stored reads back as a state that stores the same bytes
    # (not compared with the live state object: the abandonment scorer keeps its earlier
    # snapshots as JSON there, which read back as lists).
    exact = sum(encode_state(decode_state(v)) == v for v in encoded.values())
    values = [len(v) for v in encoded.values()]
    keys = [len(k) for k in encoded]
    in_engine, in_long, n_long = engine_bytes(eng)
    tracemalloc.stop()
    per = in_engine / n
    print(f"in memory, engine (SessionState and what only it holds, heap entries): "
          f"{per:8,.0f} B/session  {'<=' if per <= TARGET_BYTES else '>'} "
          f"{TARGET_BYTES:,} B target")
    print(f"  of which the {n_long:,} sessions with 10 events or more:               "
          f"{in_long / max(n_long, 1):8,.0f} B/session")
    print(f"in memory, memory:// table values (encoded state + key + dict slot):     "
          f"{in_table / n:8,.0f} B/session")
    print(f"in memory, worker with memory:// (both):                               "
          f"{(in_engine + in_table) / n:8,.0f} B/session")
    print(f"stored value (encoded JSON): mean {statistics.fmean(values):,.0f} B, median "
          f"{statistics.median(values):,.0f} B, max {max(values):,} B; key mean "
          f"{statistics.fmean(keys):.0f} B; round trips exact: {exact:,} of {n:,}")
    with tempfile.TemporaryDirectory() as tmp:
        disk = rocksdb_bytes(encoded, Path(tmp) / "sessions")
    print(f"RocksDB (Faust's options, flushed and compacted): {disk / n:,.0f} B/session on "
          f"disk ({disk / 1e6:,.1f} MB for {n:,})")


if __name__ == "__main__":
    main()
