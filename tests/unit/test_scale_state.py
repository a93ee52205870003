"""What survives a partition moving to another worker: the online models, the detectors'
learned thresholds and the incident baselines travel through the checkpoints topic's values
(``streams.checkpoints``); the session engines follow the assignment (``streams.rebalance``)."""

from __future__ import annotations

import random
from types import SimpleNamespace

from detectors.catalog import default_detectors
from detectors.events import Click, DeadClick
from detectors.funnel import StepBucket
from detectors.incidents import IncidentDetector, WindowMerger
from detectors.session import SessionProcessor
from models.feedback import FeedbackTally, decode_feedback
from models.thresholds import LearnedThresholds
from streams import checkpoints
from streams.rebalance import Ownership

TOPIC = "fw.web-events"


def _published(data: bytes, learned: int) -> checkpoints.Published | None:
    """Through the topic's value encoding, as a worker reading the topic gets it."""
    return checkpoints.unwrap(checkpoints.envelope(data, learned, at=1.0))


def _verdicts(tally: FeedbackTally, n: int) -> None:
    for i in range(n):
        tally.add(decode_feedback(
            b'{"alert_id": "a%d", "session_id": "s%d", "verdict": "false_alarm", '
            b'"reason": "rage_click"}' % (i, i)))


def test_a_second_worker_starts_from_the_first_workers_learned_model() -> None:
    first = FeedbackTally()
    _verdicts(first, 7)
    published = _published(first.checkpoint(), first.learned)
    second = FeedbackTally()
    assert checkpoints.adopt_model(second, published, "feedback")
    assert second.learned == first.learned == 7
    assert second.weights({"rage_click": 1.0}) == first.weights({"rage_click": 1.0})


def test_a_copy_that_learned_more_is_not_replaced_by_one_that_learned_less() -> None:
    ahead, behind = FeedbackTally(), FeedbackTally()
    _verdicts(ahead, 5)
    _verdicts(behind, 2)
    assert not checkpoints.adopt_model(ahead, _published(behind.checkpoint(), 2))
    assert ahead.learned == 5
    assert not checkpoints.adopt_model(ahead, None)  # nothing published yet
    assert not checkpoints.adopt_model(behind, _published(b"not a checkpoint", 99))
    assert behind.learned == 2  # a bad value changes nothing


def test_values_that_are_not_ours_are_skipped() -> None:
    assert checkpoints.unwrap(None) is None and checkpoints.unwrap(b"") is None
    assert checkpoints.unwrap(b"\xff\x00garbage") is None


def test_dead_elements_learned_by_one_worker_are_known_to_the_next() -> None:
    def detectors() -> list[object]:
        return SessionProcessor(default_detectors()).detectors

    first = LearnedThresholds(detectors())
    dead = next(d for d in first.detectors if d.name == "dead_click")
    proc = SessionProcessor(list(first.detectors))
    t = 0.0
    for i in range(6):  # SDK dead-click reports on one element: it is dead by now
        proc.apply(None, [Click(id=f"c{i}", time=t, session_id=f"s{i}", target="#buy",
                                x=1.0, y=1.0),
                          DeadClick(id=f"d{i}", time=t + 0.5, session_id=f"s{i}",
                                    target="#buy")])
        t += 10
    assert dead.is_dead("#buy")
    second = LearnedThresholds(detectors())
    assert not next(d for d in second.detectors if d.name == "dead_click").is_dead("#buy")
    assert checkpoints.adopt_model(second, _published(first.checkpoint(), first.learned))
    assert next(d for d in second.detectors if d.name == "dead_click").is_dead("#buy")
    assert second.learned == first.learned > 0


def _window(i: int, rng: random.Random, outage: bool = False) -> StepBucket:
    entered = rng.randint(5, 15)
    passed = entered // 5 if outage else sum(rng.random() < 0.85 for _ in range(entered))
    declines = entered - passed if outage else sum(rng.random() < 0.04 for _ in range(entered))
    return StepBucket(journey="shop", step="payment", index=2, start=30.0 * i, seconds=30.0,
                      entered=entered, passed=passed, cart_value=50.0 * entered,
                      signals={"payment_declined": declines} if declines else {})


def _judge(det: IncidentDetector, merger: WindowMerger, windows: list[StepBucket]
           ) -> list[dict[str, object]]:
    return [d for w in windows for done in merger.add(w) for d in det.observe(done)]


def test_an_incident_baseline_survives_its_step_moving_to_another_worker() -> None:
    rng = random.Random(4)
    normal = [_window(i, rng) for i in range(200)]
    outage = [_window(i, rng, outage=True) for i in range(200, 240)]
    after = [_window(i, rng) for i in range(240, 300)]
    key = normal[0].key

    # The step's owner learns its baseline, publishes, and the step moves.
    owner, owner_merger = IncidentDetector(), WindowMerger()
    _judge(owner, owner_merger, normal)
    saved = checkpoints.step_checkpoint(owner, owner_merger, key)
    assert saved is not None
    published = _published(*saved)
    assert published is not None and published.learned > 0  # sessions seen so far

    # What the owner would have said had it kept the step ...
    stayed = _judge(owner, owner_merger, outage + after)
    assert [d["data"]["status"] for d in stayed][0] == "opened"
    # ... is what the next owner says, starting from the published baseline.
    taker, taker_merger = IncidentDetector(), WindowMerger()
    assert checkpoints.adopt_step(taker, taker_merger, key, published)
    assert _judge(taker, taker_merger, outage + after) == stayed
    # From a cold start it would not: the outage would look like the step's normal.
    cold = _judge(IncidentDetector(), WindowMerger(), outage + after)
    assert cold != stayed

    checkpoints.drop_step(taker, taker_merger, key)
    assert checkpoints.step_checkpoint(taker, taker_merger, key) is None


def _tp(partition: int, topic: str = TOPIC) -> SimpleNamespace:
    return SimpleNamespace(topic=topic, partition=partition)


def test_engines_follow_the_assignment_and_stored_sessions_of_new_partitions_are_adopted(
) -> None:
    own = Ownership(TOPIC)
    engines: dict[int, dict[str, object]] = {0: {"s0": "stale"}, 1: {"s1": "kept"}}
    assert own.on_assigned([_tp(1), _tp(2), _tp(0, "fw.other")], engines) == [0]
    assert not own.settled
    # The table after recovery: keys of owned partitions, and others (standbys) skipped.
    table = {b"s1": "kept", b"s2": "stored", b"s0": "other worker's", b"s2b": "stored too"}
    partition = {b"s1": 1, b"s2": 2, b"s2b": 2, b"s0": 0}

    def take(p: int, state: object) -> None:
        engines.setdefault(p, {})[str(state)] = state

    n = own.adopt(table, partition.__getitem__,
                  lambda sid: any(sid in e for e in engines.values()) or sid == "s1",
                  table.__getitem__, take)
    assert n == 2 and own.settled
    assert set(engines) == {1, 2} and set(engines[2]) == {"stored", "stored too"}
    own.on_revoked()
    assert not own.settled
