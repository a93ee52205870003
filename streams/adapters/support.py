"""Support-desk (Zendesk-style) ticket webhooks -> canonical ``Ticket`` events.

Two shapes are read:

- trigger style: the JSON body a Zendesk trigger or automation sends to a webhook,
  ``{"ticket": {...}, "action"?: ...}``, with the ticket's fields as the Tickets API names them
  (https://developer.zendesk.com/api-reference/ticketing/tickets/tickets/). Build the body with
  the ``{{ticket.created_at_with_timestamp}}`` / ``{{ticket.updated_at_with_timestamp}}``
  placeholders (https://support.zendesk.com/hc/en-us/articles/4408886858138): the plain date
  ones ("May18, 2014") are not ISO 8601 and are ``invalid_field``.
- event style: Zendesk's ticket event webhooks
  (https://developer.zendesk.com/api-reference/webhooks/event-types/ticket-events/),
  ``{"type": "zen:event-type:ticket.<what>", "id", "time", "detail": {...}, "event": {...}}``.

Rules:

- action: an explicit ``action`` (or ``event``) of created/updated/solved wins; otherwise
  "solved" when the status is solved or closed, "created" when ``created_at`` equals
  ``updated_at`` (or there is no ``updated_at``), else "updated". Event style: ``ticket.created``
  is "created"; ``ticket.status_changed`` to solved/closed is "solved"; every other ticket
  event is "updated" (a comment on a solved ticket reopens it, it does not solve it again).
- customer = ``requester.external_id``, else ``requester_id``, else ``requester.id`` (support
  topics are keyed by customer, so none is ``missing_id``). Session = ``ticket.session_id`` or
  a ``custom_fields`` entry named ``session_id``, else ``"ticket:<id>"``.
- id: the event-style ``id``; trigger style ``"zendesk:<ticket id>:<updated_at>:<action>"``
  (a trigger firing twice for one change gives one id).
- time: ``updated_at``, else ``created_at``; event style prefers the event's ``time``.
- category, the one an agent finally sets (what triage learns from): ``ticket.category``, a
  ``custom_fields`` entry named ``category``, else a ``category:<name>`` tag.
- text: ``description``, else ``latest_comment.body`` / ``comment.body`` (or a plain string).
  status, priority and channel (``via.channel``) are lower-cased: the event webhooks send
  "OPEN" where the API says "open". Satisfaction "good..."/"bad..." -> "good"/"bad", else None.
  ``tags`` may be a list or the space-separated string ``{{ticket.tags}}`` renders.

>>> from streams.adapters import support
>>> out = support.adapt({"ticket": {"id": 35436, "status": "solved", "requester_id": 20978392,
...     "subject": "Card declined twice", "via": {"channel": "email"},
...     "created_at": "2024-05-01T10:00:00Z", "updated_at": "2024-05-01T12:00:00Z"}})
>>> t = out.events[0]
>>> t.action, t.customer_id, t.session_id, t.channel, t.id
('solved', '20978392', 'ticket:35436', 'email', 'zendesk:35436:2024-05-01T12:00:00Z:solved')
"""

from __future__ import annotations

from typing import Any

from detectors.events import Ticket
from streams.adapters.base import Adapted, AdapterError, Rejected
from streams.adapters.segment import as_id, as_str, as_time, first, invalid

__all__ = ["adapt", "convert", "EVENT_TYPE_PREFIX"]

#: Zendesk event-webhook types this adapter reads.
EVENT_TYPE_PREFIX = "zen:event-type:ticket"

_ACTIONS = frozenset(("created", "updated", "solved"))
_DONE = frozenset(("solved", "closed"))


def _lower(value: Any, name: str) -> str | None:
    out = as_id(value, name)
    return out.lower() if out is not None else None


def _satisfaction(rating: Any) -> str | None:
    score = rating.get("score") if type(rating) is dict else rating
    if type(score) is not str:
        return None
    score = score.lower()
    if score.startswith("good"):  # "good", "good_with_comment"
        return "good"
    if score.startswith("bad"):
        return "bad"
    return None  # "offered", "unoffered": asked, not answered


