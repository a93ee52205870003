"""The deploy/ files' queries, read as their tools read them: the rule files prometheus.yml
loads, alert and recording rules, Grafana panels, and the metric and label names in PromQL
(enough of it to check them). Shared by the static checks (``unit/test_compose.py``) and the
check against a live worker (``integration/test_prometheus.py``)."""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry

from streams.metrics import Metrics
from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
PROMETHEUS_FILE = DEPLOY / "prometheus" / "prometheus.yml"
DASHBOARD_FILES = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))


def _load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def rule_files(prom: dict[str, Any] | None = None) -> list[Path]:
    """The rule files prometheus.yml loads (globs relative to its folder, as Prometheus does)."""
    prom = prom or _load_yaml(PROMETHEUS_FILE)
    found: list[Path] = []
    for pattern in prom.get("rule_files", []):
        found += sorted(PROMETHEUS_FILE.parent.glob(pattern))
    return found


def _rules() -> list[dict[str, Any]]:
    return [
        rule
        for path in rule_files()
        for group in _load_yaml(path)["groups"]
        for rule in group["rules"]
    ]


def alert_rules() -> list[dict[str, Any]]:
    return [rule for rule in _rules() if "alert" in rule]


def recording_rules() -> list[dict[str, Any]]:
    return [rule for rule in _rules() if "record" in rule]


_KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
}
#: Series Prometheus makes itself, next to what the targets export.
SYNTHETIC = {
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "ALERTS",
    "ALERTS_FOR_STATE",
}


def promql_names(expr: str) -> tuple[set[str], set[str], dict[str, set[str]], set[str]]:
    """Metric names, label names used in ``by``/``on``-style clauses, label names matched per
    metric, and ``job`` values matched, in a PromQL expression (Grafana ``$vars`` allowed)."""
    matchers: dict[str, set[str]] = {}
    jobs: set[str] = set()
    for name, body in re.findall(r"([A-Za-z_:][\w:]*)?\s*\{([^}]*)\}", expr):
        for label, _op, value in re.findall(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"', body):
            matchers.setdefault(name, set()).add(label)
            if label == "job":
                jobs.add(value)
    rest = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\"[^\"]*\"", " ", expr)
    grouping: set[str] = set()
    for labels in re.findall(
        r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", rest
    ):
        grouping |= {x.strip() for x in labels.split(",") if x.strip()}
    rest = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", rest)
    rest = re.sub(r"\b\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?:ms|[smhdwy])?\b", " ", rest)
    metrics = {
        m.group(1)
        for m in re.finditer(r"(?<![\w$:])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()", rest)
        if m.group(1).lower() not in _KEYWORDS
    }
    return metrics, grouping, matchers, jobs


def exported_series() -> dict[str, set[str]]:
    """Every series name the worker's metrics export, with its label names."""
    metrics = Metrics(CollectorRegistry())
    labels = {
        family.name: set(getattr(metric, "_labelnames", ()))
        for metric in vars(metrics).values()
        if hasattr(metric, "collect")
        for family in metric.collect()
    }
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("", "_sum", "_count", "_created"),
        "gauge": ("",),
    }
    series: dict[str, set[str]] = {}
    for family in metrics.registry.collect():
        for suffix in suffixes[family.type]:
            extra = {"le"} if suffix == "_bucket" else set()
            series[family.name + suffix] = labels[family.name] | extra
    return series


def dashboard_exprs() -> Iterator[tuple[str, str]]:
    for path in DASHBOARD_FILES:
        for panel in panels_of(json.loads(path.read_text())):
            for target in panel.get("targets", []):
                yield f"{path.name}: {panel['title']}", target["expr"]


def panels_of(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # collapsed rows


def recorded_series() -> dict[str, set[str]]:
    """Series the recording rules make, with their labels (what they aggregate by, or the
    labels of the recorded series they combine)."""
    out: dict[str, set[str]] = {}
    for rule in recording_rules():
        metrics, grouping, _, _ = promql_names(rule["expr"])
        out[rule["record"]] = grouping or set().union(*(out.get(m, set()) for m in metrics))
    return out


def all_exprs() -> list[tuple[str, str]]:
    rules = [(f"alert {r['alert']}", r["expr"]) for r in alert_rules()]
    rules += [(f"record {r['record']}", r["expr"]) for r in recording_rules()]
    return rules + list(dashboard_exprs())


# --- the worker as deploy files see it -------------------------------------------------------


@dataclass(frozen=True)
class WorkerFacts:
    """What a deploy file must agree with, read off a real (unstarted) worker app."""

    routes: frozenset[str]  # HTTP paths the worker serves (/health, /collect/..., /metrics)
    consumer_group: str  # Faust's group id
    consumed_topics: frozenset[str]  # topics its agents read
    #: topic -> the consumer group that reads it: Faust's agents, and the bulk ingest stage in
    #: a group of its own (streams.bulk.ingest_group)
    group_of: dict[str, str]
    auto_offset_reset: str


def worker_facts(settings: Settings) -> WorkerFacts:
    """Build the worker's Faust app for ``settings`` (nothing connects or starts) and read its
    routes, consumer group and input topics."""
    from streams.app import create_worker  # heavy: Faust, the models
    from streams.bulk import ingest_group
    from streams.topics import topic_name

    with tempfile.TemporaryDirectory() as tmp:
        settings = settings.model_copy(update={"data_dir": Path(tmp)})
        app = create_worker(settings, "localhost:9092", metrics=Metrics(CollectorRegistry())).app
        topics = {
            topic for agent in app.agents.values() for topic in agent.channel.topics
        }
        group_of = dict.fromkeys(topics, app.conf.id)
        group_of[topic_name("ingest", settings.topic_prefix)] = ingest_group(settings)
        return WorkerFacts(
            routes=frozenset(app.web.views),
            consumer_group=app.conf.id,
            consumed_topics=frozenset(group_of),
            group_of=group_of,
            auto_offset_reset=app.conf.consumer_auto_offset_reset,
        )
