"""The one settings object: environment variables (prefix ``FRICTIONWATCH_``) with defaults that
run out of the box.

With no ``FRICTIONWATCH_BOOTSTRAP_SERVERS`` the CLI starts the embedded ``tansu`` broker.

>>> s = Settings(_env_file=None)
>>> s.bootstrap_servers is None, s.web_port, s.topic_prefix
(True, 6066, 'fw.')
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from detectors.noise import IgnoreList
from streams.adapters import segment
from streams.privacy import Privacy

ENV_PREFIX = "FRICTIONWATCH_"
#: Detectors that take an ignore list (``detector_ignore``).
IGNORABLE = frozenset({"rage_click", "dead_click", "error_click", "slow_page", "error_page",
                       "api_error"})


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    # --- Kafka ---------------------------------------------------------------------------
    #: Comma-separated ``host:port`` list. Unset: start the embedded tansu broker.
    bootstrap_servers: str | None = None
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: str | None = Field(default=None, repr=False)
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    topic_prefix: str = "fw."
    #: Partitions for topics frictionwatch creates; the unit of horizontal scale.
    partitions: int = Field(default=4, ge=1)
    replication_factor: int = Field(default=1, ge=1)

    # --- worker --------------------------------------------------------------------------
    app_id: str = "frictionwatch"
    #: The address the web server (collector, /metrics, /health) binds to. Loopback by
    #: default: the collector is only reachable from elsewhere when asked for (the Docker
    #: image sets 0.0.0.0); see "collector access" below for its keys.
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    data_dir: Path = Path("var/frictionwatch")
    #: Faust table store: ``memory://`` or ``rocksdb://`` (the ``[rocksdb]`` extra, rocksdict:
    #: local state survives a restart instead of being re-read from the changelog topics).
    store: Literal["memory://", "rocksdb://"] = "memory://"
    #: Copies of each table partition that other workers keep up to date from its changelog
    #: (Faust's ``table_standby_replicas``, whose own default is 1; Kafka Streams' is 0). A
    #: standby applies every state write a second time, on another worker: with 3 workers it
    #: took the CPU per event from 1.46x one worker's to 1.99x, and it made rebalances slower,
    #: not faster (a worker joining: 15.7 s of no progress against 7.3 s; one SIGKILLed: 30.0
    #: s against 8.0 s, session timeout 10 s; ``bench/scale.py``). A takeover without one
    #: reads the partition's compacted changelog instead.
    standby_replicas: int = Field(default=0, ge=0)
    #: Seconds between offset commits; session state is flushed to its table just before.
    commit_interval: float = Field(default=2.0, gt=0)
    #: Seconds between writes of changed session states, their messages' acks held until
    #: then (streams.dirty); 0 writes them with every batch. At 0.25, before recovery was
    #: made exact under load (streams.acks), one multi-worker run on Apache Kafka of three lost
    #: the tail events of 42 sessions; at 0.5 since, the crash and multi-worker tests pass (3
    #: runs, 2 beside a CPU hog), but the throughput bench at one event per message was no
    #: faster within its noise: off by default.
    state_flush_interval: float = Field(default=0.0, ge=0)
    #: Seconds between writes of the experiments ledgers (``streams.experiments``), their
    #: records' acks held until then; 0 writes them with every batch. A ledger is one record of
    #: every open unit of its partition, so a write costs as much as it holds.
    experiments_flush_interval: float = Field(default=1.0, ge=0)
    #: Most ingest messages the bulk ingest stage takes in one fetch (streams.bulk). Large
    #: enough that the per-fetch costs (one send per partition, one commit) vanish per message;
    #: small enough that a fetch is done in well under a second (5,000 one-event messages take
    #: about 0.1 s), so commits stay frequent.
    ingest_fetch_max_records: int = Field(default=5000, ge=1, le=100_000)
    #: Shortest time (seconds) from one fetch of the bulk ingest stage to the next when it is
    #: not reading a backlog, so a fetch gathers that much traffic: one fetch per few
    #: messages made bundles of 3 events at 2,000 events/s, each with its own sends and ack
    #: wait (the broker fell behind). Half of it is the stage's median added latency.
    ingest_fetch_interval: float = Field(default=0.01, gt=0, le=1.0)
    #: Longest time (seconds) the broker may hold a consumer's fetch that finds no new
    #: records, while records flow (half a second once none came for a second). Faust's fixed
    #: 1.5 s held busy partitions behind a fetch of quiet ones: the sessions stage ran 1.6 s
    #: behind at half its maximum rate. Shorter is quicker and costs more fetches: at 0.01,
    #: three workers cost 1.30 times one per event (median of 3), 1.17 at 0.05
    #: (``streams.clientfixes``).
    fetch_max_wait: float = Field(default=0.05, gt=0, le=1.5)
    #: Run the bulk ingest stage in a process of its own beside the worker, so it and the
    #: sessions agent take a core each (``streams.ingest_process``); off: in the worker's loop.
    ingest_process: bool = True
    #: Kafka messages handled together; session state is written once per session per batch.
    batch_max_messages: int = Field(default=1000, ge=1)
    #: Longest wait (seconds) to fill a batch; bounds added latency at low traffic. Each Faust
    #: stage adds about this much to every event's latency (bench/latency.py, 200 events/s:
    #: event -> alert p50/p99 168/352 ms at 0.1 s, 40/147 ms at 0.02 s); a backlog fills
    #: batches by count whatever this is.
    batch_within: float = Field(default=0.02, gt=0)
    #: Faust's group rebalance timeout; tansu needs about 3 s or every join waits 30 s.
    broker_rebalance_timeout: float = Field(default=3.0, gt=0)
    #: Seconds a table recovery may get no record on a changelog partition with records left
    #: before it is started again (streams.recoverywatch).
    recovery_stall_timeout: float = Field(default=20.0, gt=0)
    #: Consumer group session timeout. tansu holds a group join for half of it (measured:
    #: 60 s, Faust's default, costs 30 s per join), so keep it short; 6 s is Kafka's minimum
    #: (group.min.session.timeout.ms) and 10 s its pre-3.0 default.
    broker_session_timeout: float = Field(default=10.0, ge=6.0)
    #: Sessions idle longer than this (event time, seconds) are expired.
    session_gap: float = Field(default=1800.0, gt=0)
    #: A session id the source named (Segment ``context.sessionId``, GA4 ``session_id``...)
    #: that comes back within this many seconds of its last event continues its session
    #: instead of starting another (the source keeps its own idle rule). At most
    #: ``session_gap``: such ids are split on idle time like derived ones. Only the expired
    #: ids are kept that long (about 100 bytes each), not their state.
    explicit_session_gap: float = Field(default=14400.0, ge=0)
    #: YAML file of journeys (checkout funnels); unset: the packaged retail and B2B ones.
    journeys_file: Path | None = None
    #: URL globs (on the page URL or path) where error pages, slow pages and failed API calls
    #: are the customer's friction, beside checkout and the journeys' own pages; elsewhere
    #: they are site health (counted, on the dashboards, never alerting). JSON in the
    #: environment: '["*/account/*", "/p/*"]'.
    friction_paths: list[str] = []
    #: Salt for the hashed customer ids alerts carry (set it to keep them unlinkable).
    customer_salt: str = ""
    #: Alert (and offer chat) on a checkout stall known only from silence, in sessions whose
    #: source sends no presence signal (they may simply have left).
    alert_silent_stalls: bool = False
    #: Offer chat on a stall whose customer is only presumed there (their source sends leave
    #: beacons and none came; beacons get lost). Off: those alert, offers need a heartbeat.
    chat_presumed_stalls: bool = False
    #: Segment track names that are presence signals (``detectors.events.Presence``), to
    #: "left", "hidden", "visible" or "here" (a heartbeat, sent again and again while the
    #: page is in use), added to the built-in ones ("Page Left", "Page Hidden",
    #: "Page Heartbeat"...). JSON in the environment: '{"Tab Closed": "left"}'.
    presence_events: dict[str, Literal["here", "visible", "hidden", "left"]] = {}
    #: Score sessions at checkout events with the online abandonment model
    #: (``models.abandonment``); its probability sets alerts' revenue at risk.
    abandonment_model: bool = True
    #: Score customers' churn risk at each change of their state (``models.churn``), learning
    #: from cancellations; alerts when the risk reaches ``churn_alert_at``, and again only
    #: after it fell below ``churn_rearm_at``.
    churn_model: bool = True
    #: Observation window: a customer who churns within this many days of a score counts as
    #: churned for it.
    churn_window_days: float = Field(default=30.0, gt=0)
    churn_alert_at: float = Field(default=0.6, ge=0, le=1)
    churn_rearm_at: float = Field(default=0.45, ge=0, le=1)
    #: Group customers into segments online (``models.segments``), learning at each web
    #: session's end; the KPIs are also counted by segment (``frictionwatch_segment_*``).
    customer_segments: bool = True
    #: Number of segments: the segment label takes this many values, plus ``unknown``
    #: (anonymous sessions). A handful reads well on a dashboard; 20 is plenty.
    segments_k: int = Field(default=4, ge=1, le=20)
    #: B2B accounts (``streams.accounts``): the events of customers tied to an account (the
    #: trait ``account_id``, a Segment ``group`` call) are forwarded to the accounts agent,
    #: which keeps each account's state and publishes its lead score (quote stage) and
    #: renewal risk (contract) to the account-scores topic, learning from the outcomes.
    b2b_accounts: bool = True
    #: Predict new tickets' category and queue (``models.triage``), learning from the
    #: category agents set; records go to the triage topic.
    ticket_triage: bool = True
    #: Routing queue per predicted ticket category, as JSON in the environment
    #: (``{"card_arrival": "cards", "refund_not_showing_up": "billing"}``); other categories
    #: go to ``triage_default_queue``.
    triage_queues: dict[str, str] = {}
    triage_default_queue: str = "general"
    #: Find support topics rising against their own baseline (``models.trends``); records go
    #: to the support-trends topic.
    support_trends: bool = True
    #: Knowledge-base article titles or URLs a rising topic is matched against (by title
    #: words): a JSON list, or the path of a file holding one (or one title per line).
    kb_articles: Annotated[list[str], NoDecode] = []
    #: Let people's verdicts on alerts tune the alert policy: a friction type often judged a
    #: false alarm weighs less in the friction score (``models.feedback.FeedbackTally``).
    learn_from_feedback: bool = True
    #: Ignore lists per detector (``detectors.noise.IgnoreList``): events on these elements or
    #: pages do not count for it. JSON in the environment, keyed by friction type (rage_click,
    #: dead_click, error_click, slow_page, error_page, api_error):
    #: ``{"rage_click": {"selectors": [".carousel-next"], "paths": ["/admin"], "ids": ["x"]}}``.
    detector_ignore: dict[str, dict[Literal["selectors", "paths", "ids"], list[str]]] = {}
    #: Watch each journey step for incidents (``detectors.incidents``): alerts on the alerts
    #: topic when a step breaks for many sessions at once.
    incident_detection: bool = True
    #: Length of the windows journey steps are counted in (event time, seconds).
    incident_window_seconds: float = Field(default=15.0, gt=0)
    #: How far behind the furthest partition's event time a window is closed (seconds):
    #: room for partitions that lag a little.
    incident_lateness: float = Field(default=15.0, ge=0)
    #: Sessions that must have entered a step before it is watched (its baseline's warm-up).
    incident_warmup_entries: float = Field(default=100.0, ge=0)
    #: Evidence (CUSUM log-likelihood ratio, nats) that opens an incident.
    incident_open_at: float = Field(default=12.0, gt=0)
    #: Randomized holdout of proactive chat offers (``detectors.holdout``): a
    #: ``holdout_control_share`` of units (customers, or anonymous sessions) never get one; a
    #: counterfactual exposure is recorded for them instead, and ``models.experiments``
    #: measures the lift. Off: every chat trigger is sent and nothing is measured.
    holdout: bool = True
    holdout_control_share: float = Field(default=0.2, gt=0, lt=1)
    #: Change it to start a new experiment: every unit is drawn again.
    holdout_salt: str = "frictionwatch"
    #: Seconds after a unit's first exposure in which its orders count for it.
    attribution_window: float = Field(default=86_400.0, gt=0)
    #: What one delivered intervention costs, per intervention (JSON in the environment:
    #: ``{"chat": 2.5}``), for ROI; unset: ROI is not reported.
    intervention_costs: dict[str, float] = {}
    #: Lift intervals (``models.lift``): 1 - coverage at every look, and the number of units
    #: at which they are tightest.
    lift_alpha: float = Field(default=0.05, gt=0, lt=1)
    #: Follow-ups of abandoned carts and checkouts of reachable sessions (a customer id) on
    #: the email triggers topic (``detectors.followup``), in a holdout of their own when
    #: ``holdout`` is on. Off by default: messaging customers is the shop's decision.
    followups: bool = False
    #: Seconds after an abandoned session's last event at which its follow-up goes out
    #: (not before the session has expired); one hour is the usual first abandoned-cart email.
    followup_delay: float = Field(default=3600.0, ge=0)
    lift_horizon: float = Field(default=50_000.0, gt=0)
    #: Seconds between checkpoints of what the models learned (``data_dir/models``).
    model_checkpoint_interval: float = Field(default=60.0, gt=0)
    log_level: str = "WARNING"

    # --- input validation ----------------------------------------------------------------
    #: Largest accepted body/message. Segment's own batch limit is 500 KB.
    max_payload_bytes: int = Field(default=512 * 1024, ge=1024)
    #: Most events accepted in one message/batch.
    max_events_per_message: int = Field(default=1000, ge=1)

    # --- collector access ----------------------------------------------------------------
    # Each list comes from JSON (``["k1", "k2"]``) or comma-separated text in the environment.
    # An endpoint with no credential configured for it stays open (the worker warns when it
    # binds beyond loopback with an open collector).
    #: Segment write keys: HTTP Basic user name (empty password) or ``writeKey`` in the body.
    segment_write_keys: Annotated[list[str], NoDecode] = Field(default=[], repr=False)
    #: GA4 Measurement Protocol ``api_secret`` query parameter values.
    ga4_api_secrets: Annotated[list[str], NoDecode] = Field(default=[], repr=False)
    #: GA4 ``measurement_id`` values accepted with a right api_secret; empty: any.
    ga4_measurement_ids: Annotated[list[str], NoDecode] = []
    #: Help-desk webhook signing secrets (Zendesk's scheme: base64 HMAC-SHA256 of the
    #: signature timestamp + body); more than one while a secret is rotated.
    webhook_secrets: Annotated[list[str], NoDecode] = Field(default=[], repr=False)
    #: Largest gap (seconds) between a webhook's signature timestamp and now (replays).
    webhook_tolerance: float = Field(default=300.0, gt=0)
    #: ``Authorization: Bearer`` tokens any collector endpoint accepts (the way in for
    #: canonical events and other senders on ``/collect``).
    collector_tokens: Annotated[list[str], NoDecode] = Field(default=[], repr=False)
    #: Requests per second per client address (token bucket); 0 turns the limit off. Generous
    #: by default: a site's clients send batches, and tests and benches post over loopback.
    rate_limit: float = Field(default=500.0, ge=0)
    #: Requests a client may send at once above the rate.
    rate_limit_burst: int = Field(default=1000, ge=1)
    #: Clients remembered by the rate limit (the least recently seen are forgotten first).
    rate_limit_clients: int = Field(default=10_000, ge=1)

    @field_validator("segment_write_keys", "ga4_api_secrets", "ga4_measurement_ids",
                     "webhook_secrets", "collector_tokens", "privacy_allow", "privacy_deny",
                     mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        """``["a", "b"]`` or ``a,b`` from the environment; lists pass through."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value
    @field_validator("kb_articles", mode="before")
    @classmethod
    def _kb_articles(cls, value: object) -> object:
        """A JSON list, or a file of one (or of one title per line)."""
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text and not text.startswith("["):
            text = Path(text).read_text().strip()  # a missing file fails the start, clearly
            if not text.startswith("["):
                return [line.strip() for line in text.splitlines() if line.strip()]
        return json.loads(text) if text else []

    @field_validator("detector_ignore")
    @classmethod
    def _check_ignore(cls, value: dict[str, dict[str, list[str]]]
                      ) -> dict[str, dict[str, list[str]]]:
        """Known detectors and selectors of the supported subset, or a clear error at start."""
        unknown = set(value) - IGNORABLE
        if unknown:
            raise ValueError(f"unknown detectors {sorted(unknown)}; one of {sorted(IGNORABLE)}")
        for spec in value.values():
            IgnoreList.from_spec(spec)
        return value

    # --- privacy (streams.privacy) ---------------------------------------------------------
    #: Redact emails, card numbers, phone numbers and secrets in URLs and free text from every
    #: event and dead letter before they reach a topic (the collector and normalize stage).
    privacy_redact: bool = True
    #: Property names never redacted: canonical fields, trait keys, JSON keys, URL query keys.
    privacy_allow: Annotated[list[str], NoDecode] = []
    #: Property names always dropped (the core ids and times excepted).
    privacy_deny: Annotated[list[str], NoDecode] = []

    @cached_property
    def privacy(self) -> Privacy:
        """The redaction these settings ask for (built once: it plans per event type)."""
        return Privacy(enabled=self.privacy_redact, allow=self.privacy_allow,
                       deny=self.privacy_deny, salt=self.customer_salt)

    # --- input bounds and state budgets (detectors.bounds, detectors.budget) --------------
    #: Oldest accepted event, in seconds before the worker's clock (unset: no limit). Unset by
    #: default: replays, backfills and the simulator's fixed 2026-01-01 start are in the past.
    max_event_age: float | None = Field(default=None, gt=0)
    #: Newest accepted event, in seconds after the worker's clock. A day: client clocks are
    #: off by minutes to hours (a time zone applied twice: up to 14 h), and the demo's
    #: simulated clock runs ahead of the real one (``--speed 4``: 4 shop minutes a minute).
    max_event_lead: float | None = Field(default=86_400.0, gt=0)
    #: Largest stored session and customer state (encoded bytes); past it the oldest evidence
    #: is dropped and counted. 64 KiB: typical states are 1-5 KiB, and the changelog's records
    #: must stay far below the producer's 1 MiB request size.
    session_state_budget: int = Field(default=64 * 1024, ge=4096)
    customer_state_budget: int = Field(default=64 * 1024, ge=4096)

    # --- delivery (``frictionwatch deliver``, streams.deliver) -----------------------------
    # No destination is configured by default: ``deliver`` then reads, counts and sends
    # nothing. A destination is on once its URL (and, for the APIs, its credentials) is set.
    #: Slack incoming webhook URL.
    deliver_slack_webhook_url: str | None = Field(default=None, repr=False)
    #: Intercom REST API: base URL, access token, the admin proactive messages come from,
    #: and the ``Intercom-Version`` header.
    deliver_intercom_url: str = "https://api.intercom.io"
    deliver_intercom_token: str | None = Field(default=None, repr=False)
    deliver_intercom_admin_id: str | None = None
    deliver_intercom_version: str = "2.11"
    #: Zendesk: ``https://<subdomain>.zendesk.com``, the agent's email and an API token.
    deliver_zendesk_url: str | None = None
    deliver_zendesk_email: str | None = None
    deliver_zendesk_token: str | None = Field(default=None, repr=False)
    #: A generic HTTPS webhook and its HMAC-SHA256 signing secret (empty: unsigned).
    deliver_webhook_url: str | None = None
    deliver_webhook_secret: str = Field(default="", repr=False)
    #: Logical topics (``alerts``, ``chat_triggers``) each destination takes.
    deliver_slack_topics: Annotated[list[str], NoDecode] = ["alerts"]
    deliver_intercom_topics: Annotated[list[str], NoDecode] = ["chat_triggers"]
    deliver_zendesk_topics: Annotated[list[str], NoDecode] = ["alerts"]
    deliver_webhook_topics: Annotated[list[str], NoDecode] = ["alerts", "chat_triggers"]
    #: Attempts per delivery in all, before it is dead-lettered.
    deliver_attempts: int = Field(default=5, ge=1, le=20)
    #: Backoff before retry n: uniform in [0, min(max, base * 2^(n-1))] seconds (full jitter).
    deliver_backoff_base: float = Field(default=0.5, gt=0)
    deliver_backoff_max: float = Field(default=30.0, gt=0)
    #: Longest ``Retry-After`` honoured (seconds); a longer one is cut to it.
    deliver_max_retry_after: float = Field(default=300.0, gt=0)
    #: Seconds one HTTP request may take.
    deliver_timeout: float = Field(default=10.0, gt=0)
    #: Seconds between offset commits (only of documents whose delivery is done).
    deliver_commit_interval: float = Field(default=1.0, gt=0)
    #: Deliveries remembered (on disk, under the data dir) so that none is sent twice.
    deliver_dedupe_size: int = Field(default=50_000, ge=1)
    #: Where a new consumer group starts: "latest" (a new deployment does not send the
    #: topics' backlog to CX tools) or "earliest".
    deliver_start: Literal["latest", "earliest"] = "latest"
    #: Port of ``deliver``'s /metrics (bound to ``web_host``).
    deliver_metrics_port: int = Field(default=6067, ge=0)

    @field_validator("deliver_slack_topics", "deliver_intercom_topics",
                     "deliver_zendesk_topics", "deliver_webhook_topics", mode="before")
    @classmethod
    def _split_topics(cls, value: object) -> object:
        return cls._split_list(value)

    @field_validator("deliver_slack_topics", "deliver_intercom_topics",
                     "deliver_zendesk_topics", "deliver_webhook_topics")
    @classmethod
    def _check_topics(cls, value: list[str]) -> list[str]:
        unknown = set(value) - {"alerts", "chat_triggers"}
        if unknown:
            raise ValueError(f"unknown topics {sorted(unknown)}: alerts or chat_triggers")
        return value

    @cached_property
    def bootstrap_list(self) -> list[str]:
        return [s.strip() for s in (self.bootstrap_servers or "").split(",") if s.strip()]

    def kafka_client_kwargs(self) -> dict[str, object]:
        """TLS/SASL settings in the keyword form aiokafka and kafka-python both accept."""
        kwargs: dict[str, object] = {"security_protocol": self.security_protocol}
        if self.sasl_mechanism:
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.sasl_username
            kwargs["sasl_plain_password"] = self.sasl_password
        if self.security_protocol in ("SSL", "SASL_SSL"):
            import ssl

            ctx = ssl.create_default_context(
                cafile=str(self.ssl_cafile) if self.ssl_cafile else None
            )
            if self.ssl_certfile:
                ctx.load_cert_chain(
                    str(self.ssl_certfile), str(self.ssl_keyfile) if self.ssl_keyfile else None
                )
            kwargs["ssl_context"] = ctx
        return kwargs


def load(**overrides: object) -> Settings:
    """Settings from the environment, with explicit overrides (e.g. from CLI flags) on top."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    settings = Settings(**clean)  # type: ignore[arg-type]
    # Every process (worker, ingest, collector, backtest) loads its settings once, first: the
    # adapters learn the configured names there.
    segment.add_presence_events(settings.presence_events)
    return settings
