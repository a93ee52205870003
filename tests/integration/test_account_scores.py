"""B2B accounts end to end: simulated accounts' events, sent through the collector, reach the
accounts agent by their users' account (a Segment ``group`` call ties one more user), which
publishes explained lead scores for an account in the quote stage and renewal risks for a
contracted one, from a scorer restored from its checkpoint and learning the outcomes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from kafkahelp import WorkerProcess, http_post, isolated_settings, read_topic, topic

from detectors import events as ev
from detectors.account import AccountState, route
from models.b2b import B2BScorer
from streams import checkpoints
from streams.kafka_io import ensure_topics
from streams.sim.accounts import AccountsConfig, simulate_accounts

pytestmark = pytest.mark.integration


def _trained() -> B2BScorer:
    """A scorer that learned a year of 200 simulated accounts (half a second)."""
    scorer, users, accounts = B2BScorer(), {}, {}
    for e in simulate_accounts(AccountsConfig(accounts=200, days=365, seed=1)):
        account = route(e, users)
        if account is not None:
            accounts[account] = scorer.observe(accounts.get(account), account, e)
    return scorer


def _until_both_stages(events: list[Any]) -> tuple[list[Any], dict[str, AccountState]]:
    """The events up to the first moment one account is in the quote stage and another has a
    contract, and the accounts' states then (folded offline, by the same core)."""
    scorer, users, accounts = B2BScorer(), {}, {}
    for i, e in enumerate(events):
        account = route(e, users)
        if account is not None:
            accounts[account] = scorer.observe(accounts.get(account), account, e)
        states = accounts.values()
        if any(s.quote_since is not None for s in states) \
                and any(s.contract_since is not None for s in states):
            return events[:i + 1], accounts
    raise AssertionError("the simulation never had both stages at once")


def test_simulated_accounts_get_explained_lead_scores_and_renewal_risks(tmp_path,
                                                                       kafka_bootstrap):
    settings = isolated_settings(tmp_path, partitions=1)
    ensure_topics(settings, kafka_bootstrap)
    checkpoints.save(_trained(), settings.data_dir / "models" / "b2b.ckpt")
    held_out = list(simulate_accounts(AccountsConfig(accounts=4, days=90, seed=2)))
    sent, states = _until_both_stages(held_out)
    live = {a: s for a, s in states.items()
            if s.quote_since is not None or s.contract_since is not None}
    # One user of a live account joins it by a Segment group call instead of an identify.
    group = next(e for e in sent if type(e) is ev.Identify and len(e.traits) == 1
                 and e.traits.get("account_id") in live)
    account = group.traits["account_id"]
    call = {"type": "group", "messageId": group.id, "userId": group.customer_id,
            "groupId": account, "timestamp": datetime.fromtimestamp(group.time, UTC).isoformat()}
    bodies, pending = [], []
    for e in sent:  # in time order, 200 canonical events a request
        if e is group or len(pending) == 200:
            bodies.append(ev.encode_batch(pending))
            pending = []
        if e is group:
            bodies.append(json.dumps(call).encode())
        else:
            pending.append(e)
    bodies.append(ev.encode_batch(pending))
    worker = WorkerProcess(settings, kafka_bootstrap, tmp_path / "worker.log").start()
    try:
        url = worker.url + "/collect"
        for body in bodies:
            if body != b"[]":
                assert http_post(url, body)[0] == 200

        def latest(records: list[Any]) -> dict[str, dict[str, Any]]:
            return {r.key.decode(): json.loads(r.value) for r in records}

        def settled(records: list[Any]) -> bool:
            docs = latest(records)
            return all(a in docs and docs[a]["time"] == s.last_time for a, s in live.items())

        records = read_topic(kafka_bootstrap, topic(settings, "account_scores"), until=settled)
        docs = latest(records)
        assert settled(records), (sorted(docs), sorted(live))
        quoting = next(a for a, s in live.items() if s.quote_since is not None)
        contracted = next(a for a, s in live.items() if s.contract_since is not None)
        lead = docs[quoting]
        assert 0.0 < lead["lead_score"] < 1.0 and "renewal_risk" not in lead
        assert lead["lead_reasons"] and all(isinstance(r, str) for r in lead["lead_reasons"])
        renewal = docs[contracted]
        assert 0.0 < renewal["renewal_risk"] < 1.0 and "lead_score" not in renewal
        assert renewal["renewal_reasons"]
        # The user the group call tied counts among its account's users.
        assert docs[account]["users"] == len(states[account].users) > 1
        metrics = worker.metrics_text()
        assert 'frictionwatch_account_outcomes_total{kind="lead",outcome=' in metrics
    finally:
        worker.stop()
