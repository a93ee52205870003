"""Per-account state for the B2B journey: what a business account's users did, folded from the
canonical support-side events. Pure, like ``detectors.customer``.

How account events come in (no new event type; the canonical events already carry them):

- ``Identify`` with the trait ``account_id`` ties a user (``customer_id``) to an account, and
  carries the account's traits: ``seats`` (or ``employees``), ``industry``, ``plan``. A Segment
  ``group`` call (``groupId`` and the company's traits) is this ``Identify`` with
  ``account_id = groupId``; the B2B SaaS spec's "Account Created" is its first one.
- The trait ``quote_status`` is the CRM's status of the account's quote: ``requested`` (or
  ``open``, ``sent``) puts the account in the quote stage; ``won`` or ``lost`` ends it: the
  outcome the lead score learns from (``models.b2b``).
- The CRM's record of the sales conversation while a quote is open, as traits too (named in
  ``QUOTE_TRAITS``, forgotten when a new quote opens): ``demo_requested`` and
  ``discount_requested`` (true once asked), ``sales_replies`` (the emails to sales the
  account answered, a running count), as a HubSpot or Salesforce sync sends them.
- ``Subscription`` of a user of the account: ``started`` is the contract (the spec's "Trial
  Started" / "Subscription Started"), ``renewed`` and ``cancelled`` / ``expired`` are the
  outcomes the renewal-risk score learns from.
- ``Ticket`` and ``SessionSummary`` of the account's users: support load and web friction.

``route`` finds an event's account from the users seen so far (the shell keeps that map, as
it keeps the customers table).

>>> from detectors.events import Identify, SessionSummary
>>> users: dict[str, str] = {}
>>> join = Identify(id="i", time=0.0, session_id="u1", customer_id="u1",
...                 traits={"account_id": "acme", "seats": 40, "industry": "retail"})
>>> visit = SessionSummary(id="s", time=60.0, session_id="s", customer_id="u1",
...                        friction={"rage_click": 2})
>>> route(join, users), route(visit, users)
('acme', 'acme')
>>> state = apply_account(None, "acme", [join, visit])
>>> state.users, state.traits["industry"], state.recent_sessions
(['u1'], 'retail', [[60.0, 2.0, 0.0]])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from detectors import events as ev
from detectors.customer import is_negative, push_recent

__all__ = ["AccountState", "OPEN_QUOTE", "QUOTE_TRAITS", "apply_account", "outcome", "route"]

#: Users, sessions and tickets kept per account: state stays bounded; the windowed counts
#: the models use (30/90 days) rarely need more for an account of a few dozen active users.
MAX_USERS = 200
MAX_RECENT = 200
MAX_TRAITS = 50

#: ``quote_status`` values that open the quote stage, and the two that close it.
OPEN_QUOTE = frozenset({"requested", "open", "sent", "draft"})
CLOSED_QUOTE = frozenset({"won", "lost"})
#: Traits that describe the open quote's sales conversation: dropped when a new quote opens,
#: so an account's second quote is not credited with the first one's demo.
QUOTE_TRAITS = ("demo_requested", "discount_requested", "sales_replies")

#: Fields of a ``recent_tickets`` entry: [created, high priority, bad rating, negative, id].
K_TIME, K_HIGH, K_BAD, K_NEGATIVE, K_ID = range(5)


class AccountState(msgspec.Struct, kw_only=True):
    account_id: str
    first_time: float = 0.0
    last_time: float = 0.0
    traits: dict[str, Any] = {}
    users: list[str] = []
    #: [end time, friction signals, abandoned checkout (0/1)] of the users' latest sessions.
    recent_sessions: list[list[float]] = []
    recent_tickets: list[list[Any]] = []
    tickets: int = 0
    #: When the open quote was requested; None outside the quote stage.
    quote_since: float | None = None
    #: Web sessions and their friction signals since the open quote was requested (counted,
    #: not windowed: a long quote stage of a big account outgrows ``recent_sessions``).
    quote_sessions: int = 0
    quote_friction: float = 0.0
    #: The users who visited since the open quote was requested (the buying committee).
    quote_users: list[str] = []
    quotes_won: int = 0
    quotes_lost: int = 0
    #: When the current contract started; None when the account has none.
    contract_since: float | None = None
    renewals: int = 0
    plan: str | None = None
    mrr: float = 0.0


def route(event: Any, users: dict[str, str]) -> str | None:
    """The account ``event`` belongs to, or None; an ``Identify`` with ``account_id`` records
    its user in ``users`` (user id -> account id) first."""
    if event.customer_id is None:
        return None
    if type(event) is ev.Identify:
        account = event.traits.get("account_id")
        if isinstance(account, str | int) and not isinstance(account, bool) and account != "":
            users[event.customer_id] = str(account)
    return users.get(event.customer_id)


def outcome(state: AccountState, event: Any) -> tuple[str, bool] | None:
    """What ``event`` settles for ``state``, if anything: ``("lead", won)`` when it closes the
    open quote, ``("renewal", cancelled)`` when it renews or ends the running contract."""
    if type(event) is ev.Identify and state.quote_since is not None:
        status = event.traits.get("quote_status")
        if status in CLOSED_QUOTE:
            return "lead", status == "won"
    elif type(event) is ev.Subscription and state.contract_since is not None \
            and event.action != "started":
        return "renewal", event.action != "renewed"
    return None


def apply_account(state: AccountState | None, account_id: str,
                  events: Sequence[Any]) -> AccountState:
    """Fold events of the account's users (already routed: ``route``) into its state."""
    if state is None:
        state = AccountState(account_id=account_id)
    for e in events:
        if state.first_time == 0.0:
            state.first_time = e.time
        state.last_time = max(state.last_time, e.time)
        if e.customer_id is not None and e.customer_id not in state.users \
                and len(state.users) < MAX_USERS:
            state.users.append(e.customer_id)
        if type(e) is ev.Identify:
            _identify(state, e)
        elif type(e) is ev.SessionSummary:
            abandoned = float(e.abandoned_step is not None and not e.converted)
            friction = float(sum(e.friction.values()))
            push_recent(state.recent_sessions, [e.time, friction, abandoned], MAX_RECENT)
            if state.quote_since is not None:
                state.quote_sessions += 1
                state.quote_friction += friction
                user = e.customer_id
                if user is not None and user not in state.quote_users \
                        and len(state.quote_users) < MAX_USERS:
                    state.quote_users.append(user)
        elif type(e) is ev.Ticket:
            _ticket(state, e)
        elif type(e) is ev.Subscription:
            _subscription(state, e)
    return state


