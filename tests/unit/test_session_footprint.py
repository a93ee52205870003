"""What a live session costs in memory (issue 14: at most 2 KB each with 100,000 active; the
figure is bench/session_memory.py's): the parts that are per worker stay shared, not copied
into each session."""

from __future__ import annotations

import gc

from detectors.events import PageView
from detectors.session import SessionProcessor, decode_state, encode_state


def _origin(partition: int, offset: int) -> tuple[str, int]:
    # As the sessions agent parses it from each message: a new string every time.
    name, _, at = f"i{partition}:{offset}".rpartition(":")
    return name, int(at)


def test_sessions_of_one_input_partition_share_its_name() -> None:
    proc = SessionProcessor()
    a, _ = proc.apply(None, [PageView(id="1", time=1.0, session_id="a")], _origin(3, 10))
    b, _ = proc.apply(None, [PageView(id="2", time=2.0, session_id="b")], _origin(3, 11))
    b, _ = proc.apply(b, [PageView(id="3", time=3.0, session_id="b")], _origin(3, 12))
    (ka,), (kb,) = a.positions, b.positions
    assert ka == kb == "i3" and ka is kb
    assert b.positions == {"i3": 12}


def test_states_are_not_tracked_by_the_cyclic_collector_and_round_trip_exactly() -> None:
    proc = SessionProcessor()
    s, _ = proc.apply(None, [PageView(id="1", time=1.0, session_id="a", url="/x")],
                      _origin(0, 1))
    assert not gc.is_tracked(s)
    back = decode_state(encode_state(s))
    assert back == s and not gc.is_tracked(back)


def test_a_rage_click_memory_stored_in_the_nested_form_still_works() -> None:
    from detectors.clicks import RageClickDetector
    from detectors.events import Click
    from detectors.session import SessionState

    def click(t: float) -> Click:
        return Click(id=str(t), time=t, session_id="s", x=10, y=10, target="button#pay")

    det = RageClickDetector()
    old = SessionState(session_id="s", detector_state={"rage_click": {"r": [[1.0, 10, 10],
                                                                             [1.3, 10, 10]]}})
    [sig] = det.update(old, click(1.6))  # the third click of the stored two
    assert (sig.start, sig.evidence["clicks"]) == (1.0, 3)
    assert old.detector_state == {"rage_click": [], "rage_click.b": [1.6, 10, 10]}
    burst = SessionState(session_id="s", detector_state={"rage_click": {"r": [],
                                                                        "b": [1.6, 10, 10]}})
    assert det.update(burst, click(1.9)) == ()  # the stored burst goes on: no new signal
    assert burst.detector_state["rage_click.b"] == [1.9, 10, 10]


def test_a_session_with_a_recent_click_keeps_it_in_one_flat_list() -> None:
    from detectors.clicks import RageClickDetector
    from detectors.events import Click
    from detectors.session import SessionState

    s = SessionState(session_id="s")
    RageClickDetector().update(s, Click(id="1", time=1.0, session_id="s", x=5, y=6))
    assert s.detector_state == {"rage_click": [1.0, 5, 6]}
