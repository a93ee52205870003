"""Hostile inputs against a live worker: none of them ends it, loses a batch or puts +Inf/NaN
on /metrics (issue 13, "Nothing escapes the pipeline's error handling").

One worker serves the cases in order (each leaves it checked alive and working); the last
case stops and starts it again. Each case ended the worker, lost its batch or left +Inf on
/metrics before the fix. Timestamps are recent (the edge may refuse times far from now), and
the worker's session gap is a minute, so event time a few minutes on ends sessions and
labels the models' snapshots without waiting.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from kafkahelp import (
    WorkerProcess,
    changelog_topic,
    http_post,
    isolated_settings,
    producer,
    read_to_end,
    topic,
)

from detectors.session import decode_state
from streams.bundle import events_of
from streams.deadletter import MAX_ORIGINAL_BYTES, DeadLetter, decode_dead_letter
from streams.kafka_io import ensure_topics
from streams.topics import SOURCE_HEADER

pytestmark = pytest.mark.integration

#: Event times of the cases start here (seconds before now) and move forward.
BASE = time.time() - 3 * 3600


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str
            ) -> Iterator[WorkerProcess]:
    tmp = tmp_path_factory.mktemp("hostile")
    settings = isolated_settings(tmp, session_gap=60.0)
    ensure_topics(settings, kafka_bootstrap)
    w = WorkerProcess(settings, kafka_bootstrap, tmp / "worker.log").start()
    yield w
    w.stop()


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def seg(event: str | None, sid: str, t: float | str, user: str | None = None,
        **props: Any) -> dict[str, Any]:
    """A Segment call: ``track`` of ``event``, or a page view when ``event`` is None."""
    doc: dict[str, Any] = {
        "type": "track" if event else "page", "messageId": f"m-{uuid.uuid4().hex}",
        "anonymousId": f"anon-{sid}", "timestamp": t if isinstance(t, str) else iso(t),
        "context": {"sessionId": sid}, "properties": props}
    if event:
        doc["event"] = event
    else:
        doc["name"] = "Cart"
        doc["properties"] = {"url": "https://shop.example/cart", **props}
    if user:
        doc["userId"] = user
    return doc


def post(w: WorkerProcess, *docs: dict[str, Any]) -> None:
    for doc in docs:
        code, body = http_post(w.url + "/collect/segment", json.dumps(doc).encode())
        # 200 accepted, or 400 refused at the edge (then a dead letter says why).
        assert code in (200, 400), (code, body)


def dead_letters(w: WorkerProcess) -> list[DeadLetter]:
    return [decode_dead_letter(r.value)
            for r in read_to_end(w.bootstrap, topic(w.settings, "dead_letters"))]


def dead_letters_since(w: WorkerProcess, before: list[DeadLetter]) -> list[DeadLetter]:
    """The dead letters not among ``before``: the topic has several partitions, so the order
    it reads in changes as they grow, and a count of earlier records is no cut-off."""
    seen = Counter(before)
    new = []
    for d in dead_letters(w):
        if seen[d] > 0:
            seen[d] -= 1
        else:
            new.append(d)
    return new


def metric(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(f"{name}{{{want}}} ") or (not labels and line.startswith(name + " ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def assert_finite_metrics(w: WorkerProcess) -> str:
    text = w.metrics_text()
    bad = [line for line in text.splitlines() if line and not line.startswith("#")
           and line.rsplit(" ", 1)[-1] in ("+Inf", "-Inf", "NaN", "inf", "nan")]
    assert not bad, bad[:5]
    return text


def assert_alive_and_working(w: WorkerProcess, tag: str, t: float) -> None:
    """The worker process runs, and a valid web event and a valid customer event sent to the
    ingest topic now are applied by the sessions and customers agents (their states reach
    the tables' changelogs); /metrics holds no +Inf or NaN."""
    assert w.proc is not None and w.proc.poll() is None, w.log_tail()
    sid, cid = f"ok-{tag}-{uuid.uuid4().hex[:6]}", f"okc-{tag}-{uuid.uuid4().hex[:6]}"
    p = producer(w.bootstrap)
    ingest = topic(w.settings, "ingest")
    for doc in (seg(None, sid, t), {**seg(None, cid, t, user=cid), "type": "identify",
                                    "traits": {"plan": "pro"}}):
        p.send(ingest, key=sid.encode(), value=json.dumps(doc).encode(),
               headers=[(SOURCE_HEADER, b"segment")])
    p.flush()
    p.close()
    deadline = time.monotonic() + 90
    want = {("sessions", sid.encode()), ("customers", cid.encode())}
    while want and time.monotonic() < deadline:
        for table, key in list(want):
            recs = read_to_end(w.bootstrap, changelog_topic(w.settings, table))
            # Written at least once (a session may already have expired since: a tombstone).
            if any(r.key == key and r.value for r in recs):
                want.discard((table, key))
        if want:
            assert w.proc.poll() is None, w.log_tail()
            time.sleep(1.0)
    assert not want, f"not applied in 90 s: {want}\n{w.log_tail()}"
    assert_finite_metrics(w)


def test_huge_click_targets_do_not_end_the_worker(hostile: WorkerProcess) -> None:
    """Three clicks with a 400,000-character target: the session state passes the producer's
    1 MiB limit. Before: MessageSizeTooLargeError in Faust's producer buffer ended the app."""
    w, t = hostile, BASE
    before = dead_letters(w)
    big = "#" + "x" * 400_000
    post(w, *[seg("Element Clicked", "huge-1", t + i, target=big, x=10, y=20)
              for i in range(3)])
    time.sleep(5)  # a batch, its table writes and the producer's flush
    assert_alive_and_working(w, "huge", t + 10)
    new = dead_letters_since(w, before)
    assert any(d.reason in ("too_large", "invalid_field") for d in new), new
    # Dead letters carry a bounded excerpt (streams.deadletter), not copies of the 400 KB input.
    assert all(len(d.original_bytes) <= MAX_ORIGINAL_BYTES for d in new)
    assert all(d.truncated for d in new if (d.original_size or 0) > MAX_ORIGINAL_BYTES)


def test_deep_json_in_a_batch_loses_nothing(hostile: WorkerProcess) -> None:
    """JSON nested 1,000+ deep among 200 valid messages on the ingest topic. Before: the
    normalize agent crashed on RecursionError and the whole batch was skipped."""
    w, t = hostile, BASE + 100
    p = producer(w.bootstrap)
    ingest = topic(w.settings, "ingest")
    valid = [seg(None, f"deep-s{i % 10}", t + i * 0.01) for i in range(200)]
    deep = (b'{"type": "track", "event": "Element Clicked", "properties": {"a": '
            + b"[" * 1200 + b"]" * 1200 + b"}}")
    deep_at = None
    for i, doc in enumerate(valid):
        if i == 100:
            deep_at = p.send(ingest, key=b"deep", value=deep,
                             headers=[(SOURCE_HEADER, b"segment")]).get(timeout=30)
        p.send(ingest, key=b"deep", value=json.dumps(doc).encode(),
               headers=[(SOURCE_HEADER, b"segment")])
    p.flush()
    p.close()
    assert deep_at is not None
    ids = {d["messageId"] for d in valid}
    web = topic(w.settings, "web_events")
    seen: set[str] = set()
    deadline = time.monotonic() + 60
    while not ids <= seen and time.monotonic() < deadline:
        seen = {e.id for r in read_to_end(w.bootstrap, web) for e in events_of(r.value, r.key)}
        time.sleep(0.5)
    assert ids <= seen, f"{len(ids - seen)} of the 200 valid messages never reached {web}"
    letters = [d for d in dead_letters(w) if d.stage == "normalize"
               and d.offset == deep_at.offset and d.partition == deep_at.partition]
    assert letters, "the deep message is not a dead letter"
    assert_alive_and_working(w, "deep", t + 10)


def test_step_1e308_is_not_scored_and_model_gauges_stay_finite(hostile: WorkerProcess
                                                                ) -> None:
    """A checkout step of 1e308. Before: River's scaler overflowed, the abandonment model
    predicted NaN, and the 5 s model-gauge timer's ValueError (Input contains NaN) ended the
    worker. Rounds of ordinary checkouts are scored and labelled after it."""
    w, t = hostile, BASE + 600
    before = dead_letters(w)
    post(w, seg("Checkout Step Viewed", "step-big", t, step=1e308))
    for r in range(3):  # ordinary checkouts, scored and then labelled as event time moves
        t0 = t + 200 * r
        sids = [f"step-{r}-{i}" for i in range(3)]
        post(w, *[seg("Checkout Step Viewed", s, t0 + 1 + i, step=1 + i % 2) for i, s in
                  enumerate(sids)])
        post(w, *[seg("Checkout Step Viewed", s, t0 + 5 + i, step=2) for i, s in
                  enumerate(sids)])
        # A page view a few minutes on, in each session's partition: sessions end, and their
        # checkout snapshots are learned (and judged by the model-gauge timer).
        post(w, *[seg(None, s, t0 + 150) for s in [*sids, "step-big"]])
        time.sleep(2)
    time.sleep(7)  # the model gauges run every 5 s
    assert_alive_and_working(w, "step", t + 700)
    text = w.metrics_text()
    refused = metric(text, "frictionwatch_model_inputs_rejected_total", model="abandonment")
    new = dead_letters_since(w, before)
    assert refused >= 1 or any(d.reason == "invalid_field" for d in new), (refused, new)


def test_revenue_1e308_twice_poisons_nothing_across_a_restart(hostile: WorkerProcess
                                                               ) -> None:
    """Two orders of revenue 1e308 for one customer (summed: inf, stored as null), then the
    customer again; the same after a restart. Before: frictionwatch_revenue_total read +Inf
    for the life of the process, and the customer's stored state crashed the customers
    agent on every later touch, restarts included. The same for a session's state and for
    the holdout ledger of the experiments agent."""
    w = hostile
    for round_, t in enumerate((BASE + 2000, BASE + 2600)):
        if round_:
            w.stop()
            w.start()
        before = dead_letters(w)
        cid = "rich-customer"
        sids = [f"rich-{round_}-{i}" for i in range(2)]
        post(w, *[seg("Order Completed", s, t + i, user=cid, order_id=f"o-{s}",
                      revenue=1e308) for i, s in enumerate(sids)])
        # Event time moves on in each session's partition: the sessions end, their summaries
        # reach the customer, and the journey windows with the orders close.
        post(w, *[seg(None, s, t + 200) for s in sids])
        if round_ == 0:
            # A session with both orders (its revenue inf, stored as null): still open at
            # the restart, and read back from its table then.
            post(w, *[seg("Order Completed", "rich-session", t + 201 + i, order_id=f"o{i}",
                          revenue=1e308) for i in range(2)])
        else:
            post(w, seg(None, "rich-session", t + 205))
        holdout_records(w, t)
        time.sleep(3)
        # The customer again (its stored state read back).
        post(w, {**seg(None, "rich-again", t + 210, user=cid), "type": "identify",
                 "traits": {"plan": "pro"}})
        time.sleep(3)
        assert_alive_and_working(w, f"rich{round_}", t + 220)
        new = dead_letters_since(w, before)
        assert new, "the infinite revenue left no dead letter"
    # The open session's later events are applied (its unreadable state started fresh).
    last = BASE + 2600 + 205
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        recs = read_to_end(w.bootstrap, changelog_topic(w.settings, "sessions"))
        if any(r.key == b"rich-session" and r.value
               and abs((_last_time(r.value) or 0.0) - last) < 0.01 for r in recs):
            break
        time.sleep(1)
    else:
        pytest.fail(f"rich-session's events after the restart were not applied\n"
                    f"{w.log_tail()}")


def holdout_records(w: WorkerProcess, t: float) -> None:
    """Straight to the experiments topic (past the edge): a customer unit exposed, two
    results of revenue 1e308 for it, then a record a day on that closes its window. Before:
    the arm's revenue gauge read +Inf, and the stored ledger (inf written as null) failed
    the experiments agent on every later record, restarts included."""
    unit = {"experiment": "chat_offer", "arm": "treatment", "unit": "c:rich-customer",
            "unit_kind": "customer"}
    records = [{**unit, "type": "exposure", "time": t, "delivered": True}]
    records += [{**unit, "type": "result", "exposed_at": t + i, "end": t + 100 + i,
                 "converted": True, "orders": 1, "revenue": 1e308} for i in range(2)]
    records.append({**unit, "type": "exposure", "time": t + 90_000, "delivered": True})
    p = producer(w.bootstrap)
    for rec in records:
        p.send(topic(w.settings, "experiments"), key=rec["unit"].encode(),
               value=json.dumps(rec).encode())
    p.flush()
    p.close()


def _last_time(raw: bytes) -> float | None:
    try:
        return decode_state(raw).last_time
    except ValueError:  # msgspec's errors are ValueErrors: a state stored with null in it
        return None


def test_year_10000_does_not_end_the_event_time_timer(hostile: WorkerProcess) -> None:
    """A timestamp of 9999-12-31T23:59:59-23:59 (year 10000 in UTC), then a checkout step a
    few minutes before it: the step's stall deadline runs from the 1 s event-time timer.
    Before: ``year 10000 is out of range`` there ended the worker."""
    w = hostile
    before = dead_letters(w)
    post(w, seg(None, "y10k", "9999-12-31T23:59:59-23:59"),
         seg("Checkout Step Viewed", "y10k", "9999-12-31T23:55:00-23:59", step=1))
    time.sleep(4)  # the event-time timer runs every second
    assert_alive_and_working(w, "y10k", BASE + 1500)
    text = w.metrics_text()
    timer_errors = metric(text, "frictionwatch_timer_errors_total", timer="event_time")
    new = dead_letters_since(w, before)
    assert timer_errors >= 1 or len(new) >= 1, (timer_errors, new)
