"""Every Kafka topic frictionwatch reads or writes: its name, its key and its value schema.

This is the one place topics are declared. The Faust app (``streams.app``), the collector,
the simulator, replay, the benches and the docs (``frictionwatch topics``) all read from here.

Session topics are keyed by session id and customer topics by customer id, so every agent's
state is co-partitioned with its input and nothing is repartitioned.

>>> from streams.topics import TOPICS, topic_name
>>> topic_name("web_events", "fw.")
'fw.web-events'
>>> TOPICS["web_events"].key
'session_id'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from kafka.partitioner.default import murmur2

__all__ = [
    "partition_for",
    "DeadLetterReason",
    "ORIGIN_HEADER",
    "SOURCE_HEADER",
    "TOPICS",
    "TopicSpec",
    "topic_name",
]

#: Kafka header naming the format of an ingest message ("segment", "ga4", "support",
#: "snowplow", "posthog", "canonical": ``streams.adapters.detect.SOURCES``). Without it the
#: format is detected from the payload's shape.
SOURCE_HEADER = "fw-source"

#: Kafka header of canonical messages from before bundles: "<origin>:<offset>", the ingest
#: partition and offset they came from (still read). Bundles carry each entry's origin
#: themselves (streams.bundle). State keeps the highest offset applied per origin, so a message
#: re-sent after a crash is recognised and skipped (exact recovery).
ORIGIN_HEADER = "fw-origin"

#: Why a message went to the dead-letter topic. Bounded: these are Prometheus label values.
DeadLetterReason = Literal[
    "not_json",  # bytes that are not JSON (or not UTF-8)
    "too_large",  # over settings.max_payload_bytes
    "too_many_events",  # more events in one message than settings.max_events_per_message
    "too_deep",  # JSON nested deeper than detectors.bounds.MAX_DEPTH
    "unknown_format",  # JSON, but no adapter recognises its shape
    "unknown_event",  # a recognised format, but an event name we do not map
    "missing_id",  # no session/anonymous id, or no event id where one is required
    "invalid_field",  # a field of the wrong type or out of range
    "empty",  # an empty body or an empty batch
    "processing_error",  # our code failed on it: a bug to fix, the input kept to replay
    "undeliverable",  # an alert or chat trigger a destination refused or never accepted
]
DEAD_LETTER_REASONS: tuple[str, ...] = DeadLetterReason.__args__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class TopicSpec:
    suffix: str
    key: str
    schema: str
    doc: str
    #: Compacted topics keep the latest value per key (tables' changelogs are Faust's).
    compacted: bool = False


TOPICS: dict[str, TopicSpec] = {
    "ingest": TopicSpec(
        suffix="ingest",
        key="anonymous/session id of the sending client when known, else none",
        schema="raw JSON as users emit it: a Segment event or batch, a GA4 Measurement Protocol "
        "payload, a support-desk ticket webhook, or canonical events; header fw-source names "
        "the format",
        doc="Everything the collector, replay and direct producers send. The normalize agent "
        "turns it into canonical events.",
    ),
    "web_events": TopicSpec(
        suffix="web-events",
        key="session_id",
        schema="a bundle (streams.bundle): {\"entries\": [[session id, origin, [canonical web "
        "events (detectors.events.WebEvent)]], ...]}, every entry's key on this partition; a "
        "JSON array of one session's events is still read",
        doc="Canonical web events, many sessions' per message; consumed by the session agent.",
    ),
    "support_events": TopicSpec(
        suffix="support-events",
        key="customer_id",
        schema="a bundle (streams.bundle) of canonical support events "
        "(detectors.events.SupportEvent: Ticket, Identify, Subscription, SessionSummary) by "
        "customer",
        doc="Tickets, identify calls and subscription changes per customer, and the summaries "
        "of known customers' ended sessions (sent by the session agent); consumed by the "
        "customer agent, which keeps customer state and scores churn risk.",
    ),
    "friction_signals": TopicSpec(
        suffix="friction-signals",
        key="session_id",
        schema="JSON object: a friction signal with its type, session, time and evidence",
        doc="Every friction signal a detector raises, for downstream use.",
    ),
    "alerts": TopicSpec(
        suffix="alerts",
        key="session_id (session alerts), hashed customer id (churn alerts), journey/step "
        "(incidents) or journey/step/element/<element> (element incidents)",
        schema="CloudEvents 1.0 JSON document (structured mode)",
        doc="Explained alerts for CX teams.",
    ),
    "chat_triggers": TopicSpec(
        suffix="chat-triggers",
        key="session_id",
        schema="CloudEvents 1.0 JSON document with a deterministic id and an expiry time",
        doc="Requests to a chat system to offer proactive help.",
    ),
    "email_triggers": TopicSpec(
        suffix="email-triggers",
        key="session_id (of the abandoned session)",
        schema="CloudEvents 1.0 JSON document with a deterministic id: the abandoned cart or "
        "checkout, the customer id to reach, the friction met",
        doc="Follow-ups of abandoned carts and checkouts, for an email or messaging system.",
    ),
    "labels": TopicSpec(
        suffix="labels",
        key="session_id or customer_id",
        schema="JSON object: a label (session outcome, churn event or human feedback) with the "
        "id of what it labels",
        doc="Outcomes and people's feedback, which the online models learn from.",
    ),
    "journey_stats": TopicSpec(
        suffix="journey-stats",
        key="journey/step",
        schema="JSON object detectors.funnel.StepBucket: one journey step in one window of "
        "event time (sessions entering and getting past it, orders, revenue, friction by "
        "type and segment, sessions with click friction by element)",
        doc="The journeys' funnels, window by window, from every worker; the incidents agent "
        "adds them up per step and watches them for incidents.",
    ),
    "experiments": TopicSpec(
        suffix="experiments",
        key="unit id: c:<hashed customer id> or s:<session id> (detectors.holdout.unit_of)",
        schema="JSON object: a holdout record (detectors.holdout): an exposure (arm, delivered "
        "or withheld, score, reason, time) or an exposed session's result (orders and revenue "
        "after its exposure)",
        doc="Both arms of every intervention's randomized holdout; the experiments agent adds "
        "them up per unit and arm for lift.",
    ),
    "triage": TopicSpec(
        suffix="triage",
        key="customer_id",
        schema="JSON object: ticket id, customer id, time, predicted category, its confidence "
        "and the routing queue",
        doc="Ticket triage records for support tooling: what a new ticket is about and where "
        "it should go.",
    ),
    "trend_events": TopicSpec(
        suffix="trend-events",
        key="all (one key: every record on one partition, so one worker sees every ticket)",
        schema="JSON array of canonical events: new tickets, and session summaries with friction",
        doc="What the support-trends agent learns from, forwarded by the customers agent from "
        "every customer partition.",
    ),
    "support_trends": TopicSpec(
        suffix="support-trends",
        key="topic: the rising topic's leading key phrase",
        schema="JSON object models.trends.SupportTrends record: key phrases, tickets in the "
        "window, expected, growth, hourly volume, example tickets (ids, redacted snippets), "
        "categories, the same customers' friction, and the knowledge-base article covering it "
        "(kb_article, null: none)",
        doc="Support ticket topics rising against their own baseline, when they start rising "
        "and hourly while they do.",
    ),
    "account_events": TopicSpec(
        suffix="account-events",
        key="account_id",
        schema="a bundle (streams.bundle) of canonical support events (Identify, Ticket, "
        "Subscription, SessionSummary) by account",
        doc="The events of customers tied to a B2B account (the trait account_id), forwarded "
        "by the customers agent; consumed by the accounts agent (streams.accounts).",
    ),
    "account_scores": TopicSpec(
        suffix="account-scores",
        key="account_id",
        schema="JSON object models.b2b.B2BScorer.document: account id, time, users, plan, "
        "lead_score and lead_reasons (quote stage), renewal_risk and renewal_reasons "
        "(contract)",
        doc="B2B accounts' lead score and renewal risk, explained in words, each time an "
        "account with an open quote or a running contract changes.",
    ),
    "feedback": TopicSpec(
        suffix="feedback",
        key="session_id",
        schema="JSON object models.feedback.Feedback: alert id, session id, verdict (useful or "
        "false_alarm), and optionally the alert's reason, who, a note and the time",
        doc="CX people's verdicts on alerts, from POST /feedback or any tool; the worker counts "
        "each and turns it into a label.",
    ),
    "checkpoints": TopicSpec(
        suffix="checkpoints",
        key="what is checkpointed: model/<name> (an online model or the detectors' learned "
        "thresholds) or incidents/<journey>/<step> (one step's baselines)",
        schema="msgpack streams.checkpoints.Published: examples learned, time, and the "
        "checkpoint bytes (models.checkpoint)",
        doc="The latest learned state each worker published, shared by all workers: one that "
        "starts or takes over partitions starts from it, not from a cold start.",
        compacted=True,
    ),
    "dead_letters": TopicSpec(
        suffix="dead-letters",
        key="none",
        schema="JSON object streams.deadletter.DeadLetter: reason, detail, stage, source topic, "
        "partition, offset, time and the original bytes (base64, at most 64 KiB, with the "
        "original's size and whether it was cut)",
        doc="Input frictionwatch could not use, with the reason. Never silently dropped.",
    ),
}


def topic_name(topic: str, prefix: str) -> str:
    """Full Kafka topic name for a declared topic (``KeyError`` for an undeclared one)."""
    return prefix + TOPICS[topic].suffix


def partition_for(key: bytes, partitions: int) -> int:
    """The partition a keyed record goes to: the producer's default partitioner (murmur2, as
    the Java client and aiokafka use for keys), so state is looked up where its input lands.

    >>> partition_for(b"s1", 4) == partition_for(b"s1", 4) < 4
    True
    """
    return (murmur2(key) & 0x7FFFFFFF) % partitions
