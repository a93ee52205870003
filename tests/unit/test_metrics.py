"""Prometheus metrics: naming guide, and labels that can only take a bounded set of values."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from streams.metrics import Metrics

# Each of these takes values from a fixed, small set (formats, event types, reasons, stages,
# friction types, topic names, agents, endpoints, HTTP codes, outcomes, devices, partitions,
# and the journeys and steps of the journeys file), never an id.
BOUNDED = {"source", "type", "reason", "stage", "topic", "agent", "endpoint", "code", "outcome",
           "journey", "step", "device", "partition",
           "table",  # table: sessions or customers (the state tables)
           "le"}  # le: histogram buckets


def test_names_and_labels() -> None:
    m = Metrics(CollectorRegistry())
    families = list(m.registry.collect())
    assert families
    for fam in families:
        assert fam.name.startswith("frictionwatch_"), fam.name
        for sample in fam.samples:
            assert set(sample.labels) <= BOUNDED, (fam.name, sample.labels)
        if fam.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in fam.samples)
        if fam.type == "histogram":
            assert fam.name.endswith(("_seconds", "_ratio")), fam.name
