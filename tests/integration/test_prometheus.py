"""End to end with a real Prometheus: the worker, simulated traffic with a payment outage, and
Prometheus (Debian's package) scraping the worker with the repository's own rules.

- The outage opens an incident on the alerts topic, and FrictionwatchJourneyIncident fires in
  Prometheus for the step that pays.
- Every metric a Grafana panel or a Prometheus rule queries is one the live worker exports
  (after the traffic and one person's feedback on an alert).

Without the ``prometheus`` binary the tests skip, or fail with FRICTIONWATCH_REQUIRE_TOOLS=1
(what CI sets once it has installed it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from deployfiles import DEPLOY, SYNTHETIC, all_exprs, promql_names, recorded_series
from kafkahelp import (
    WorkerProcess,
    http_get,
    http_post,
    isolated_settings,
    producer,
    read_topic,
    topic,
)

from detectors.events import SUPPORT_EVENT_TYPES, encode_batch
from streams.broker import free_port
from streams.kafka_io import ensure_topics
from streams.normalize import normalize
from streams.sim import Incident, SimConfig, Simulator
from streams.topics import SOURCE_HEADER

pytestmark = pytest.mark.integration

#: Event-time minutes of traffic before the payment provider fails, and in all. The traffic
#: ends while the outage lasts, so the incident is still open when Prometheus is asked.
OUTAGE_AT_MIN, TRAFFIC_MIN = 6, 9
#: Events of one session within this many seconds go in one ingest message (canonical
#: events), so the test sends its traffic in seconds rather than minutes.
GROUP_S = 10.0


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path:
        return path
    if os.environ.get("FRICTIONWATCH_REQUIRE_TOOLS") == "1":
        pytest.fail(f"{name} is not installed and FRICTIONWATCH_REQUIRE_TOOLS=1")
    pytest.skip(f"{name} is not installed (apt-get install prometheus)")


def _traffic() -> list[tuple[bytes | None, bytes, str]]:
    """The simulator's traffic as ingest messages: each session's web events of a
    ``GROUP_S`` window as one canonical message, support payloads as they are."""
    sim = Simulator(SimConfig(seed=11, events_per_second=100, duration=TRAFFIC_MIN * 60,
                              incidents=(Incident("payment_outage", OUTAGE_AT_MIN * 60,
                                                  3600),)))
    groups: dict[tuple[float, str], list[Any]] = {}
    support: list[tuple[float, bytes | None, bytes]] = []
    for msg in sim.messages():
        if msg.source == "support":
            support.append((msg.time, msg.key, msg.encode()))
            continue
        norm = normalize(msg.encode(), msg.source, max_bytes=1 << 20, max_events=1000, now=0.0)
        for sid, evs in norm.web.items():
            for e in evs:
                groups.setdefault((e.time - e.time % GROUP_S, sid), []).append(e)
    assert not any(isinstance(e, SUPPORT_EVENT_TYPES) for evs in groups.values() for e in evs)
    out: list[tuple[float, bytes | None, bytes, str]] = [
        (evs[0].time, sid.encode(), encode_batch(evs), "canonical")
        for (_, sid), evs in groups.items()]
    out += [(t, key, value, "support") for t, key, value in support]
    out.sort(key=lambda m: (m[0] - m[0] % GROUP_S, m[0]))
    return [(key, value, source) for _, key, value, source in out]


class _Prometheus:
    """A Prometheus server scraping one worker every second, with the repo's rule files."""

    def __init__(self, binary: str, folder: Path, target: str) -> None:
        self.port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(p) for p in sorted((DEPLOY / "prometheus" / "rules")
                                                   .glob("*.yml"))],
            "scrape_configs": [{"job_name": "frictionwatch",
                                "static_configs": [{"targets": [target]}]}],
        }
        (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = folder / "prometheus.log"
        self.proc = subprocess.Popen(
            [binary, f"--config.file={folder / 'prometheus.yml'}",
             f"--storage.tsdb.path={folder / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log.open("wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                http_get(self.url("/-/ready"), timeout=1.0)
                return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"Prometheus not ready:\n{self.log.read_text()[-3000:]}")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def api(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        body = json.loads(http_get(self.url(f"/api/v1/{path}{query}")))
        assert body["status"] == "success", body
        return body["data"]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@dataclass
class Live:
    incidents: list[dict[str, Any]]
    firing: list[dict[str, Any]]
    metrics: str
    target_health: str


def _wait(what: str, check: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def live(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    binary = _tool("prometheus")
    tmp = tmp_path_factory.mktemp("prometheus")
    # Short warm-up and session gap: nine simulated minutes hold a warmed-up funnel, an
    # outage, and sessions that ended (outcomes, drop-off, model quality).
    settings = isolated_settings(tmp, incident_warmup_entries=20, session_gap=120,
                                 incident_lateness=30)
    ensure_topics(settings, kafka_bootstrap)
    messages = _traffic()
    with WorkerProcess(settings, kafka_bootstrap, tmp / "worker.log") as worker:
        prom = _Prometheus(binary, tmp, f"127.0.0.1:{settings.web_port}")
        try:
            p = producer(kafka_bootstrap)
            ingest = topic(settings, "ingest")
            for key, value, source in messages:
                p.send(ingest, key=key, value=value, headers=[(SOURCE_HEADER, source.encode())])
            # Something that is not a journey-stats record, where only the worker writes.
            p.send(topic(settings, "journey_stats"), key=b"retail_checkout/review",
                   value=b"{not json")
            p.flush()

            def incident_docs(records: list[Any]) -> list[dict[str, Any]]:
                docs = [json.loads(r.value) for r in records]
                return [d for d in docs if d["type"].startswith("io.frictionwatch.journey")]

            records = read_topic(kafka_bootstrap, topic(settings, "alerts"),
                                 until=lambda rs: any(d["data"]["step"] == "review"
                                                      for d in incident_docs(rs)),
                                 timeout=240)
            session_alert = next(json.loads(r.value) for r in records
                                 if json.loads(r.value)["type"] == "io.frictionwatch.session"
                                 ".friction")
            code, _ = http_post(worker.url + "/feedback", json.dumps({
                "alert_id": session_alert["id"], "session_id": session_alert["subject"],
                "verdict": "useful", "reason": session_alert["data"]["reason"]}).encode())
            assert code == 202

            def firing() -> list[dict[str, Any]]:
                return [a for a in prom.api("alerts")["alerts"]
                        if a["labels"]["alertname"] == "FrictionwatchJourneyIncident"
                        and a["state"] == "firing"]

            fired = _wait("FrictionwatchJourneyIncident to fire", firing, timeout=90)
            time.sleep(11)  # one more round of the worker's 10-second gauges (lag)
            health = prom.api("targets")["activeTargets"][0]["health"]
            yield Live(incident_docs(records), fired, worker.metrics_text(), health)
        finally:
            prom.stop()


def test_a_payment_outage_opens_an_incident_that_fires_in_prometheus(live: Live) -> None:
    opened = [d["data"] for d in live.incidents if d["data"]["status"] == "opened"]
    review = [i for i in opened if i["step"] == "review"]
    assert len(review) == 1, opened
    incident = review[0]
    assert incident["journey"] == "retail_checkout"
    assert "payment_declined" in {k["kind"] for k in incident["kinds"]}
    assert incident["sessions_entered"] > 0 and incident["summary"]
    assert live.target_health == "up"
    labels = {(a["labels"]["journey"], a["labels"]["step"]) for a in live.firing}
    assert ("retail_checkout", "review") in labels
    alert = next(a for a in live.firing if a["labels"]["step"] == "review")
    assert alert["labels"]["team"] == "cx" and alert["labels"]["severity"] == "critical"
    assert "review step is failing" in alert["annotations"]["summary"]


def test_every_metric_the_dashboards_and_rules_query_is_exported_by_the_worker(
        live: Live) -> None:
    exported = {line.split("{", 1)[0].split(" ", 1)[0]
                for line in live.metrics.splitlines() if line and not line.startswith("#")}
    recorded = recorded_series()
    missing = []
    for where, expr in all_exprs():
        names, _, _, _ = promql_names(expr)
        for name in names - SYNTHETIC - set(recorded):
            if name not in exported:
                missing.append(f"{where}: {name}")
    assert not missing, "\n".join(missing)


def test_a_bad_journey_stats_record_is_a_dead_letter_not_a_crash(live: Live) -> None:
    line = next(x for x in live.metrics.splitlines()
                if x.startswith("frictionwatch_dead_letters_total{")
                and 'stage="incidents"' in x and 'reason="not_json"' in x)
    assert float(line.rsplit(" ", 1)[1]) == 1.0


def test_sessions_are_counted_by_customer_segment_with_a_bounded_label(live: Live) -> None:
    """Known customers' sessions under their segment (the customers agent), anonymous ones
    under unknown (the sessions agent); the label takes only the k ids and unknown."""
    sessions: dict[str, float] = {}
    for line in live.metrics.splitlines():
        if line.startswith("frictionwatch_segment_sessions_total{"):
            segment = line.split('segment="', 1)[1].split('"', 1)[0]
            sessions[segment] = sessions.get(segment, 0.0) + float(line.rsplit(" ", 1)[1])
    assert set(sessions) == {"s0", "s1", "s2", "s3", "unknown"}
    assert sessions["unknown"] > 0
    assert sum(v for k, v in sessions.items() if k != "unknown") > 0
    described = [x for x in live.metrics.splitlines()
                 if x.startswith("frictionwatch_segment_info{")]
    assert len(described) == 4
