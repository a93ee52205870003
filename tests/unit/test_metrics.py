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
           "kind",  # kind: lead or renewal (the B2B account scores)
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


def test_observe_many_counts_as_observe_does_value_by_value() -> None:
    """Same buckets, count and sum as ``observe`` per value, bounds and NaN included."""
    import math
    import random

    from prometheus_client import CollectorRegistry, Histogram

    from streams.metrics import observe_many

    bounds = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
    rng = random.Random(4)
    values = [rng.choice([rng.expovariate(2.0), rng.choice(bounds), 0.0, 1e9])
              for _ in range(2000)] + [math.nan]
    reg = CollectorRegistry()
    h = Histogram("h", "", ["agent"], buckets=bounds, registry=reg)
    for v in values:
        h.labels(agent="one").observe(v)
    observe_many(h.labels(agent="many"), values)
    observe_many(h.labels(agent="many"), [])
    samples = {(s.name, s.labels.get("le")): {} for s in h.collect()[0].samples}
    for s in h.collect()[0].samples:
        samples[(s.name, s.labels.get("le"))][s.labels["agent"]] = s.value
    for key, by in samples.items():
        if key[0] == "h_created":
            continue
        a, b = by["one"], by["many"]
        assert (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9), (key, a, b)
