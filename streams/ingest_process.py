"""The bulk ingest stage in a process of its own, beside the worker.

A worker is one Python process, so one core: at one event per Kafka message the ingest stage
(normalize: adapters, bounds, dead letters; bundles) was about half of its main thread, the
sessions agent the other half. ``IngestProcess`` runs the very same ``streams.bulk.BulkIngest``
in a child process, so the two stages take a core each (``bench/throughput.py``, tansu, models
on, worker/raw: medians of 0.19-0.21 in the worker's loop against 0.230 over six runs at 1
event per message, 0.18-0.20 against 0.280 at 20; the README's "The fast path").

Nothing else changes: the stage keeps its own consumer group and commits an ingest offset only
once its bundles are acknowledged, so recovery stays exact whichever process dies. The child:

- dies with the worker (``PR_SET_PDEATHSIG`` on Linux; elsewhere it polls its parent), so a
  SIGKILLed worker leaves no stage behind to hold the ingest partitions;
- is stopped with SIGTERM when the worker stops (it commits what it sent, leaves its group);
- is started again a second later if it exits on its own, with the reason on ``/health``
  until it reports (``failing``), counted in ``frictionwatch_process_restarts_total``;
- sends the worker its metric values, consumer lag and assigned partitions every
  ``STATUS_INTERVAL`` seconds over a pipe (``MetricsRelay``), so ``/metrics`` and ``/health``
  read as they do with the stage in the worker's loop.

``Settings.ingest_process`` (``FRICTIONWATCH_INGEST_PROCESS``, default on) chooses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Iterable
from multiprocessing.connection import Connection
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from streams.memory import FULL_COLLECTION_INTERVAL, collect_cycles, release_free_memory
from streams.metrics import Metrics, add_to_histogram, histogram_cells, watch_gc
from streams.settings import Settings

__all__ = ["STATUS_INTERVAL", "IngestProcess", "MetricsRelay", "Sample", "samples"]

log = logging.getLogger(__name__)

#: Seconds between the child's reports (metrics, lag) to the worker.
STATUS_INTERVAL = 0.5
#: Seconds before a stage that exited on its own is started again.
RESTART_DELAY = 1.0

#: ``(family, kind, sample name, labels, value)`` of one sample of the child's registry.
Sample = tuple[str, str, str, tuple[tuple[str, str], ...], float]


def samples(registry: CollectorRegistry) -> list[Sample]:
    """The counter and histogram samples of ``registry`` that are not zero (what changed since
    the process started; ``_created`` timestamps left out)."""
    out: list[Sample] = []
    for family in registry.collect():
        if family.type not in ("counter", "histogram"):
            continue
        for s in family.samples:
            if s.value and not s.name.endswith("_created"):
                out.append((family.name, family.type, s.name, tuple(sorted(s.labels.items())),
                            float(s.value)))
    return out


class MetricsRelay:
    """Adds what a child's counters and histograms gained since its last report to the same
    metrics of ``metrics`` (by name and labels), so they are exported by this process.

    >>> child, here = Metrics(CollectorRegistry()), Metrics(CollectorRegistry())
    >>> relay = MetricsRelay(here)
    >>> child.messages.labels(topic="ingest").inc(3)
    >>> relay.apply(samples(child.registry))
    >>> child.messages.labels(topic="ingest").inc(2)
    >>> relay.apply(samples(child.registry)); relay.apply(samples(child.registry))
    >>> here.registry.get_sample_value("frictionwatch_messages_total", {"topic": "ingest"})
    5.0
    """

    def __init__(self, metrics: Metrics) -> None:
        self._metrics: dict[str, Any] = {m._name: m for m in vars(metrics).values()
                                         if isinstance(m, MetricWrapperBase)}
        self._last: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}

    def reset(self) -> None:
        """A new child: its values start again from zero."""
        self._last.clear()

    def apply(self, report: Iterable[Sample]) -> None:
        buckets: dict[tuple[str, tuple[tuple[str, str], ...]], list[tuple[float, float]]] = {}
        sums: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        for family, kind, name, labels, value in report:
            key = (name, labels)
            gained = value - self._last.get(key, 0.0)
            self._last[key] = value
            if gained <= 0 or family not in self._metrics:
                continue
            if kind == "counter":
                metric = self._metrics[family]
                (metric.labels(**dict(labels)) if labels else metric).inc(gained)
            elif name.endswith("_bucket"):
                le = dict(labels)["le"]
                rest = tuple(kv for kv in labels if kv[0] != "le")
                buckets.setdefault((family, rest), []).append((float(le), gained))
            elif name.endswith("_sum"):
                sums[(family, labels)] = gained
        for (family, labels), gains in buckets.items():
            self._histogram(family, labels, gains, sums.get((family, labels), 0.0))

    def _histogram(self, family: str, labels: tuple[tuple[str, str], ...],
                   gains: list[tuple[float, float]], added: float) -> None:
        """Bucket counts are cumulative: each bucket gains what its count gained beyond the
        one below (``streams.metrics.add_to_histogram``); left alone if the histogram does
        not show its buckets."""
        metric = self._metrics[family]
        cells = histogram_cells(metric.labels(**dict(labels)) if labels else metric)
        if cells is None:
            return
        gained = dict(gains)
        counts = []
        below = 0.0
        for bound in cells[0]:
            cumulative = max(below, gained.get(bound, below))
            counts.append(cumulative - below)
            below = cumulative
        add_to_histogram(cells, counts, added)


class IngestProcess:
    """``BulkIngest`` in a child process (see the module): ``start``, ``run`` (watches the
    child and takes its reports) until ``stop``; ``lag``, ``assigned`` and ``failing`` as the
    stage's own, from its latest report."""

    def __init__(self, settings: Settings, bootstrap: str, metrics: Metrics,
                 max_request: int) -> None:
        self.settings = settings
        self.bootstrap = bootstrap
        self.limit = max_request
        self.relay = MetricsRelay(metrics)
        #: Why the stage is not running, or the child's own ``failing``; None when fine.
        self.failing: str | None = None
        self._lag: dict[int, int] = {}
        self._assigned = 0
        self._proc: Any = None
        self._conn: Connection | None = None
        self._stopping = False
        self._restarts = metrics.process_restarts.labels(process="ingest")

    async def start(self) -> None:
        self._spawn()

    def _spawn(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        conn, child_conn = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=run_child, name="frictionwatch-ingest", daemon=True,
                           args=(self.settings, self.bootstrap, self.limit, child_conn,
                                 os.getpid()))
        proc.start()
        child_conn.close()
        self._proc, self._conn = proc, conn
        self.relay.reset()
        asyncio.get_running_loop().add_reader(conn.fileno(), self._receive, conn)
        log.info("ingest stage: started in process %s", proc.pid)

    def _receive(self, conn: Connection) -> None:
        try:
            while conn.poll():
                report = conn.recv()
                self.relay.apply(report["metrics"])
                self._lag, self._assigned = report["lag"], report["assigned"]
                self.failing = report["failing"]
        except (EOFError, OSError):  # the child is gone: ``run`` notices and restarts it
            self._forget(conn)
        except Exception:  # noqa: BLE001 - a bad report must not stop the worker's loop
            log.exception("ingest stage: unreadable report from its process")

    def _forget(self, conn: Connection) -> None:
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(conn.fileno())
        with contextlib.suppress(Exception):
            conn.close()

    async def run(self) -> None:
        while not self._stopping:
            await asyncio.sleep(STATUS_INTERVAL)
            proc = self._proc
            if self._stopping or proc is None or proc.is_alive():
                continue
            self.failing = f"the ingest process exited with code {proc.exitcode}"
            self._restarts.inc()
            log.error("ingest stage: %s; starting it again in %.0f s", self.failing,
                      RESTART_DELAY)
            if self._conn is not None:
                self._forget(self._conn)
            await asyncio.sleep(RESTART_DELAY)
            if not self._stopping:
                self._spawn()

    async def stop(self) -> None:
        self._stopping = True
        proc, conn = self._proc, self._conn
        if proc is None:
            return
        if proc.is_alive():
            proc.terminate()  # SIGTERM: it commits what it sent and leaves its group
            deadline = time.monotonic() + 10.0
            while proc.is_alive() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if proc.is_alive():
                proc.kill()
        if conn is not None:
            self._receive(conn)  # its last report
            self._forget(conn)
        proc.join(1.0)

    def lag(self) -> dict[int, int]:
        return dict(self._lag)

    def assigned(self) -> int:
        return self._assigned


