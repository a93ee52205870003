"""The accounts agent: B2B accounts' state and scores (``detectors.account``, ``models.b2b``).

A customer is tied to an account by the trait ``account_id`` (an ``identify``, or a Segment
``group`` call: ``streams.adapters.segment``), which the customers agent keeps in the
customer's state; from then on it forwards that customer's account events (``for_account``) to
the account-events topic, keyed by account id. Here each account's state is folded in the
accounts table, the scorer (``B2BScorer``) learns the outcomes as they settle (quotes won or
lost, contracts renewed or cancelled), and each account changed in a batch that has a live
score (an open quote, a running contract) gets its score document on the account-scores topic.
The scorer is checkpointed to the worker's disk and the checkpoints topic like the other
models: restored from disk at start, and at the first assignment from the checkpoints topic
if the copy published there learned more (``adopt``).

State stays bounded per account (``detectors.account``: users, sessions, tickets and traits
are capped); accounts are not expired, as customers are not: their number is the business's
count of accounts.

>>> from detectors.customer import CustomerState
>>> account_of(CustomerState(customer_id="u1", traits={"account_id": "acme"}))
'acme'
>>> account_of(CustomerState(customer_id="u1", traits={"account_id": True})) is None
True
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, cast

import faust
import msgspec
from faust.types import EventT

from detectors import events as ev
from detectors.account import AccountState, outcome
from detectors.bounds import ID_CHARS
from detectors.customer import CustomerState
from detectors.session import is_replay
from models.b2b import KINDS, B2BScorer
from streams import checkpoints
from streams.bundle import Entry, encode_bundle
from streams.checkpoints import Published, Shared
from streams.context import Context, dead_letter, decode_entries, entry_origin, failed
from streams.deadletter import DeadLetter
from streams.guard import inc_finite, set_finite
from streams.take import take_batches

__all__ = ["ACCOUNTS_TABLE", "AccountRecord", "account_of", "adopt", "fold", "for_account",
           "forwarded", "register_accounts"]


STAGE = "accounts"
ACCOUNTS_TABLE = "accounts"
#: The events ``detectors.account.apply_account`` folds; the others are not forwarded.
ACCOUNT_EVENTS = (ev.Identify, ev.Ticket, ev.Subscription, ev.SessionSummary)
#: Outcome label per (kind, settled flag) of ``detectors.account.outcome``.
OUTCOMES = {("lead", True): "won", ("lead", False): "lost",
            ("renewal", True): "cancelled", ("renewal", False): "renewed"}


class AccountRecord(msgspec.Struct, kw_only=True):
    """What the accounts table keeps per account: its state, and the highest offset applied
    per origin, so that messages re-read after a crash are not learned twice."""

    state: AccountState
    positions: dict[str, int] = {}


_encode_record = msgspec.msgpack.Encoder().encode
_decode_record = msgspec.msgpack.Decoder(AccountRecord).decode


def account_of(state: CustomerState) -> str | None:
    """The account the customer belongs to (its trait ``account_id``), or None."""
    account = state.traits.get("account_id")
    if isinstance(account, str | int) and not isinstance(account, bool):
        account = str(account)
        if 0 < len(account) <= ID_CHARS:
            return account
    return None


def for_account(events: Sequence[Any]) -> list[Any]:
    """The events of a customer that its account's state is folded from."""
    return [e for e in events if isinstance(e, ACCOUNT_EVENTS)]


def forwarded(state: CustomerState, events: Sequence[Any]) -> tuple[bytes, bytes] | None:
    """The account-events record (key, value) for a customer's events just applied, or None:
    no account, or nothing an account keeps."""
    account = account_of(state)
    found = for_account(events) if account is not None else []
    if account is None or not found:
        return None
    return account.encode(), encode_bundle([Entry(account, None, found)])


def adopt(scorer: B2BScorer, published: Published | None) -> bool:
    """Restore ``scorer`` from the copy published on the checkpoints topic if that one learned
    more outcomes (both kinds together); True if it did (``checkpoints.adopt_model``)."""
    return checkpoints.adopt_model(scorer, published, scorer.name)


def fold(scorer: B2BScorer, record: AccountRecord | None, account: str,
         events: Sequence[Any], at: tuple[str, int]
         ) -> tuple[AccountRecord, list[tuple[str, bool]]] | None:
    """Fold one message's events of ``account`` (from ``at``: origin, offset) into its
    record, the scorer learning the outcomes they settle; the new record and those outcomes
    (``detectors.account.outcome``), or None when ``at`` was already applied."""
    if record is not None and is_replay(record.positions, at):
        return None
    state = record.state if record is not None else None
    learned: list[tuple[str, bool]] = []
    for e in events:
        settled = outcome(state, e) if state is not None else None
        before = scorer.learned[settled[0]] if settled is not None else 0
        state = scorer.observe(state, account, e)
        if settled is not None and scorer.learned[settled[0]] > before:
            learned.append(settled)
    if state is None:  # streams.bundle refuses entries without events
        raise ValueError("an account entry without events")
    positions = dict(record.positions) if record is not None else {}
    positions[at[0]] = at[1]
    return AccountRecord(state=state, positions=positions), learned


