"""Health that tells the truth: readiness, liveness and the consumer-lag reading.

    GET /health        readiness: 200 when the worker can do its work, else 503 with reasons
    GET /health/live   liveness: 200 while the process serves HTTP at all

The worker is ready when all of these hold:

- the broker answers: a metadata request through a short-lived Kafka client (the same TLS/SASL
  settings as the worker's), cached for ``BROKER_PROBE_TTL`` seconds so probes stay cheap;
- the consumer owns at least one partition;
- no agent has crashed within ``CRASH_WINDOW`` seconds. Faust restarts a crashed agent at
  once, so a crash is short-lived as a state; a batch it was working on is acked and skipped
  all the same, so readiness stays failed for a while after each crash, and ``agent_crashes``
  in the JSON counts them since the start. An agent Faust gave up restarting stays crashed.

The JSON always carries ``status``, ``app`` and ``assigned_partitions`` (which
``streams.worker_process`` and the tests read), then ``reasons``, ``broker`` and
``agent_crashes``. The decision itself (``readiness``) and the lag arithmetic (``lag``) are pure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import faust
from aiokafka.client import AIOKafkaClient

from streams.settings import Settings

__all__ = [
    "AgentCrashes",
    "BrokerProbe",
    "consumer_lag",
    "lag",
    "readiness",
    "register_health",
]

log = logging.getLogger(__name__)

#: Seconds a successful or failed broker probe is reused: health checks come every few
#: seconds (Kubernetes' default period is 10 s), a metadata round trip need not each time.
BROKER_PROBE_TTL = 5.0
#: Longest wait for the broker's answer; a probe slower than this counts as unreachable.
BROKER_PROBE_TIMEOUT = 3.0
#: Seconds readiness stays failed after an agent crash: long enough for a probe every 10 s
#: to see a crash loop (each crash restarts the agent within milliseconds).
CRASH_WINDOW = 60.0


def readiness(
    broker_error: str | None,
    assigned_partitions: int,
    crashed: Mapping[str, str],
) -> list[str]:
    """Why the worker is not ready (empty: ready).

    >>> readiness(None, 4, {})
    []
    >>> for reason in readiness("connection refused", 0, {"normalize": "RecursionError()"}):
    ...     print(reason)
    broker unreachable: connection refused
    no partitions assigned
    agent normalize crashed: RecursionError()
    """
    reasons = []
    if broker_error is not None:
        reasons.append(f"broker unreachable: {broker_error}")
    if assigned_partitions <= 0:
        reasons.append("no partitions assigned")
    reasons.extend(f"agent {name} crashed: {why}" for name, why in sorted(crashed.items()))
    return reasons


def lag(highwater: int | None, committed: int | None, read: int | None) -> int | None:
    """Messages a reader of the partition has not got through: the highwater the consumer last
    saw in a fetch minus the offset it committed (or, before any commit, the one after the
    last it read); None when no fetch has told the highwater yet.

    >>> lag(120, 100, 110), lag(120, None, 109), lag(120, None, None), lag(None, 5, 5)
    (20, 10, 120, None)
    >>> lag(100, 130, None)  # a commit ahead of a stale highwater is no negative lag
    0
    """
    if highwater is None:
        return None
    done = committed if committed is not None else (read + 1 if read is not None else 0)
    return max(0, highwater - done)


def consumer_lag(consumer: Any, tps: Iterable[Any]) -> dict[Any, int]:
    """``lag`` for each of ``tps`` from what the Faust consumer holds, with no request to the
    broker (so the reading neither waits on nor fails with an unreachable broker)."""
    # Faust has no public view of its committed and read offsets; both are plain dicts.
    committed = getattr(consumer, "_committed_offset", {})
    read = getattr(consumer, "_read_offset", {})
    out = {}
    for tp in tps:
        try:
            seen = consumer.highwater(tp)
        except Exception:  # noqa: BLE001 - a partition revoked between assignment() and here
            continue
        value = lag(seen, committed.get(tp), read.get(tp))
        if value is not None:
            out[tp] = value
    return out


@dataclass
class AgentCrashes:
    """Agent crashes as Faust reports them (its agents' ``on_error`` hook), kept per agent."""

    window: float = CRASH_WINDOW
    counts: dict[str, int] = field(default_factory=dict)
    last: dict[str, tuple[float, str]] = field(default_factory=dict)

    def record(self, agent: str, exc: BaseException, now: float) -> None:
        self.counts[agent] = self.counts.get(agent, 0) + 1
        self.last[agent] = (now, repr(exc)[:200])

    def recent(self, now: float) -> dict[str, str]:
        """Agents that crashed within the window, with the latest reason.

        >>> c = AgentCrashes(window=60)
        >>> c.record("normalize", ValueError("x"), now=100.0)
        >>> c.recent(now=150.0), c.recent(now=161.0), c.counts
        ({'normalize': "ValueError('x')"}, {}, {'normalize': 1})
        """
        return {name: why for name, (at, why) in self.last.items() if now - at <= self.window}

    def install(self, app: faust.App) -> None:
        """Hook every agent's error callback, keeping any callback it already had."""
        for agent in app.agents.values():
            previous = getattr(agent, "_on_error", None)
            agent._on_error = self._hook(agent.name, previous)  # type: ignore[attr-defined]

    def _hook(self, name: str, previous: Any) -> Any:
        async def on_error(agent: Any, exc: BaseException) -> None:
            self.record(name, exc, time.monotonic())
            log.error("agent %s crashed: %r", name, exc)
            if previous is not None:
                await previous(agent, exc)

        return on_error


def crashed_now(app: faust.App) -> dict[str, str]:
    """Agents with an actor Faust marks crashed right now (e.g. after giving up restarts)."""
    out = {}
    for agent in app.agents.values():
        for actor in getattr(agent, "_actors", ()):
            if getattr(actor, "crashed", False):
                out[agent.name] = repr(getattr(actor, "crash_reason", None))[:200]
    return out


class BrokerProbe:
    """Whether the broker answers a metadata request, asked at most every ``ttl`` seconds."""

    def __init__(self, settings: Settings, bootstrap: str, ttl: float = BROKER_PROBE_TTL,
                 timeout: float = BROKER_PROBE_TIMEOUT) -> None:
        self.settings, self.bootstrap = settings, bootstrap
        self.ttl, self.timeout = ttl, timeout
        # Built once: with TLS it loads the CA file, which need not happen every probe.
        self._client_kwargs = settings.kafka_client_kwargs()
        self.error: str | None = "not checked yet"
        self.checked_at: float | None = None
        self._lock = asyncio.Lock()

    async def check(self) -> str | None:
        """None when the broker answered, else why not."""
        async with self._lock:  # one probe at a time; the others reuse its answer
            now = time.monotonic()
            if self.checked_at is None or now - self.checked_at >= self.ttl:
                self.error = await self._probe()
                self.checked_at = time.monotonic()
            return self.error

    async def _probe(self) -> str | None:
        client = AIOKafkaClient(bootstrap_servers=self.bootstrap,
                                request_timeout_ms=int(self.timeout * 1000),
                                **self._client_kwargs)
        try:
            await asyncio.wait_for(client.bootstrap(), self.timeout)
            return None
        except TimeoutError:
            return f"no answer within {self.timeout:g} s"
        except Exception as exc:  # noqa: BLE001 - any failure to reach it is the answer
            return f"{type(exc).__name__}: {exc}"[:200]
        finally:
            with contextlib.suppress(Exception):  # a client that never connected
                await client.close()


def register_health(app: faust.App, settings: Settings, bootstrap: str,
                    ingest: Any = None) -> None:
    """The ``/health`` (readiness) and ``/health/live`` (liveness) pages. ``ingest``: the bulk
    ingest stage (``streams.bulk.BulkIngest``), whose consumer group is not Faust's: its
    partitions and lag are reported, and a stage whose fetches keep failing is not ready."""
    probe = BrokerProbe(settings, bootstrap)
    crashes = AgentCrashes()

    @app.task
    async def watch_agents() -> None:
        # At start, when every agent (also those registered after this call) exists.
        crashes.install(app)

    @app.page("/health")
    async def health(self: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        assigned = len(app.consumer.assignment()) if app.consumer else 0
        broker_error = await probe.check()
        now = time.monotonic()
        crashed = {**crashes.recent(now), **crashed_now(app)}
        if ingest is not None and ingest.failing:
            crashed["ingest"] = ingest.failing
        reasons = readiness(broker_error, assigned, crashed)
        checked = probe.checked_at
        body = {
            "status": "unready" if reasons else "ok",
            "app": settings.app_id,
            "assigned_partitions": assigned,
            "reasons": reasons,
            "broker": {"reachable": broker_error is None,
                       "checked_seconds_ago": round(now - checked, 1) if checked else None},
            "agent_crashes": dict(crashes.counts),
        }
        if ingest is not None:
            body["ingest"] = {"assigned_partitions": ingest.assigned(),
                              "lag": sum(ingest.lag().values())}
        return self.json(body, status=503 if reasons else 200)

    @app.page("/health/live")
    async def live(self: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        return self.json({"status": "alive", "app": settings.app_id})