def _identify(state: AccountState, e: ev.Identify) -> None:
    status = e.traits.get("quote_status")
    opens = status in OPEN_QUOTE and state.quote_since is None
    if opens:  # before the event's own traits, which may carry the new quote's first ones
        state.traits = {k: v for k, v in state.traits.items() if k not in QUOTE_TRAITS}
    traits = {k: v for k, v in e.traits.items() if k not in ("account_id", "quote_status")}
    state.traits = dict(list({**state.traits, **traits}.items())[:MAX_TRAITS])
    plan = traits.get("plan")
    if isinstance(plan, str):
        state.plan = plan
    if opens:
        state.quote_since = e.time
        state.quote_sessions, state.quote_friction, state.quote_users = 0, 0.0, []
    elif status in CLOSED_QUOTE and state.quote_since is not None:
        state.quote_since = None
        if status == "won":
            state.quotes_won += 1
        else:
            state.quotes_lost += 1


def _ticket(state: AccountState, e: ev.Ticket) -> None:
    entry = next((t for t in reversed(state.recent_tickets) if t[K_ID] == e.ticket_id), None)
    if entry is None:
        entry = [e.time, int(e.priority in ("high", "urgent")), 0,
                 int(is_negative(e.subject, e.text)), e.ticket_id]
        push_recent(state.recent_tickets, entry, MAX_RECENT)
        state.tickets += 1
    if e.satisfaction == "bad":
        entry[K_BAD] = 1


def _subscription(state: AccountState, e: ev.Subscription) -> None:
    if e.plan is not None:
        state.plan = e.plan
    if e.mrr is not None:
        state.mrr = e.mrr
    if e.action == "started":
        if state.contract_since is None:
            state.contract_since = e.time
    elif e.action == "renewed":
        state.renewals += 1
    else:
        state.contract_since = None
