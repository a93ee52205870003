"""Support-desk (Zendesk-style) webhook adapter -> canonical Ticket events.

Fixtures in tests/data/adapters/ follow
- the Tickets API's ticket object: https://developer.zendesk.com/api-reference/ticketing/tickets/tickets/
- the placeholders a trigger webhook body is built from: https://support.zendesk.com/hc/en-us/articles/4408886858138
- the ticket event webhooks: https://developer.zendesk.com/api-reference/webhooks/event-types/ticket-events/
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from detectors.events import Ticket, decode_batch, encode_batch
from streams.adapters import support
from streams.adapters.base import AdapterError

DATA = Path(__file__).resolve().parent.parent / "data" / "adapters"
NOON = 1714564800.0  # 2024-05-01T12:00:00Z


def load(name: str) -> Any:
    return json.loads((DATA / name).read_text())


def one(payload: dict[str, Any]) -> Ticket:
    out = support.adapt(payload)
    assert not out.rejected, out.rejected
    [event] = out.events
    assert isinstance(event, Ticket)
    return event


def reason(payload: dict[str, Any]) -> str:
    out = support.adapt(payload)
    assert not out.events
    [rej] = out.rejected
    assert rej.item is payload
    return rej.reason


@pytest.fixture
def trigger() -> dict[str, Any]:
    return load("zendesk_trigger_ticket.json")


# --- trigger style ---------------------------------------------------------------------------


def test_trigger_ticket_fields_land_where_expected(trigger: dict[str, Any]) -> None:
    t = one(trigger)
    assert t.action == "updated"  # open, and updated_at is after created_at
    assert t.id == "zendesk:35436:2024-05-01T12:30:00Z:updated"
    assert t.time == NOON + 1800  # updated_at
    assert t.customer_id == "019mr8mf4r"  # requester.external_id before requester_id
    assert t.session_id == "23adfd82-aa0f-45a7-a756-24f2a7a4c895"  # custom field session_id
    assert (t.ticket_id, t.channel, t.status, t.priority) == ("35436", "web", "open", "high")
    assert t.subject == "Help, my card was declined at checkout"
    assert t.text == "I tried to pay three times and the payment keeps failing."
    assert t.satisfaction == "bad"
    assert t.tags == ("checkout", "payment_declined")
    assert decode_batch(encode_batch([t])) == [t]


@pytest.mark.parametrize(
    ("changes", "action"),
    [
        ({"status": "solved"}, "solved"),
        ({"status": "closed"}, "solved"),
        ({"updated_at": "2024-05-01T12:00:00Z"}, "created"),  # == created_at
        ({"updated_at": None}, "created"),
        ({"status": "pending"}, "updated"),
    ],
)
def test_derived_action(trigger: dict[str, Any], changes: dict[str, Any], action: str) -> None:
    trigger["ticket"].update(changes)
    assert one(trigger).action == action


@pytest.mark.parametrize(
    ("top", "action"),
    [({"action": "Solved"}, "solved"), ({"event": "created"}, "created")],
)
def test_explicit_action_wins(trigger: dict[str, Any], top: dict[str, Any], action: str) -> None:
    trigger.update(top)
    t = one(trigger)
    assert t.action == action
    assert t.id.endswith(":" + action)


def test_time_falls_back_to_created_at(trigger: dict[str, Any]) -> None:
    del trigger["ticket"]["updated_at"]
    t = one(trigger)
    assert (t.time, t.action) == (NOON, "created")


def test_customer_id_fallbacks(trigger: dict[str, Any]) -> None:
    ticket = trigger["ticket"]
    del ticket["requester"]["external_id"]
    assert one(trigger).customer_id == "20978392"  # requester_id, as a string
    del ticket["requester_id"]
    ticket["requester"] = {"id": 77, "email": "a@b.c"}
    assert one(trigger).customer_id == "77"


def test_session_fallbacks(trigger: dict[str, Any]) -> None:
    ticket = trigger["ticket"]
    ticket["custom_fields"] = {"session_id": "from-dict"}
    assert one(trigger).session_id == "from-dict"
    ticket["session_id"] = "top-level"
    assert one(trigger).session_id == "top-level"
    del ticket["session_id"]
    del ticket["custom_fields"]
    assert one(trigger).session_id == "ticket:35436"


def test_text_falls_back_to_latest_comment(trigger: dict[str, Any]) -> None:
    ticket = trigger["ticket"]
    del ticket["description"]
    ticket["latest_comment"] = {"body": "Still broken"}
    assert one(trigger).text == "Still broken"
    del ticket["latest_comment"]
    ticket["comment"] = "rendered {{ticket.latest_comment}}"
    assert one(trigger).text == "rendered {{ticket.latest_comment}}"


def test_placeholder_rendered_tags_and_ratings(trigger: dict[str, Any]) -> None:
    ticket = trigger["ticket"]
    ticket["tags"] = "vip checkout"  # how {{ticket.tags}} renders
    ticket["satisfaction_rating"] = {"score": "good_with_comment"}
    t = one(trigger)
    assert (t.tags, t.satisfaction) == (("vip", "checkout"), "good")
    ticket["satisfaction_rating"] = {"score": "offered"}
    assert one(trigger).satisfaction is None


# --- event style -----------------------------------------------------------------------------


def test_event_webhook_ticket_created() -> None:
    t = one(load("zendesk_event_ticket_created.json"))
    assert t.action == "created"
    assert t.id == "cbe4028c-7239-495d-b020-f22348516046"
    assert t.time == pytest.approx(NOON + 1.042)  # the event's own time
    assert (t.customer_id, t.ticket_id, t.session_id) == ("20978392", "35437", "ticket:35437")
    assert (t.status, t.priority, t.channel) == ("new", "urgent", "email")
    assert t.text == "The order confirmation never arrived and I was charged twice."
    assert t.tags == ("billing",)


def test_event_webhook_status_changed_to_solved() -> None:
    body = load("zendesk_event_status_changed.json")
    t = one(body)
    assert (t.action, t.status) == ("solved", "solved")
    body["event"] = {"current": "OPEN", "previous": "NEW"}
    assert one(body).action == "updated"


def test_other_ticket_events_are_updates_even_on_solved_tickets() -> None:
    body = load("zendesk_event_status_changed.json")
    body["type"] = "zen:event-type:ticket.comment_added"
    body["event"] = {"comment": {"body": "thanks!"}}
    assert one(body).action == "updated"


# --- rejections ------------------------------------------------------------------------------


def test_no_requester_is_missing_id(trigger: dict[str, Any]) -> None:
    ticket = trigger["ticket"]
    del ticket["requester"], ticket["requester_id"]
    assert reason(trigger) == "missing_id"


def test_unrendered_requester_placeholder_is_missing_id(trigger: dict[str, Any]) -> None:
    ticket = trigger["ticket"]
    del ticket["requester"]
    ticket["requester_id"] = ""
    assert reason(trigger) == "missing_id"


def test_no_ticket_id_is_missing_id(trigger: dict[str, Any]) -> None:
    del trigger["ticket"]["id"]
    assert reason(trigger) == "missing_id"


def test_event_without_id_is_missing_id() -> None:
    body = load("zendesk_event_ticket_created.json")
    del body["id"]
    assert reason(body) == "missing_id"


@pytest.mark.parametrize("stamp", ["May18, 2014", "", True, 10**30])
def test_unreadable_time_is_invalid_field(trigger: dict[str, Any], stamp: Any) -> None:
    trigger["ticket"]["updated_at"] = stamp
    trigger["ticket"]["created_at"] = stamp
    assert reason(trigger) == "invalid_field"


def test_unknown_explicit_action_is_invalid_field(trigger: dict[str, Any]) -> None:
    trigger["action"] = "reopened"
    assert reason(trigger) == "invalid_field"


def test_bad_tags_are_invalid_field(trigger: dict[str, Any]) -> None:
    trigger["ticket"]["tags"] = [1, 2]
    assert reason(trigger) == "invalid_field"


def test_user_event_webhook_is_unknown_event() -> None:
    body = {"type": "zen:event-type:user.created", "id": "u-1", "detail": {"id": "5"}}
    assert reason(body) == "unknown_event"


@pytest.mark.parametrize(
    ("payload", "why"),
    [({}, "empty"), ([], "unknown_format"), ({"ticket": "35436"}, "unknown_format")],
)
def test_whole_payload_errors_raise(payload: Any, why: str) -> None:
    with pytest.raises(AdapterError) as info:
        support.adapt(payload)
    assert info.value.reason == why
