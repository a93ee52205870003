"""Three workers in one group, one SIGKILLed mid-stream, one added, and one SIGKILLed while
the group rebalances: the signals, alerts, chat triggers and session states on the topics
equal an offline run of the same events. None lost, none twice.

The comparison is on what the topics hold (behaviour), not on any worker's internals, so it
holds however the agents batch or are split into modules. The traffic leaves out checkout step
views: the step-stall detector's thresholds are learned across sessions, so a run split over
workers may stall a session that one process would not (and sharing those thresholds through
the checkpoints topic makes them close, not equal). Everything else the detectors do depends
only on each session's own events and its partition's event time, which is what must survive
partitions moving between workers.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from os import environ
from typing import Any

import msgspec
import pytest
from conftest import TEST_BROKER_ENV
from kafkahelp import (
    WorkerProcess,
    changelog_topic,
    isolated_settings,
    latest_by_key,
    processed_messages,
    producer,
    read_to_end,
    read_to_idle,
    read_topic,
    topic,
    worker_settings,
)

from detectors.engine import Engine, Outputs
from detectors.session import SessionState, decode_state
from streams import checkpoints, detection
from streams.adapters import adapt
from streams.app import SESSIONS_TABLE
from streams.kafka_io import ensure_topics
from streams.settings import Settings
from streams.topics import SOURCE_HEADER, partition_for

pytestmark = pytest.mark.integration

N_SESSIONS = 300
N_MESSAGES = 6_000
PARTITIONS = 6


def traffic(seed: int) -> list[dict[str, Any]]:
    """Segment batches of one session each: rage-click bursts, declined payments and coupons,
    form errors, carts and orders, each session's clock moving forward in milliseconds."""
    rng = random.Random(seed)
    clock = [0] * N_SESSIONS
    out = []
    for m in range(N_MESSAGES):
        s = rng.randrange(N_SESSIONS)
        batch = []
        for k in range(rng.randint(1, 3)):
            clock[s] += rng.choice((150, 250, 900, 4000, 20000))
            t = clock[s]
            r = rng.random()
            if r < 0.35:
                name, props = "Element Clicked", {"x": 100 + s % 7, "y": 200,
                                                  "target": f"#b{s % 5}"}
            elif r < 0.5:
                name, props = "Coupon Denied", {"coupon": "X1", "reason": "expired"}
            elif r < 0.62:
                name, props = "Payment Declined", {"reason": "card_declined"}
            elif r < 0.75:
                name, props = "Product Added", {"price": 10.0, "quantity": 1}
            elif r < 0.8:
                name, props = "Order Completed", {"revenue": 30.0}
            elif r < 0.9:
                name, props = "Form Field Error", {"field": f"f{rng.randrange(3)}",
                                                   "form": "checkout"}
            else:
                name, props = "Cart Viewed", {}
            stamp = (f"2026-01-01T{t // 3_600_000:02d}:{t // 60_000 % 60:02d}:"
                     f"{t // 1000 % 60:02d}.{t % 1000:03d}Z")
            batch.append({"type": "track", "event": name, "messageId": f"m{m}-{k}",
                          "anonymousId": f"a{s}", "context": {"sessionId": f"s{s}"},
                          "timestamp": stamp, "properties": props})
        out.append({"batch": batch})
    return out


def offline(messages: list[dict[str, Any]], settings: Settings
            ) -> tuple[Outputs, dict[str, SessionState]]:
    """One process over the same messages in order: the worker's core with one engine per
    web-events partition, each advanced to its newest event time at the end, as the
    worker's event-time timer does."""
    proc = detection.processor(settings)
    alerting = detection.alerting(settings, proc)
    engines: dict[int, Engine] = {}
    out = Outputs()
    for payload in messages:
        adapted = adapt(payload, "segment")
        assert not adapted.rejected
        by_session: dict[str, list[Any]] = {}
        for e in adapted.events:
            by_session.setdefault(e.session_id, []).append(e)
        for sid, evs in by_session.items():
            p = partition_for(sid.encode(), settings.partitions)
            engine = engines.get(p)
            if engine is None:
                engine = engines[p] = detection.engine(settings, proc, alerting)
            engine.feed(evs, None, out)
    states: dict[str, SessionState] = {}
    for engine in engines.values():
        engine.advance(engine.watermark, out)
        states.update(engine.sessions)
    return out, states


def comparable(state: SessionState) -> dict[str, object]:
    d = {f: getattr(state, f) for f in state.__struct_fields__}
    d.pop("positions")  # where a message came from differs between runs by design
    return d


