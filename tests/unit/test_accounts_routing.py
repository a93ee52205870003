"""Routing B2B account events in the worker's shell (``streams.accounts``): which customer
events reach which account, as the customers agent forwards them."""

from __future__ import annotations

import pytest

from detectors.customer import CustomerState, apply_customer
from detectors.events import Click, Identify, SessionSummary, Subscription, Ticket
from models.b2b import B2BScorer
from streams.accounts import _decode_record, _encode_record, account_of, adopt, fold, forwarded
from streams.bundle import decode_bundle
from streams.checkpoints import Published


def _identify(t: float, **traits: object) -> Identify:
    return Identify(id=f"i{t}", time=t, session_id="u1", customer_id="u1", traits=traits)


def test_a_customers_account_events_are_forwarded_keyed_by_its_account() -> None:
    joined = _identify(1.0, account_id="acme", seats=40)
    state = apply_customer(None, [joined])
    ticket = Ticket(id="t", time=2.0, session_id="u1", customer_id="u1", ticket_id="7",
                    action="created")
    visit = SessionSummary(id="s", time=3.0, session_id="s", customer_id="u1")
    renewal = Subscription(id="r", time=4.0, session_id="u1", customer_id="u1",
                           action="renewed")
    found = forwarded(state, [joined, ticket, visit, renewal])
    assert found is not None
    key, value = found
    [entry] = decode_bundle(value)
    assert key == b"acme" and entry.key == "acme" and entry.origin is None
    assert entry.events == [joined, ticket, visit, renewal]


def test_nothing_is_forwarded_without_an_account_or_account_events() -> None:
    plain = apply_customer(None, [_identify(1.0, plan="pro")])
    assert forwarded(plain, [_identify(1.0, plan="pro")]) is None
    member = apply_customer(None, [_identify(1.0, account_id="acme")])
    click = Click(id="c", time=2.0, session_id="s", x=1, y=1)
    assert forwarded(member, [click]) is None


def test_a_later_account_id_moves_the_customer() -> None:
    state = apply_customer(None, [_identify(1.0, account_id="acme")])
    moved = _identify(2.0, account_id="globex")
    state = apply_customer(state, [moved])
    found = forwarded(state, [moved])
    assert found is not None and found[0] == b"globex"


@pytest.mark.parametrize("value", [True, "", None, 3.5, "x" * 10_000, ["acme"]])
def test_an_unusable_account_id_is_no_account(value: object) -> None:
    assert account_of(CustomerState(customer_id="u1", traits={"account_id": value})) is None


def test_a_numeric_account_id_is_its_text() -> None:
    assert account_of(CustomerState(customer_id="u1", traits={"account_id": 42})) == "42"


def test_a_published_scorer_is_adopted_only_when_it_learned_more() -> None:
    taught = B2BScorer()
    taught.learned = {"lead": 3, "renewal": 2}
    mine = B2BScorer()
    mine.learned = {"lead": 6, "renewal": 0}
    assert not adopt(mine, envelope_of(taught, 5))
    assert not adopt(mine, None)
    assert adopt(mine, envelope_of(taught, 7)) and mine.learned == {"lead": 3, "renewal": 2}
    assert not adopt(B2BScorer(), Published(9, 0.0, b"not a checkpoint"))


def envelope_of(scorer: B2BScorer, learned: int) -> Published:
    return Published(learned, 0.0, scorer.checkpoint())


def test_a_message_read_again_is_not_learned_twice() -> None:
    scorer = B2BScorer()
    quote = [_identify(1.0, account_id="acme", quote_status="requested")]
    won = [_identify(2.0, account_id="acme", quote_status="won")]
    first = fold(scorer, None, "acme", quote, ("a0", 10))
    assert first is not None
    second = fold(scorer, first[0], "acme", won, ("a0", 11))
    assert second is not None and second[1] == [("lead", True)]
    record = second[0]
    assert scorer.learned["lead"] == 1 and record.state.quotes_won == 1
    assert fold(scorer, record, "acme", won, ("a0", 11)) is None  # re-read after a crash
    assert scorer.learned["lead"] == 1
    stored = _decode_record(_encode_record(record))
    assert stored == record and stored.positions == {"a0": 11}
