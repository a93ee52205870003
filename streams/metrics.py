"""Every Prometheus metric frictionwatch exports, declared once.

Names follow the Prometheus naming guide (``frictionwatch_`` namespace, ``_total`` counters,
``_seconds`` durations). Labels are bounded: sources, event types, reasons, endpoints and
codes. Never a session or customer id.

Hot-path code binds label children once (``EVENTS.labels(...)`` costs about 1 us; a cached
child's ``inc`` about 0.5 us).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from streams.deadletter import STAGES
from streams.runtime import watch_gc_pauses
from streams.topics import DEAD_LETTER_REASONS

__all__ = ["Cells", "DeliveryMetrics", "Metrics", "METRICS", "PartitionGauges",
           "add_to_histogram", "histogram_cells", "observe_many", "watch_gc"]


class Metrics:
    """The metric families, on one registry (a fresh one per test if wanted)."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.registry = registry
        self.events = Counter(
            "frictionwatch_events_total",
            "Canonical events processed, by source format and event type.",
            ["source", "type"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "frictionwatch_dead_letters_total",
            "Inputs sent to the dead-letter topic, by reason and pipeline stage.",
            ["reason", "stage"],
            registry=registry,
        )
        # Every reason x stage child exists from the start at 0, so increase() and rate() see
        # the first dead letter too (a child born at 1 has no earlier sample to compare).
        for reason in DEAD_LETTER_REASONS:
            for stage in STAGES:
                self.dead_letters.labels(reason=reason, stage=stage)
        self.messages = Counter(
            "frictionwatch_messages_total",
            "Kafka messages consumed by frictionwatch agents, by logical topic.",
            ["topic"],
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "frictionwatch_batch_seconds",
            "Time to process one batch of Kafka messages in an agent.",
            ["agent"],
            # Batches take from well under a millisecond to a few hundred ms.
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=registry,
        )
        self.signals = Counter(
            "frictionwatch_friction_signals_total",
            "Friction signals raised by the detectors, by friction type.",
            ["type"],
            registry=registry,
        )
        self.site_health = Counter(
            "frictionwatch_site_health_signals_total",
            "Pages failing outside checkout, the journeys' pages and the configured friction "
            "paths (error pages, slow pages, failed API calls), by type: the site's health, "
            "not a customer's friction (never alerts).",
            ["type"],
            registry=registry,
        )
        self.alerts = Counter(
            "frictionwatch_alerts_total",
            "Session alerts sent to the alerts topic, by the friction that triggered them.",
            ["reason"],
            registry=registry,
        )
        self.chat_triggers = Counter(
            "frictionwatch_chat_triggers_total",
            "Proactive chat triggers sent, by the friction that triggered them.",
            ["reason"],
            registry=registry,
        )
        self.followup_triggers = Counter(
            "frictionwatch_followup_triggers_total",
            "Follow-ups of abandoned sessions sent, by kind (abandoned_cart, abandoned_checkout).",
            ["kind"],
            registry=registry,
        )
        self.sessions_ended = Counter(
            "frictionwatch_sessions_ended_total",
            "Sessions expired after their idle gap, by outcome (converted, abandoned, browsed).",
            ["outcome"],
            registry=registry,
        )
        self.sessions_active = Gauge(
            "frictionwatch_sessions_active",
            "Sessions with state held by this worker.",
            registry=registry,
        )
        self.collector_requests = Counter(
            "frictionwatch_collector_requests_total",
            "HTTP collector requests, by endpoint and response code.",
            ["endpoint", "code"],
            registry=registry,
        )
        self.model_quality = Gauge(
            "frictionwatch_model_quality",
            "Rolling progressive quality of an online model's live predictions, each scored "
            "against its outcome before the model learned it (roc_auc, log_loss, accuracy).",
            ["model", "metric"],
            registry=registry,
        )
        self.model_examples_learned = Counter(
            "frictionwatch_model_examples_learned_total",
            "Examples an online model learned from outcomes.",
            ["model"],
            registry=registry,
        )
        self.alert_feedback = Counter(
            "frictionwatch_alert_feedback_total",
            "People's verdicts on alerts (useful, false_alarm), by the alert's reason "
            "(friction type; other when unknown).",
            ["reason", "verdict"],
            registry=registry,
        )
        self.alert_weight = Gauge(
            "frictionwatch_alert_weight",
            "What one signal of a friction type adds to a session's friction score (alerts at "
            "1), after people's verdicts on that type's alerts.",
            ["reason"],
            registry=registry,
        )
        # --- journeys: from the funnel's windows as they close (detectors.funnel) -------------
        self.step_entered = Counter(
            "frictionwatch_journey_step_entered_total",
            "Sessions entering a journey step for the first time, by device.",
            ["journey", "step", "device"],
            registry=registry,
        )
        self.step_passed = Counter(
            "frictionwatch_journey_step_passed_total",
            "Sessions getting past a journey step (on to a later one), by device.",
            ["journey", "step", "device"],
            registry=registry,
        )
        self.step_abandoned = Counter(
            "frictionwatch_journey_step_abandoned_total",
            "Sessions that ended in a journey step without converting (at their expiry).",
            ["journey", "step"],
            registry=registry,
        )
        self.step_signals = Counter(
            "frictionwatch_journey_friction_signals_total",
            "Friction signals by the journey step the session was in (step none: outside any "
            "journey) and friction type.",
            ["journey", "step", "type"],
            registry=registry,
        )
        self.orders = Counter(
            "frictionwatch_orders_total",
            "Orders placed, by journey.",
            ["journey"],
            registry=registry,
        )
        self.revenue = Counter(
            "frictionwatch_revenue_total",
            "Revenue of the orders placed, by journey (the shop's currency).",
            ["journey"],
            registry=registry,
        )
        self.revenue_at_risk = Counter(
            "frictionwatch_revenue_at_risk_total",
            "Revenue at risk named by session alerts (cart value times the probability of "
            "abandoning), by the friction that triggered them.",
            ["reason"],
            registry=registry,
        )
        self.churn_risk = Histogram(
            "frictionwatch_churn_risk_ratio",
            "Churn risk of customers, observed each time a customer's risk is scored.",
            buckets=(0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
            registry=registry,
        )
        # --- B2B accounts (streams.accounts, models.b2b) ----------------------------------
        self.account_score = Histogram(
            "frictionwatch_account_score_ratio",
            "B2B account scores as published, by kind: lead (quote won) or renewal (risk of "
            "cancelling).",
            ["kind"],
            buckets=(0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
            registry=registry,
        )
        self.account_outcomes = Counter(
            "frictionwatch_account_outcomes_total",
            "B2B account outcomes the scores learned from, by kind (lead, renewal) and outcome "
            "(won, lost; renewed, cancelled).",
            ["kind", "outcome"],
            registry=registry,
        )
        # --- journey incidents (detectors.incidents) --------------------------------------
        self.incidents_opened = Counter(
            "frictionwatch_incidents_opened_total",
            "Journey incidents opened, by journey step.",
            ["journey", "step"],
            registry=registry,
        )
        self.incident_open = Gauge(
            "frictionwatch_incident_open",
            "1 while a journey step has an open incident, else 0.",
            ["journey", "step"],
            registry=registry,
        )
        self.incident_revenue_lost = Gauge(
            "frictionwatch_incident_revenue_lost_per_hour",
            "Estimated revenue lost per hour by an open incident's step (0 when none).",
            ["journey", "step"],
            registry=registry,
        )
        # --- elements (detectors.elements): bounded by LabelSlots, never a free selector ----
        self.element_friction = Counter(
            "frictionwatch_element_friction_sessions_total",
            "Sessions meeting a dead, rage or error click on an element for the first time, by "
            "journey step (step none: outside any journey), friction type and element: each "
            "step's most hit elements (at most 20) by name, every other one as \"other\".",
            ["journey", "step", "type", "element"],
            registry=registry,
        )
        self.element_incidents_opened = Counter(
            "frictionwatch_element_incidents_opened_total",
            "Element-level incidents opened (many sessions hitting one element), by journey step.",
            ["journey", "step"],
            registry=registry,
        )
        self.element_incidents_open = Gauge(
            "frictionwatch_element_incidents_open",
            "Element-level incidents open at a journey step.",
            ["journey", "step"],
            registry=registry,
        )
        self.incident_windows_late = Counter(
            "frictionwatch_incident_windows_late_total",
            "Journey-stats records that arrived after their window was judged (not used).",
            registry=registry,
        )
        # --- KPIs (recording rules in deploy/prometheus/rules/kpis.yml) ---------------------
        self.session_outcomes = Counter(
            "frictionwatch_session_outcomes_total",
            "Sessions ended, by journey (none: no journey), device and outcome (converted, "
            "abandoned, browsed).",
            ["journey", "device", "outcome"],
            registry=registry,
        )
        self.session_orders = Counter(
            "frictionwatch_session_orders_total",
            "Orders of the sessions ended, by journey and device.",
            ["journey", "device"],
            registry=registry,
        )
        self.session_revenue = Counter(
            "frictionwatch_session_revenue_total",
            "Revenue of the sessions ended, by journey and device (the shop's currency).",
            ["journey", "device"],
            registry=registry,
        )
        # --- KPIs by customer segment (models.segments, streams.segments) -----------------
        # segment: s0 .. s{k-1} (FRICTIONWATCH_SEGMENTS_K) or unknown (anonymous sessions).
        self.segment_sessions = Counter(
            "frictionwatch_segment_sessions_total",
            "Sessions ended, by the customer's segment before the session (unknown: "
            "anonymous) and outcome (converted, abandoned, browsed).",
            ["segment", "outcome"],
            registry=registry,
        )
        self.segment_friction_sessions = Counter(
            "frictionwatch_segment_friction_sessions_total",
            "Sessions ended that met at least one friction signal, by customer segment.",
            ["segment"],
            registry=registry,
        )
        self.segment_orders = Counter(
            "frictionwatch_segment_orders_total",
            "Orders of the sessions ended, by customer segment.",
            ["segment"],
            registry=registry,
        )
        self.segment_revenue = Counter(
            "frictionwatch_segment_revenue_total",
            "Revenue of the sessions ended, by customer segment (the shop's currency).",
            ["segment"],
            registry=registry,
        )
        self.segment_info = Gauge(
            "frictionwatch_segment_info",
            "1 for each segment with its description in words, from its centre now (one "
            "series per segment: a new description replaces the old).",
            ["segment", "description"],
            registry=registry,
        )
        self.customers_known = Gauge(
            "frictionwatch_customers_known",
            "Customers whose state this worker keeps.",
            registry=registry,
        )
        self.customers_churned = Counter(
            "frictionwatch_customers_churned_total",
            "Customers who cancelled or did not renew.",
            registry=registry,
        )
        # --- experiments (detectors.holdout, models.experiments) -------------------------
        # Gauges of the totals the worker keeps in its table (so they survive restarts);
        # summed over workers they are the experiment's (deploy/prometheus/rules/kpis.yml).
        self.experiment_units = Gauge(
            "frictionwatch_experiment_units",
            "Eligible units whose attribution window closed, by experiment and arm.",
            ["experiment", "arm"],
            registry=registry,
        )
        self.experiment_conversions = Gauge(
            "frictionwatch_experiment_conversions",
            "Of those, units that ordered within their attribution window.",
            ["experiment", "arm"],
            registry=registry,
        )
        self.experiment_orders = Gauge(
            "frictionwatch_experiment_orders",
            "Orders of those units within their window.",
            ["experiment", "arm"],
            registry=registry,
        )
        self.experiment_revenue = Gauge(
            "frictionwatch_experiment_revenue",
            "Revenue of those units' orders within their window (the shop's currency).",
            ["experiment", "arm"],
            registry=registry,
        )
        self.experiment_delivered = Gauge(
            "frictionwatch_experiment_interventions_delivered",
            "Interventions delivered to those units (0 in a control arm).",
            ["experiment", "arm"],
            registry=registry,
        )
        self.experiment_pending = Gauge(
            "frictionwatch_experiment_units_pending",
            "Exposed units whose attribution window is still open.",
            ["experiment"],
            registry=registry,
        )
        self.exposures = Counter(
            "frictionwatch_experiment_exposures_total",
            "Eligible moments for an intervention, by experiment and arm (control: the "
            "intervention was withheld).",
            ["experiment", "arm"],
            registry=registry,
        )
        # --- pipeline health ----------------------------------------------------------------
        self.consumer_lag = Gauge(
            "frictionwatch_consumer_lag_messages",
            "Messages not yet processed: end offset minus committed offset, per input topic "
            "partition this worker consumes.",
            ["topic", "partition"],
            registry=registry,
        )
        self.processing_latency = Histogram(
            "frictionwatch_processing_latency_seconds",
            "From a message's Kafka timestamp to the end of the batch that processed it.",
            ["agent"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
            registry=registry,
        )
        self.state_flush_seconds = Histogram(
            "frictionwatch_state_flush_seconds",
            "Time to write a batch's changed session states to the table.",
            buckets=(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5),
            registry=registry,
        )
        self.gc_pause_seconds = Histogram(
            "frictionwatch_gc_pause_seconds",
            "Collections of CPython's cyclic garbage collector, by process (worker, ingest) "
            "and generation (0 young, 2 full): every agent of the process waits for as long.",
            ["process", "generation"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=registry,
        )
        # --- state budgets (detectors.budget) ------------------------------------------------
        self.state_evidence_dropped = Counter(
            "frictionwatch_state_evidence_dropped_total",
            "Pieces of evidence (detector memories, history entries, traits) dropped from a "
            "session's or customer's state to keep it within its size budget, by table.",
            ["table"],
            registry=registry,
        )
        for table in ("sessions", "customers"):
            self.state_evidence_dropped.labels(table=table)

        # --- the shell's error handling (streams.guard) -----------------------------------
        self.timer_errors = Counter(
            "frictionwatch_timer_errors_total",
            "Exceptions raised by a timer of the worker, by timer (logged; the timer runs "
            "again at its next interval).",
            ["timer"],
            registry=registry,
        )
        self.recovery_stalls = Counter(
            "frictionwatch_recovery_stalls_total",
            "Table recoveries that received no changelog record for a while with records "
            "left to read, and were started again (or, too many in a row, stopped the "
            "worker: streams.recoverywatch).",
            registry=registry,
        )
        self.process_restarts = Counter(
            "frictionwatch_process_restarts_total",
            "Times a process of the worker (the ingest stage, streams.ingest_process) exited "
            "on its own and was started again.",
            ["process"],
            registry=registry,
        )
        self.model_inputs_rejected = Counter(
            "frictionwatch_model_inputs_rejected_total",
            "Examples an online model refused to score or learn: a feature not finite or of "
            "an absurd magnitude.",
            ["model"],
            registry=registry,
        )

        # --- the fast path (streams.bulk, the agents' batch loops) ------------------------
        self.events_applied = Counter(
            "frictionwatch_events_applied_total",
            "Canonical events the sessions and customers agents fed to their state, by agent "
            "(entries re-sent after a crash included; the state skips them).",
            ["agent"],
            registry=registry,
        )
        self.acks_refused = Counter(
            "frictionwatch_acks_refused_total",
            "Acknowledgements the consumer refused: messages no agent applied (Faust dropped "
            "them in a rebalance, or they were fetched before it). Their partitions are read "
            "again from the committed offset (streams.acks).",
            registry=registry,
        )


#: The process-wide metrics on the default registry (what /metrics serves).
METRICS = Metrics()


class DeliveryMetrics:
    """``frictionwatch deliver``'s own families (``streams.deliver``), on the registry given:
    made only by that command, so the worker's /metrics does not carry them."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        from streams.deliver.policy import DESTINATIONS, OUTCOMES

        self.deliveries = Counter(
            "frictionwatch_deliveries_total",
            "Alerts and chat triggers handed to a destination, by destination and outcome "
            "(delivered, duplicate, expired, skipped, rejected, exhausted, not_configured).",
            ["destination", "outcome"],
            registry=registry,
        )
        for destination in DESTINATIONS:
            for outcome in OUTCOMES:
                self.deliveries.labels(destination=destination, outcome=outcome)
        self.attempts = Counter(
            "frictionwatch_delivery_attempts_total",
            "HTTP requests made to a destination (first tries and retries).",
            ["destination"],
            registry=registry,
        )
        self.seconds = Histogram(
            "frictionwatch_delivery_seconds",
            "Time from a delivery's first request to its end, retries and waits included.",
            ["destination"],
            # One request takes tens of ms; retries with backoff take seconds to minutes.
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                     300.0),
            registry=registry,
        )




class PartitionGauges:
    """The children of a gauge labelled ``(topic, partition)`` for the partitions a worker
    has now. Those it no longer has are removed, not left at their last value: summed over
    the workers (the consumer-lag alert does), a stale child would count a partition that
    moved away twice, for as long as the worker lives.

    >>> registry = CollectorRegistry()
    >>> lag = PartitionGauges(Gauge("lag", "", ["topic", "partition"], registry=registry))
    >>> lag.update({("web_events", "0"): 5, ("web_events", "1"): 7})
    >>> lag.update({("web_events", "1"): 2})  # partition 0 went to another worker
    >>> [(s.labels["partition"], s.value) for s in registry.collect() for s in s.samples]
    [('1', 2.0)]
    """

    def __init__(self, gauge: Gauge) -> None:
        self.gauge = gauge
        self._shown: set[tuple[str, str]] = set()

    def update(self, values: dict[tuple[str, str], float]) -> None:
        for labels in self._shown - values.keys():
            self.gauge.remove(*labels)
        for labels, value in values.items():
            self.gauge.labels(*labels).set(value)
        self._shown = set(values)


def observe_many(histogram: Any, values: Iterable[float]) -> None:
    """``histogram.observe(v)`` for each of ``values`` (a labelled child), with one increment
    per bucket and one of the sum instead of one of each per value.

    The bulk ingest stage observes every ingest message's latency, and at one event per
    message ``observe`` each time was 4% of the worker (py-spy, ``bench/throughput.py``). This
    reads ``Histogram``'s bucket bounds and values (prometheus_client 0.20 to 0.26); a
    histogram without them is observed value by value.

    >>> h = Histogram("h", "", buckets=(0.1, 1.0), registry=CollectorRegistry())
    >>> observe_many(h, [0.05, 0.1, 0.5, 7.0])
    >>> [(s.labels.get("le"), s.value) for s in h.collect()[0].samples if s.name == "h_bucket"]
    [('0.1', 2.0), ('1.0', 3.0), ('+Inf', 4.0)]
    """
    cells = histogram_cells(histogram)
    if cells is None:
        for v in values:
            histogram.observe(v)
        return
    bounds = cells[0]
    counts = [0] * len(bounds)
    added = 0.0
    for v in values:
        added += v
        if v == v:  # NaN: observe puts it in no bucket (only in the sum)
            counts[bisect_left(bounds, v)] += 1  # the first bound >= v, as observe picks
    add_to_histogram(cells, counts, added)


#: A histogram child's bucket upper bounds, bucket values and sum (``histogram_cells``).
Cells = tuple[Sequence[float], Sequence[Any], Any]


def histogram_cells(histogram: Any) -> Cells | None:
    """The bucket bounds, bucket values and sum inside a ``Histogram`` (a labelled child):
    prometheus_client 0.20 to 0.26 keep them as ``_upper_bounds``, ``_buckets`` and
    ``_sum``. None for a histogram without them (callers then fall back to ``observe``)."""
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        return None
    return bounds, buckets, total


def add_to_histogram(cells: Cells, counts: Sequence[float], added: float) -> None:
    """Add ``counts`` (per bucket, not cumulative, in the order of the bounds) to the
    histogram's buckets and ``added`` to its sum."""
    _, buckets, total = cells
    if added:
        total.inc(added)
    for i, n in enumerate(counts):
        if n:
            buckets[i].inc(n)


def watch_gc(metrics: Metrics, process: str) -> Callable[[str, dict[str, Any]], None]:
    """Observe this process's garbage-collector pauses into ``gc_pause_seconds``; returns the
    ``gc.callbacks`` entry that does it."""
    children = [metrics.gc_pause_seconds.labels(process=process, generation=str(g))
                for g in range(3)]
    return watch_gc_pauses(lambda generation, seconds: children[generation].observe(seconds))