_REBALANCING = re.compile(r"^faust_total_rebalances(?:_recovering)? (\S+)$", re.M)


def rebalancing(w: WorkerProcess) -> bool:
    """Whether ``w`` is in a rebalance now (Faust's gauges: before and during recovery)."""
    try:
        text = w.metrics_text(timeout=1.0)
    except OSError:
        return False
    return any(float(v) > 0 for v in _REBALANCING.findall(text))


def read_all(bootstrap: str, name: str) -> list[Any]:
    """Everything topic ``name`` holds, once the workers are done: to its end offsets, and on
    the embedded tansu (which under-reports them: 26 of 1,026 signals read short, in 2 of
    3 runs) on to idle too."""
    at_end = read_to_end(bootstrap, name)
    if environ.get(TEST_BROKER_ENV):
        return at_end
    to_idle = read_to_idle(bootstrap, name)
    return to_idle if len(to_idle) > len(at_end) else at_end


_NOISE = ("Heartbeat failed", "GroupCoordinator", "coordinator dead", "DEBUG")


def diagnosis(workers: dict[str, WorkerProcess], live: list[WorkerProcess]) -> str:
    """Where each worker stands, short enough for a CI excerpt: alive or killed, the
    partitions it owns, its lag left per partition, and its log's first error or warning."""
    parts = []
    for name, w in workers.items():
        said = f"{name}: "
        if w in live:
            try:
                text = w.metrics_text(timeout=2.0)
            except OSError as exc:
                text, said = "", said + f"metrics unreadable ({exc}) "
            lag = re.findall(r'^frictionwatch_consumer_lag\{(.*)\} ([1-9]\S*)$', text, re.M)
            said += f"owns {w.assigned_partitions()}, lag {lag or 0}"
        else:
            said += "killed"
        try:
            lines = [ln for ln in w.log_path.read_text(errors="replace").splitlines()
                     if ("[ERROR]" in ln or "[WARNING]" in ln or "[CRITICAL]" in ln)
                     and not any(n in ln for n in _NOISE)]
        except OSError:
            lines = []
        if lines:
            said += f", {len(lines)} warnings, first: {lines[0][26:200]}"
        parts.append(said)
    return "; ".join(parts)


