"""Follow-ups of abandoned carts and checkouts: who gets one, when, and what both arms did.

A session that ends (expires) with a cart and no order is *abandoned*: an abandoned checkout
if it started checkout, else an abandoned cart. If it can be reached (a customer id: the
shop's email system finds the address by it; an anonymous session has no way to be reached,
so it gets none) a follow-up is due ``delay`` seconds (event time) after its last event, and
at the latest when it expires. At that time it is sent (a CloudEvents 1.0 document on the
email triggers topic) unless the customer ordered meanwhile: in any session with the same
customer id, or in the same session id continuing (``Engine``'s ``explicit_gap``). Orders of
other sessions that name no customer cannot be known to be theirs.

Follow-ups run in a randomized holdout of their own (intervention ``followup``, the
``Experiment``'s hash, so the same customer lands in the same arm everywhere): a control unit
gets none, and leaves a counterfactual exposure record instead, as the chat offer's holdout
does (``detectors.holdout``). The unit is the customer. A later session of an exposed customer
within the attribution window reports its orders as a ``result`` record when it ends, so the
ledger (``models.experiments``) counts what each arm did after its follow-up.

A pending follow-up is its ended session's state, marked with when it is due
(``SessionState.followup_due``; ``state_of``): the worker keeps that state stored under the
session's id until the follow-up is sent or cancelled (``released`` says which ids left), and
after a restart or a rebalance ``restore`` takes it back, as the detectors' deadlines and the
sessions' expiry are. What the engine's partition knows of orders and of exposed customers
stays in memory: a return session of the customer on another partition, or one after a
restart, is not seen as the follow-up's result (both arms alike: the lift is diluted, not
biased).

>>> from detectors.holdout import Experiment
>>> from detectors.session import SessionState
>>> f = FollowUps(Experiment("followup", "followup", control_share=0.5, salt="s"), delay=3600)
>>> s = SessionState(session_id="s1", customer_id="c1", first_time=0.0, last_time=100.0,
...                  cart_value=80.0, checkout_step=2, max_checkout_step=2,
...                  friction={"payment_declined": 2})
>>> f.ended(s, expired_at=1900.0)
[]
>>> f.next_due
3700.0
>>> sent, records = f.fire(3700.0)
>>> records[0]["experiment"], records[0]["arm"] == ("treatment" if sent else "control")
('followup', True)
>>> # Had the customer ordered in another session before then, nothing would be due:
>>> f.ended(s, expired_at=1900.0); f.ordered("s2", "c1", 200.0); f.fire(3700.0)
[]
's1'
([], [])

A worker that restarts takes a waiting follow-up back from the stored state:

>>> exp = Experiment("followup", "followup", control_share=0.5, salt="s")
>>> before, after = FollowUps(exp, delay=3600), FollowUps(exp, delay=3600)
>>> before.ended(s, expired_at=1900.0); stored = before.state_of("s1"); stored.followup_due
[]
3700.0
>>> after.restore(stored), after.next_due
(True, 3700.0)
"""

from __future__ import annotations

import hashlib
import heapq
from collections import deque
from dataclasses import dataclass
from typing import Any

from detectors.alerting import hash_customer
from detectors.bounds import iso
from detectors.holdout import Experiment, customer_unit
from detectors.session import SessionState

__all__ = ["FollowUps", "Pending", "kind_of"]

INTERVENTION = "followup"


def kind_of(state: SessionState) -> str | None:
    """``abandoned_checkout``, ``abandoned_cart``, or None (ordered, or nothing to follow up)."""
    if state.converted:
        return None
    if state.max_checkout_step > 0:
        return "abandoned_checkout"
    if state.cart_value > 0:
        return "abandoned_cart"
    return None


@dataclass
class Pending:
    """A follow-up waiting for its time: its ended session's state (``state.followup_due``
    is ``due``)."""

    due: float
    kind: str
    customer_id: str
    state: SessionState


@dataclass
class _Exposed:
    unit: str
    arm: str
    time: float


