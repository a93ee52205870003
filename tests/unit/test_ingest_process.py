"""streams.ingest_process: what the ingest stage's process counts reaches the worker's metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from streams.ingest_process import MetricsRelay, samples
from streams.metrics import Metrics, observe_many


def _value(m: Metrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


def test_counters_add_what_they_gained_once_whatever_the_reports() -> None:
    child, here = Metrics(CollectorRegistry()), Metrics(CollectorRegistry())
    relay = MetricsRelay(here)
    here.events.labels(source="collector", type="page_view").inc(7)  # the worker's own
    child.events.labels(source="segment", type="page_view").inc(10)
    child.dead_letters.labels(reason="not_json", stage="normalize").inc(2)
    relay.apply(samples(child.registry))
    relay.apply(samples(child.registry))  # the same values again: nothing more
    child.events.labels(source="segment", type="page_view").inc(5)
    relay.apply(samples(child.registry))
    assert _value(here, "frictionwatch_events_total", source="segment", type="page_view") == 15
    assert _value(here, "frictionwatch_events_total", source="collector", type="page_view") == 7
    assert _value(here, "frictionwatch_dead_letters_total", reason="not_json",
                  stage="normalize") == 2
    # A process started again counts from zero: its values are all new.
    relay.reset()
    again = Metrics(CollectorRegistry())
    again.events.labels(source="segment", type="page_view").inc(3)
    relay.apply(samples(again.registry))
    assert _value(here, "frictionwatch_events_total", source="segment", type="page_view") == 18


def test_histograms_arrive_bucket_by_bucket_with_their_sum() -> None:
    child, here, alone = (Metrics(CollectorRegistry()) for _ in range(3))
    relay = MetricsRelay(here)
    values = [0.0005, 0.003, 0.003, 0.2, 0.9, 4.0, 120.0]
    for part in (values[:3], values[3:]):
        observe_many(child.processing_latency.labels(agent="normalize"), part)
        relay.apply(samples(child.registry))
    observe_many(alone.processing_latency.labels(agent="normalize"), values)

    def histogram(m: Metrics) -> list[tuple[str, dict[str, str], float]]:
        return [(s.name, s.labels, s.value) for f in m.registry.collect()
                if f.name == "frictionwatch_processing_latency_seconds" for s in f.samples
                if not s.name.endswith("_created")]

    assert histogram(here) == histogram(alone)
    assert _value(here, "frictionwatch_processing_latency_seconds_count",
                  agent="normalize") == len(values)


def test_a_report_of_a_metric_this_process_does_not_have_is_ignored() -> None:
    here = Metrics(CollectorRegistry())
    MetricsRelay(here).apply([("no_such_family", "counter", "no_such_family_total", (), 3.0)])
    assert _value(here, "no_such_family_total") is None