def _wait(what: str, cond: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


# Session states are exactly once; outputs at least once. A kill between a batch's outputs
# reaching Kafka and its states reaching the changelog re-sends those outputs when the
# messages are read again, as the same documents (alerts and chat triggers keep their ids):
# none may be lost, none may be unknown, and the copies are counted, not failed.
def test_workers_killed_and_added_mid_stream_send_what_one_offline_run_sends(
    kafka_bootstrap, tmp_path
):
    # Abandonment model off: it is one model per worker, learned from that worker's sessions,
    # and its scores are in the states (the crash test leaves it out for the same reason).
    base = isolated_settings(tmp_path, partitions=PARTITIONS, batch_max_messages=50,
                             batch_within=0.05, commit_interval=1.0, abandonment_model=False,
                             model_checkpoint_interval=5.0)
    ensure_topics(base, kafka_bootstrap)
    messages = traffic(seed=7)
    expected, expected_states = offline(messages, base)
    assert len(expected.alerts) >= 100 and len(expected.chats) >= 100
    assert len({s.type for s in expected.signals}) >= 4
    total_events = sum(s.events for s in expected_states.values())

    workers: dict[str, WorkerProcess] = {}

    def spawn(name: str, wait: bool = True) -> WorkerProcess:
        w = WorkerProcess(worker_settings(base, tmp_path, name), kafka_bootstrap,
                          tmp_path / f"{name}.log")
        workers[name] = w
        return w.start() if wait else w

    def live() -> list[WorkerProcess]:
        return [w for w in workers.values() if w.proc and w.proc.poll() is None]

    def processed() -> float:
        # Ingest messages normalized and sent on (web-events messages are bundles of many).
        return sum(processed_messages(w, "ingest") for w in live())

    p = producer(kafka_bootstrap)
    ingest = topic(base, "ingest")

    def produce(part: list[dict[str, Any]]) -> None:
        for payload in part:
            # Keyed by the client's id, so each session's messages stay in order.
            p.send(ingest, key=payload["batch"][0]["anonymousId"].encode(),
                   value=json.dumps(payload).encode(), headers=[(SOURCE_HEADER, b"segment")])
        p.flush()

    third = N_MESSAGES // 3
    try:
        for name in ("w1", "w2", "w3"):
            spawn(name)
        _wait("three workers sharing the partitions",
              lambda: sum(w.assigned_partitions() > 0 for w in live()) == 3, 60)
        produce(messages[:third])
        _wait("some of the first third processed", lambda: processed() >= third // 3, 90)
        workers["w2"].kill()  # mid-stream, in the middle of a batch or a commit

        produce(messages[third:2 * third])
        w4 = spawn("w4", wait=False)
        joining = ThreadPoolExecutor(1).submit(w4.start)  # returns once w4 owns partitions
        # While the group rebalances to take w4 in, SIGKILL w3. Faust's gauges say when a
        # rebalance is under way on a member: from its start to the end of its recovery.
        in_rebalance = False
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not joining.done():
            if rebalancing(workers["w3"]) or rebalancing(workers["w1"]):
                in_rebalance = True
                break
            time.sleep(0.02)
        workers["w3"].kill()
        joining.result(timeout=120)
        produce(messages[2 * third:])

        def states_of(records: list[Any]) -> dict[str, SessionState]:
            return {k.decode(): decode_state(v)
                    for k, v in latest_by_key(records).items() if v is not None}

        read_topic(kafka_bootstrap, changelog_topic(base, SESSIONS_TABLE),
                   until=lambda rs: sum(s.events for s in states_of(rs).values())
                   >= total_events, timeout=150)
        # If that timed out, what each worker still had to read says where it stuck.
        lag = diagnosis(workers, live())
        # Let anything sent twice (the bug this guards against) show up before comparing.
        time.sleep(base.commit_interval + 3)
        got_states = states_of(read_all(kafka_bootstrap,
                                           changelog_topic(base, SESSIONS_TABLE)))

        def docs(name: str) -> list[str]:
            return sorted(json.dumps(json.loads(r.value), sort_keys=True)
                          for r in read_all(kafka_bootstrap, topic(base, name)))

        signals, alerts, chats = docs("friction_signals"), docs("alerts"), docs("chat_triggers")
        # What the workers learned is on the compacted checkpoints topic for the next one.
        published = checkpoints.unwrap(latest_by_key(read_to_end(
            kafka_bootstrap, topic(base, "checkpoints"))).get(b"model/thresholds"))
    finally:
        for w in workers.values():
            w.stop()
    # Not asserted (a timing the test cannot force), but said: the run covered the case.
    print(f"w3 killed while the group rebalanced: {in_rebalance}")

    def want(records: list[Any]) -> list[str]:
        return sorted(json.dumps(msgspec.to_builtins(r), sort_keys=True) for r in records)

    def lost_unknown_copies(got: list[str], expected: list[str]) -> tuple[int, int, int]:
        missing, extra = Counter(expected), Counter(got)
        missing.subtract(got)
        extra.subtract(expected)
        unknown = sum(n for doc, n in extra.items() if n > 0 and doc not in missing)
        return (sum(n for n in missing.values() if n > 0), unknown,
                sum(n for n in extra.values() if n > 0) - unknown)

    problems = []
    if set(got_states) != set(expected_states):
        problems.append(f"sessions lost {sorted(set(expected_states) - set(got_states))[:5]}, "
                        f"extra {sorted(set(got_states) - set(expected_states))[:5]}")
    mismatched = [s for s in expected_states if s in got_states
                  and comparable(got_states[s]) != comparable(expected_states[s])]
    if mismatched:
        got, offline_ = comparable(got_states[mismatched[0]]), comparable(
            expected_states[mismatched[0]])
        diff = {k: (got[k], offline_[k]) for k in offline_ if got[k] != offline_[k]}
        problems.append(f"{len(mismatched)} session states differ, e.g. {mismatched[0]}: "
                        f"(got, offline) {diff}")
    # Every offline document sent, nothing else; copies of them are at-least-once re-sends.
    for name, got_docs, records in (("signals", signals, expected.signals),
                                    ("alerts", alerts, expected.alerts),
                                    ("chat triggers", chats, expected.chats)):
        lost, unknown, copies = lost_unknown_copies(got_docs, want(records))
        print(f"{name}: {len(records)} offline, {lost} lost, {unknown} unknown, "
              f"{copies} re-sent copies")
        if lost or unknown:
            problems.append(f"{name}: {lost} lost, {unknown} not in the offline run, of "
                            f"{len(records)}")
    if problems:
        by_partition = Counter(partition_for(sid.encode(), PARTITIONS) for sid in mismatched)
        problems.insert(0, f"differing sessions by web-events partition {dict(by_partition)}")
    assert not problems, f"[{lag}] " + "; ".join(problems)
    assert published is not None and published.learned > 0