class FollowUps:
    """Which abandoned sessions get a follow-up, and the holdout records of both arms.

    Parameters
    ----------
    experiment
        The follow-ups' holdout (``intervention`` ``followup``); None: every one is sent and
        nothing is measured.
    delay
        Seconds after the session's last event at which the follow-up goes out (not before
        the session has expired: while it may still go on, it has not been abandoned).
    customer_salt
        Salt of the customer pseudonyms (as alerts and the chat holdout use).
    source
        The CloudEvents ``source``.
    """

    def __init__(self, experiment: Experiment | None = None, delay: float = 3600.0,
                 customer_salt: str = "", source: str = "frictionwatch/sessions") -> None:
        if delay < 0:
            raise ValueError(f"delay must be >= 0, not {delay}")
        self.experiment = experiment
        self.delay = delay
        self.customer_salt = customer_salt
        self.source = source
        #: Waiting follow-ups by customer id (one per customer: the latest abandonment).
        self.pending: dict[str, Pending] = {}
        #: Ids of sessions whose waiting follow-up left (sent, cancelled, replaced, or stale
        #: when restored) since the caller last cleared this: their stored states go.
        self.released: set[str] = set()
        self._by_session: dict[str, str] = {}
        #: (due, customer id), earliest first; entries of replaced or cancelled ones are stale.
        self.heap: list[tuple[float, str]] = []
        # Last order per customer, for abandonments that expire after the customer ordered
        # elsewhere; only orders after a session's last event matter, so a session gap of
        # them (pruned in order) is enough.
        self._orders: dict[str, float] = {}
        self._order_times: deque[tuple[float, str]] = deque()
        #: Exposed customers in their attribution window: their later sessions report.
        self._exposed: dict[str, _Exposed] = {}
        self._exposed_order: deque[tuple[float, str]] = deque()

    @property
    def next_due(self) -> float | None:
        return self.heap[0][0] if self.heap else None

    def state_of(self, session_id: str) -> SessionState | None:
        """The ended state of ``session_id`` while its follow-up waits (to be kept stored)."""
        cid = self._by_session.get(session_id)
        p = self.pending.get(cid) if cid is not None else None
        return p.state if p is not None else None

    def ordered(self, session_id: str, customer_id: str | None, time: float) -> str | None:
        """A session ordered (at ``time``): no follow-up for its customer, nor for its id's
        earlier part. Returns the session id whose waiting follow-up this cancelled."""
        cid = customer_id or self._by_session.get(session_id)
        if cid is None:
            return None
        p = self.pending.pop(cid, None)
        if p is not None:
            self._release(p)
        if customer_id is not None:
            # One queue entry per customer (``_prune`` re-queues one who ordered again).
            if customer_id not in self._orders:
                self._order_times.append((time, customer_id))
            self._orders[customer_id] = time
        return p.state.session_id if p is not None else None

    def ended(self, state: SessionState, expired_at: float) -> list[dict[str, Any]]:
        """A session expired: maybe a follow-up becomes due (``state.followup_due`` is set,
        and this keeps ``state``); the result records of an exposed customer's session (what
        it ordered after the follow-up)."""
        self._prune(expired_at)
        cid = state.customer_id
        if not cid:
            return []
        out = self._result(state, cid, expired_at)
        if kind_of(state) is not None and self._orders.get(cid, -1.0) < state.last_time:
            state.followup_due = max(state.last_time + self.delay, expired_at)
            self._wait(state)
        return out

    def restore(self, state: SessionState) -> bool:
        """Take back a waiting follow-up from its stored state (a restart or a rebalance);
        False if it is no longer due (ordered meanwhile, a later abandonment of the customer
        waits, or this one was sent here already): then its id is ``released``. Restoring one
        already waiting changes nothing. A worker that crashed after sending one and before
        its stored state was deleted sends it again, with the same id (at least once, as
        alerts and chat triggers)."""
        cid, due, sid = state.customer_id, state.followup_due, state.session_id
        old = self.pending.get(cid) if cid else None
        if old is not None and old.state.session_id == sid:
            return True
        sent = self._exposed.get(cid) if cid else None
        if not cid or due is None or kind_of(state) is None or (
                self._orders.get(cid, -1.0) >= state.last_time) or (
                old is not None and old.state.last_time >= state.last_time) or (
                sent is not None and sent.time >= due):  # a stale copy of one sent here
            self.released.add(sid)
            return False
        self._wait(state)
        return True

    def fire(self, now: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The follow-ups due at or before ``now``: the triggers to send (treatment arm, or
        all without a holdout) and the exposure records of both arms."""
        sent: list[dict[str, Any]] = []
        records: list[dict[str, Any]] = []
        heap = self.heap
        while heap and heap[0][0] <= now:
            due, cid = heapq.heappop(heap)
            p = self.pending.get(cid)
            if p is None or p.due != due:
                continue  # cancelled by an order, or replaced by a later abandonment
            del self.pending[cid]
            self._release(p)
            unit = customer_unit(cid, self.customer_salt)
            exp = self.experiment
            arm = exp.arm(unit) if exp is not None else "treatment"
            doc = self._trigger(p, unit, arm)
            if exp is not None:
                records.append(self._exposure(p, exp, unit, arm, doc["id"]))
                seen = self._exposed.get(cid)
                if seen is None or seen.time + exp.attribution_window < due:
                    self._exposed[cid] = _Exposed(unit, arm, due)
                    self._exposed_order.append((due + exp.attribution_window, cid))
            if arm == "treatment":
                sent.append(doc)
        return sent, records

    # --- internals -----------------------------------------------------------------------

    def _wait(self, state: SessionState) -> None:
        """``state``'s follow-up waits (``followup_due`` set), in place of its customer's."""
        cid, due = state.customer_id, state.followup_due
        assert cid is not None and due is not None
        old = self.pending.get(cid)
        if old is not None:
            self._release(old)
        kind = kind_of(state)
        assert kind is not None
        self.pending[cid] = Pending(due, kind, cid, state)
        self._by_session[state.session_id] = cid
        self.released.discard(state.session_id)  # its id is stored again
        heapq.heappush(self.heap, (due, cid))

    def _release(self, p: Pending) -> None:
        sid = p.state.session_id
        if self._by_session.get(sid) == p.customer_id:
            del self._by_session[sid]
        self.released.add(sid)

    def _result(self, state: SessionState, cid: str, end: float) -> list[dict[str, Any]]:
        e = self._exposed.get(cid)
        exp = self.experiment
        if e is None or exp is None or state.last_time <= e.time:
            return []  # no follow-up before this session ended
        return [{
            "type": "result", "experiment": exp.name, "arm": e.arm, "unit": e.unit,
            "unit_kind": "customer", "session_id": state.session_id,
            # The session's part after the follow-up: it began within the window or not.
            "exposed_at": max(state.first_time, e.time), "end": end,
            "converted": state.orders > 0, "orders": state.orders,
            "revenue": round(state.revenue, 2), "device": state.device,
        }]

    def _prune(self, now: float) -> None:
        order, orders = self._order_times, self._orders
        # Kept a day: sessions expire hours at most after their last event, and only orders
        # after that matter.
        cutoff = now - 86_400.0
        while order and order[0][0] < cutoff:
            _, cid = order.popleft()
            t = orders.get(cid)
            if t is not None and t < cutoff:
                del orders[cid]
            elif t is not None:
                order.append((t, cid))  # ordered again since
        ex, exposed = self._exposed_order, self._exposed
        # A session that began within the window may end a while after it.
        while ex and ex[0][0] < now - 86_400.0:
            until, cid = ex.popleft()
            e = exposed.get(cid)
            if e is not None and self.experiment is not None and \
                    e.time + self.experiment.attribution_window == until:
                del exposed[cid]

    def _trigger(self, p: Pending, unit: str, arm: str) -> dict[str, Any]:
        s = p.state
        key = f"followup:{s.session_id}:{s.first_time!r}:{s.last_time!r}"
        return {
            "specversion": "1.0",
            "type": f"io.frictionwatch.{p.kind.split('_')[1]}.abandoned",
            "source": self.source,
            "id": hashlib.sha256(key.encode()).hexdigest()[:32],
            "time": iso(p.due),
            "subject": s.session_id,
            "datacontenttype": "application/json",
            "data": {
                "kind": p.kind,
                "session_id": s.session_id,
                # The shop's own id, which its email system addresses the message by.
                "customer_id": p.customer_id,
                "customer": hash_customer(p.customer_id, self.customer_salt),
                "abandoned_at": iso(s.last_time),
                "cart_value": round(s.cart_value, 2),
                # Sessions keep the cart's value, not its lines.
                "items": None,
                "checkout_step": s.max_checkout_step or None,
                "friction": sorted(s.friction),
                "device": s.device,
            },
        }

    def _exposure(self, p: Pending, exp: Experiment, unit: str, arm: str,
                  doc_id: str) -> dict[str, Any]:
        return {
            "type": "exposure", "experiment": exp.name, "intervention": INTERVENTION,
            "arm": arm, "delivered": arm == "treatment", "unit": unit, "unit_kind": "customer",
            "session_id": p.state.session_id, "time": p.due, "first_in_session": True,
            "score": round(p.state.cart_value, 2), "reason": p.kind, "device": p.state.device,
            "cart_value": round(p.state.cart_value, 2), "id": doc_id,
        }