def register_accounts(ctx: Context, shared: Shared | None = None) -> B2BScorer:
    """The accounts agent, its table, and its scorer's checkpoints; returns the scorer."""
    settings, metrics, guard = ctx.settings, ctx.metrics, ctx.guard
    app = ctx.app
    table = app.Table(ACCOUNTS_TABLE, partitions=settings.partitions, key_type=bytes,
                      value_type=bytes)
    scorer = B2BScorer()
    saved_at = settings.data_dir / "models" / f"{scorer.name}.ckpt"
    checkpoints.restore(scorer, saved_at)
    scores_topic = ctx.topics["account_scores"]
    m_score = {kind: metrics.account_score.labels(kind=kind) for kind in KINDS}
    m_outcome = {key: metrics.account_outcomes.labels(kind=key[0], outcome=name)
                 for key, name in OUTCOMES.items()}
    m_msgs = metrics.messages.labels(topic="account_events")
    # Acknowledged only once applied, in partition order, as the other stateful agents'
    # inputs (streams.acks).
    ctx.acks.guard(ctx.topics["account_events"].get_topic_name())
    m_applied = metrics.events_applied.labels(agent=STAGE)
    m_batch = metrics.batch_seconds.labels(agent=STAGE)

    async def fold_batch(batch: Sequence[EventT]) -> None:
        touched: dict[bytes, tuple[AccountRecord, EventT]] = {}
        dead: list[DeadLetter] = []
        applied = 0
        for event in ctx.acks.current(batch):
            msg = event.message
            entries = decode_entries(event, STAGE, dead)
            for entry in entries or ():
                key = entry.key.encode()
                at = entry_origin(entry, msg, "a")
                try:
                    prev = touched.get(key)
                    record = prev[0] if prev is not None else ctx.stored(
                        table, key, _decode_record, STAGE, event, dead)
                    folded = fold(scorer, record, entry.key, entry.events, at)
                    if folded is None:
                        continue  # re-read after a crash: already learned
                    record, settled = folded
                    for one in settled:
                        m_outcome[one].inc()
                except Exception as exc:  # noqa: BLE001 - a core bug must not stop it
                    ctx.bug(STAGE)
                    dead.append(dead_letter(event, "processing_error", failed(exc), STAGE))
                    continue
                applied += len(entry.events)
                touched[key] = (record, event)
        m_applied.inc(applied)
        for key, (record, event) in touched.items():
            ctx.write(table, key, record, _encode_record, STAGE, event, dead)
            doc = scorer.document(record.state)
            if doc is None:
                continue
            for kind, field in (("lead", "lead_score"), ("renewal", "renewal_risk")):
                if field in doc:
                    m_score[kind].observe(doc[field])
            await guard.send(scores_topic, key, msgspec.json.encode(doc), stage=STAGE,
                             what="account score", at=event.message)
        await guard.dead(dead)
        await ctx.acks.seek_back(app.consumer)

    @app.agent(ctx.topics["account_events"], name=STAGE)
    async def accounts_agent(stream: faust.StreamT[bytes]) -> None:
        async for batch in take_batches(stream, *ctx.take):
            t0 = time.perf_counter()
            await fold_batch(batch)
            m_msgs.inc(len(batch))
            m_batch.observe(time.perf_counter() - t0)

    learned = {kind: scorer.learned[kind] for kind in KINDS}

    if shared is not None:
        adopted = False

        async def adopt_published(sender: Any, *args: Any, **kw: Any) -> None:
            """At the first assignment, as ``streams.learning`` does for the other models."""
            nonlocal adopted
            if adopted:
                return
            adopted = True
            if adopt(scorer, (await shared.read()).get(checkpoints.model_key(scorer.name))):
                learned.update(scorer.learned)

        # Faust's stubs want a keyword-only ``signal`` argument; its senders pass it so.
        app.on_rebalance_complete.connect(cast(Any, adopt_published))

    @guard.timer(app, settings.model_checkpoint_interval)
    async def checkpoint_b2b() -> None:
        # Published only when it could be saved (a model with a non-finite weight is not).
        if checkpoints.save(scorer, saved_at) and shared is not None:
            await shared.publish_model(scorer.name, scorer)

    @guard.timer(app, 5.0)
    async def gauge_b2b() -> None:
        # One model per kind in the models' gauges: b2b_lead, b2b_renewal.
        for kind, quality in scorer.quality().items():
            for metric, value in quality.items():
                set_finite(metrics.model_quality.labels(f"b2b_{kind}", metric), value)
            inc_finite(metrics.model_examples_learned.labels(f"b2b_{kind}"),
                       scorer.learned[kind] - learned[kind])
            learned[kind] = scorer.learned[kind]

    return scorer