def run_child(settings: Settings, bootstrap: str, max_request: int, conn: Connection,
              parent: int) -> None:
    """The child's entry point: the stage until SIGTERM, reporting to ``conn``."""
    _die_with(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C: the worker stops us
    logging.basicConfig(level=settings.log_level.upper(), stream=sys.stderr,
                        format="[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s")
    from streams.clientfixes import backoff_failed_metadata_updates
    from streams.logthrottle import throttle_client_logs
    from streams.runtime import tune_gc, use_uvloop

    backoff_failed_metadata_updates()
    throttle_client_logs()
    use_uvloop()
    tune_gc()
    asyncio.run(_serve(settings, bootstrap, max_request, conn, parent))


async def _serve(settings: Settings, bootstrap: str, max_request: int, conn: Connection,
                 parent: int) -> None:
    from streams.bulk import BulkIngest

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    metrics = Metrics(CollectorRegistry())
    watch_gc(metrics, "ingest")
    stage = BulkIngest(settings, bootstrap, metrics, max_request)

    def report() -> None:
        conn.send({"metrics": samples(metrics.registry), "lag": stage.lag(),
                   "assigned": stage.assigned(), "failing": stage.failing})

    async def reporting() -> None:
        # The first messages are reported at once: a reader of /metrics (a bench's clock, a
        # test waiting for the stage to start) sees them when they happen.
        while not stage.done:  # set by the first fetch sent on (cheap to look at)
            await asyncio.sleep(0.02)
        report()
        while True:
            await asyncio.sleep(STATUS_INTERVAL)
            if os.getppid() != parent:  # no PR_SET_PDEATHSIG here: the worker is gone
                stop.set()
            report()

    async def collecting() -> None:
        # ``tune_gc`` leaves full collections to a timer, as in the worker (``streams.app``):
        # without one, cycles that reached the oldest generation here would never be freed.
        while True:
            await asyncio.sleep(FULL_COLLECTION_INTERVAL)
            collect_cycles()
            release_free_memory()

    await stage.start()
    tasks = [asyncio.ensure_future(c) for c in (stage.run(), reporting(), collecting())]
    await stop.wait()
    await stage.stop()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    with contextlib.suppress(OSError):
        report()
    conn.close()


def _die_with(parent: int) -> None:
    """SIGKILL this process when its parent dies (Linux); elsewhere ``_serve`` polls."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it died before that took effect
        os._exit(1)
