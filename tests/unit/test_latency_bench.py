"""bench/latency.py's traffic, offline through the worker's own normalize and engine: the
immediate probes alert on their decline, the deadline probes at their click's deadline, and
browsing raises no alert. If a detector or the alert policy changes so that a probe no longer
alerts (or alerts on another event), the bench would time the wrong thing; this says so."""

from __future__ import annotations

from types import ModuleType

from benchload import load_bench

from streams import detection
from streams.normalize import normalize
from streams.settings import Settings


def _bench() -> ModuleType:
    return load_bench("latency")


def test_probes_alert_on_their_own_event_or_deadline_and_browsing_never() -> None:
    bench = _bench()
    settings = Settings()
    eng = detection.engine(settings)
    todo = bench.plan(rate=150, seconds=20, probes_per_s=2, deadline_per_s=1, seed=3, tag="t")
    t0 = 1_790_000_000.0
    timed = {p.sid: t0 + p.at for p in todo if p.probe is not None}
    alerted: dict[str, tuple[float, str]] = {}  # session -> (time fed, the message's session)
    for n, p in enumerate(todo):
        now = t0 + p.at
        out = normalize(bench.call(p, now, n), "segment", max_bytes=settings.max_payload_bytes,
                        max_events=settings.max_events_per_message, now=now)
        assert not out.dead, out.dead
        for evs in out.web.values():
            for alert in eng.feed(evs).alerts:
                alerted.setdefault(alert["subject"], (now, p.sid))

    immediate = [s for s in timed if s.startswith("i")]
    deadline = [s for s in timed if s.startswith("d")]
    assert len(immediate) >= 20 and len(deadline) >= 10
    assert set(alerted) == set(timed)  # every probe alerted, no browsing session did
    for sid in immediate:  # on the decline itself
        assert alerted[sid] == (timed[sid], sid)
    for sid in deadline:  # at the first message after the 1 s silence deadline
        at, by = alerted[sid]
        assert by != sid and timed[sid] + 1.0 <= at < timed[sid] + 1.5


def test_plan_is_paced_at_the_rate_from_the_first_second() -> None:
    bench = _bench()
    todo = bench.plan(rate=600, seconds=30, probes_per_s=20, deadline_per_s=2, seed=1, tag="r")
    per_5s = [sum(1 for p in todo if k * 5 <= p.at < (k + 1) * 5) / 5 for k in range(5)]
    assert all(540 <= r <= 660 for r in per_5s), per_5s
    assert todo == sorted(todo) and all(0 <= p.at < 30 for p in todo)