def _tags(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if type(value) is str:
        return tuple(value.split())
    if type(value) is list and all(type(t) is str for t in value):
        return tuple(value)
    raise invalid("ticket.tags", value, "not a list of strings")


def _text(ticket: dict[str, Any]) -> str | None:
    text = as_str(ticket.get("description"), "ticket.description")
    if text:
        return text
    comment = first(ticket, "latest_comment", "comment")
    if type(comment) is dict:
        comment = comment.get("body")
    return as_str(comment, "ticket.latest_comment.body") or None


def _field(ticket: dict[str, Any], name: str) -> str | None:
    """A ticket field by name: top level, else a ``custom_fields`` entry of that name."""
    value = as_id(ticket.get(name), f"ticket.{name}")
    if value is None:
        fields = ticket.get("custom_fields")
        if type(fields) is dict:  # hand-built bodies: {"session_id": "..."}
            value = as_id(fields.get(name), f"custom_fields.{name}")
        elif type(fields) is list:  # API shape: [{"id" or "name", "value"}]
            for f in fields:
                if type(f) is dict and name in (f.get("name"), f.get("id")):
                    value = as_id(f.get("value"), f"custom_fields.{name}")
                    break
    return value


def _session(ticket: dict[str, Any], ticket_id: str) -> str:
    return _field(ticket, "session_id") or "ticket:" + ticket_id


def _category(ticket: dict[str, Any], tags: tuple[str, ...]) -> str | None:
    category = _field(ticket, "category")
    if category is None:
        category = next((t[len("category:"):] for t in tags
                         if t.startswith("category:") and len(t) > len("category:")), None)
    return category


def _customer(ticket: dict[str, Any]) -> str:
    requester = ticket.get("requester")
    requester = requester if type(requester) is dict else {}
    customer = as_id(requester.get("external_id"), "requester.external_id") or as_id(
        first(ticket, "requester_id") or requester.get("id"), "requester_id"
    )
    if customer is None:
        raise AdapterError("missing_id", "ticket without requester external_id or id")
    return customer


def _derived_action(status: str | None, created: Any, updated: Any) -> str:
    if status in _DONE:
        return "solved"
    if updated is None or created == updated:
        return "created"
    return "updated"


def _event_action(kind: str, status: str | None, event: Any) -> str:
    what = kind[len(EVENT_TYPE_PREFIX) + 1 :]
    if what == "created":
        return "created"
    if what == "status_changed":
        current = event.get("current") if type(event) is dict else None
        if type(current) is dict:
            current = current.get("status")
        new = current.lower() if type(current) is str else status
        return "solved" if new in _DONE else "updated"
    return "updated"


def convert(payload: dict[str, Any]) -> Ticket:
    """One webhook body as a ``Ticket``; raises ``AdapterError`` with the reason."""
    kind = payload.get("type")
    event_style = type(kind) is str and kind.startswith(EVENT_TYPE_PREFIX)
    ticket = payload.get("detail") if event_style else payload.get("ticket")
    if type(ticket) is not dict:
        raise AdapterError("unknown_format", "support payload without a ticket/detail object")

    ticket_id = as_id(ticket.get("id"), "ticket.id")
    if ticket_id is None:
        raise AdapterError("missing_id", "ticket without id")
    customer_id = _customer(ticket)
    status = _lower(ticket.get("status"), "ticket.status")
    created, updated = ticket.get("created_at"), ticket.get("updated_at")

    explicit = first(payload, "action", "event")
    if type(explicit) is str:
        action = explicit.lower()
        if action not in _ACTIONS:
            raise invalid("action", explicit, "not created, updated or solved")
    elif event_style:
        action = _event_action(str(kind), status, explicit)  # "event" is the change object here
    else:
        action = _derived_action(status, created, updated)

    if event_style:
        event_id = as_id(payload.get("id"), "id")
        if event_id is None:
            raise AdapterError("missing_id", "Zendesk event without id")
        stamp = first(payload, "time") or updated or created
    else:
        stamp = updated or created
        event_id = f"zendesk:{ticket_id}:{stamp}:{action}"
    if stamp is None:
        raise invalid("ticket.updated_at", None, "no updated_at or created_at")

    via = ticket.get("via")
    channel = via.get("channel") if type(via) is dict else ticket.get("channel")
    tags = _tags(ticket.get("tags"))
    return Ticket(
        id=event_id,
        time=as_time(stamp, "ticket.updated_at"),
        session_id=_session(ticket, ticket_id),
        customer_id=customer_id,
        action=action,  # type: ignore[arg-type]
        ticket_id=ticket_id,
        channel=_lower(channel, "ticket.via.channel"),
        subject=as_str(ticket.get("subject"), "ticket.subject"),
        text=_text(ticket),
        priority=_lower(ticket.get("priority"), "ticket.priority"),
        status=status,
        satisfaction=_satisfaction(ticket.get("satisfaction_rating")),
        tags=tags,
        category=_category(ticket, tags),
    )


def adapt(payload: Any) -> Adapted:
    """A ticket webhook body as one ``Ticket`` event (or one ``Rejected``)."""
    if type(payload) is not dict:
        raise AdapterError("unknown_format", "a support webhook body is a JSON object")
    if not payload:
        raise AdapterError("empty", "empty support webhook body")
    kind = payload.get("type")
    if (
        type(kind) is str
        and kind.startswith("zen:event-type:")
        and not kind.startswith(EVENT_TYPE_PREFIX)
    ):
        # A user or organization event: Zendesk's, but not one we map.
        return Adapted(
            rejected=[Rejected("unknown_event", f"{kind[:80]!r} is not mapped", payload)]
        )
    try:
        return Adapted(events=[convert(payload)])
    except AdapterError as exc:
        if exc.reason == "unknown_format":
            raise
        return Adapted(rejected=[Rejected(exc.reason, exc.detail, payload)])
