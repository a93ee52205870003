"""From friction signals to one explained alert per struggling session, and a chat offer.

``Alerting.on_signals(state, signals)`` keeps a friction score per session: each signal adds
its type's weight, and the score decays with a half-life, so a burst of trouble counts and a
single old hiccup fades. When the score crosses ``threshold`` the session gets **one** alert;
it is re-armed only after the score has fallen below ``rearm_below`` (hysteresis) *and*
``cooldown`` seconds have passed, so a session that keeps struggling is not alerted again and
again. With an alert comes, at most once per cooldown, a proactive chat trigger.

Both are CloudEvents 1.0 documents (structured JSON). Ids are deterministic (session id and
the session's alert or trigger sequence number), so a consumer can drop duplicates after a
replay, and the same events give the same documents in the stream and in the backtest.

Revenue at risk is the cart value times the probability of abandoning: the online
abandonment model's (``models.abandonment``, which writes it on the session; ``explain``, when
given, names the factors that pushed it most), or, before the session has been scored, a prior:
the published checkout abandonment rate (about 70%, Baymard Institute's average of 49 studies)
raised by the friction score.

>>> from detectors.base import Signal
>>> from detectors.session import SessionState
>>> a = Alerting()
>>> s = SessionState(session_id="s1", customer_id="c1", cart_value=80.0, checkout_step=3)
>>> sig = Signal(type="payment_declined", session_id="s1", time=100.0, start=95.0, step=3,
...              evidence={"reasons": ["do_not_honor", "do_not_honor"]})
>>> alerts, chats = a.on_signals(s, [sig])
>>> alerts[0]["type"], alerts[0]["data"]["revenue_at_risk"] > 0, chats[0]["data"]["reason"]
('io.frictionwatch.session.friction', True, 'payment_declined')
>>> a.on_signals(s, [sig])  # still struggling: no second alert within the cooldown
([], [])
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from detectors.base import Signal
from detectors.bounds import iso
from detectors.session import SessionState

__all__ = ["Alerting", "DEFAULT_WEIGHTS", "OPENING_MESSAGES", "hash_customer"]

#: Score each friction type adds. Tuned so that one strong checkout blocker (declines, a
#: looping form field, a stall, failed API calls) alerts at once, and browsing annoyances
#: (a slow page, a dead click) alert only when they pile up.
DEFAULT_WEIGHTS: dict[str, float] = {
    "payment_declined": 1.0,
    "form_error_loop": 1.0,
    "step_stall": 1.0,
    "api_error": 1.0,
    "coupon_failure": 0.7,
    "backtrack": 0.7,
    "error_click": 0.6,
    "rage_click": 0.6,
    "error_page": 0.6,
    "dead_click": 0.35,
    "slow_page": 0.35,
}

#: What a chat agent (or bot) opens with, per friction type: specific, helpful, not creepy.
OPENING_MESSAGES: dict[str, str] = {
    "payment_declined": "Having trouble with payment? I can help you try another method.",
    "form_error_loop": "Something not accepted in the form? Tell me and I'll help you fill it in.",
    "step_stall": "Any questions before you order? I'm here if you need anything.",
    "api_error": "Sorry, part of our checkout is acting up. Can I help you finish your order?",
    "coupon_failure": "Need help with your discount code? I can check it for you.",
    "backtrack": "Want me to check your delivery or order details with you?",
    "error_click": "Looks like something didn't work. Can I help you with it?",
    "rage_click": "Is something not responding? I can help.",
    "error_page": "Sorry about that error page. Can I help you find what you need?",
    "dead_click": "Not sure where to go next? I can point you there.",
    "slow_page": "Sorry it's slow right now. Can I help you with your order?",
}

#: What the CX team should do, per friction type.
ACTIONS: dict[str, str] = {
    "payment_declined": "offer chat with alternative payment methods; check the payment provider",
    "form_error_loop": "offer chat; review the field's validation rule",
    "step_stall": "offer chat to answer questions about the order",
    "api_error": "offer chat; check the failing checkout API",
    "coupon_failure": "offer chat; check the promotion's rules",
    "backtrack": "offer chat; check that delivery and order details are clear",
    "error_click": "offer chat; check the page's JavaScript errors",
    "rage_click": "offer chat; check the element's responsiveness",
    "error_page": "offer chat; check the broken page or link",
    "dead_click": "check whether the element looks clickable but is not",
    "slow_page": "check the page's performance",
}

#: Baymard Institute, "Cart Abandonment Rate" (average of 49 studies, about 70%).
BASE_ABANDONMENT = 0.70


def hash_customer(customer_id: str | None, salt: str = "") -> str | None:
    """A stable pseudonym for a customer id, so alerts can be joined without carrying PII."""
    if not customer_id:
        return None
    return hashlib.sha256((salt + customer_id).encode()).hexdigest()[:24]




def _event_id(kind: str, state: SessionState, seq: int) -> str:
    # The session's start is part of it: a session id may come back after expiry (an
    # anonymous id used as session id), and its new alerts must not look like duplicates.
    key = f"{kind}:{state.session_id}:{state.first_time!r}:{seq}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


@dataclass
class Alerting:
    """Score, alert and chat-trigger policy (stateless itself: memory lives in the session).

    Parameters
    ----------
    threshold
        Score at which a session alerts.
    rearm_below
        Score under which an alerted session may alert again (after the cooldown).
    half_life
        Seconds for the score to halve without new signals.
    cooldown
        Seconds between two alerts (and two chat triggers) of one session.
    chat_ttl
        Seconds a chat trigger stays valid: an offer after the customer left is useless.
    silent_stalls
        Whether a stall known only from silence (evidence ``presence`` "unknown": the session
        sent no presence signal, so it may simply have left) adds to the score, so alerts and
        offers chat. Default False: such a stall is still a signal (counted, in dashboards
        and the outcome), not an alert.
    chat_presumed
        Whether a stall whose customer is only presumed there (the source sends leave
        beacons and none came; evidence ``presence`` "presumed") is offered chat. Default
        False: it alerts, but an offer goes only to a customer known to be there (a heartbeat
        in the step, or back and acting), as a lost beacon leaves a gone customer looking
        present, and an offer "sent" to them would count as treatment in the chat holdout
        though nobody saw it.
    """

    threshold: float = 1.0
    rearm_below: float = 0.3
    half_life: float = 300.0
    cooldown: float = 900.0
    chat_ttl: float = 120.0
    silent_stalls: bool = False
    chat_presumed: bool = False
    weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    source: str = "frictionwatch/sessions"
    customer_salt: str = ""
    #: The factors behind the session's abandonment probability, in plain words (the model's
    #: ``explain``); None: alerts name none.
    explain: Callable[[SessionState], list[str]] | None = None

    def score(self, state: SessionState, now: float) -> float:
        """The session's friction score decayed to ``now``."""
        mem = state.detector_state.get("_alerting")
        if not mem:
            return 0.0
        dt = max(0.0, now - mem["t"])
        return float(mem["score"]) * math.pow(0.5, dt / self.half_life)

    def on_signals(
        self,
        state: SessionState,
        signals: Sequence[Signal],
        abandon_probability: float | None = None,
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Add ``signals`` (of this session, in time order) to its score; return the alerts
        and chat triggers that crossing the threshold causes (at most one each)."""
        if not signals:
            return [], []
        mem = state.detector_state.setdefault(
            "_alerting", {"score": 0.0, "t": 0.0, "armed": True, "alerts": 0, "chats": 0,
                          "last_alert": None, "last_chat": None, "recent": []})
        alerts: list[dict[str, Any]] = []
        chats: list[dict[str, Any]] = []
        for sig in signals:
            presence = sig.evidence.get("presence")
            if presence == "unknown" and not self.silent_stalls:
                continue
            if sig.evidence.get("scope") == "site":
                continue  # a page failing outside any journey: site health, not this customer
            decayed = self.score(state, sig.time)
            if not mem["armed"] and decayed < self.rearm_below:
                mem["armed"] = True  # calm again: the next struggle may alert
            score = decayed + self.weights.get(sig.type, 0.5)
            mem["score"], mem["t"] = score, sig.time
            # The evidence an alert explains itself with: the last few signals.
            mem["recent"] = [*mem["recent"][-4:], _brief(sig)]
            cooled = mem["last_alert"] is None or sig.time - mem["last_alert"] >= self.cooldown
            if mem["armed"] and cooled and score >= self.threshold:
                mem["armed"] = False
                mem["last_alert"] = sig.time
                mem["alerts"] += 1
                risk = self._risk(score, abandon_probability
                                  if abandon_probability is not None
                                  else state.abandon_probability)
                customer = hash_customer(state.customer_id, self.customer_salt)
                alerts.append(self._alert(state, sig, score, risk, customer, mem))
                chat_cooled = (mem["last_chat"] is None
                               or sig.time - mem["last_chat"] >= self.cooldown)
                there = (presence is None or presence == "confirmed"
                         or presence == "presumed" and self.chat_presumed
                         or presence == "unknown")  # only here if silent_stalls asked for it
                if chat_cooled and there:
                    mem["last_chat"] = sig.time
                    mem["chats"] += 1
                    chats.append(self._chat(state, sig, risk, customer, mem))
        return alerts, chats

    def _risk(self, score: float, p: float | None) -> float:
        if p is not None:
            return p
        # Prior: the average abandonment rate, pushed up by friction, never to certainty.
        return min(0.95, BASE_ABANDONMENT + (1 - BASE_ABANDONMENT) * (1 - math.exp(-score / 2)))

    def _alert(self, state: SessionState, sig: Signal, score: float, risk: float,
               customer: str | None, mem: dict[str, Any]) -> dict[str, Any]:
        return self._cloudevent("alert", "io.frictionwatch.session.friction", state, sig,
                                mem["alerts"], {
            "session_id": state.session_id,
            "customer": customer,
            "journey": _journey(state),
            "step": sig.step if sig.step is not None else (state.checkout_step or None),
            "device": state.device,
            "score": round(score, 3),
            "reason": sig.type,
            "signals": list(mem["recent"]),
            "cart_value": round(state.cart_value, 2),
            "abandon_probability": round(risk, 3),
            "abandon_factors": self.explain(state) if self.explain is not None else [],
            "revenue_at_risk": round(state.cart_value * risk, 2),
            "recommended_action": ACTIONS.get(sig.type, "offer chat"),
        })

    def _chat(self, state: SessionState, sig: Signal, risk: float, customer: str | None,
              mem: dict[str, Any]) -> dict[str, Any]:
        return self._cloudevent("chat", "io.frictionwatch.chat.offer", state, sig,
                                mem["chats"], {
            "session_id": state.session_id,
            "customer": customer,
            "reason": sig.type,
            "priority": round(state.cart_value * risk, 2),
            "expires": iso(sig.time + self.chat_ttl),
            "message": OPENING_MESSAGES.get(sig.type, "Can I help you with anything?"),
        })

    def _cloudevent(self, kind: str, ce_type: str, state: SessionState, sig: Signal, seq: int,
                    data: dict[str, Any]) -> dict[str, Any]:
        """A CloudEvents 1.0 structured-mode document about one session."""
        return {
            "specversion": "1.0",
            "type": ce_type,
            "source": self.source,
            "id": _event_id(kind, state, seq),
            "time": iso(sig.time),
            "subject": state.session_id,
            "datacontenttype": "application/json",
            "data": data,
        }


def _brief(sig: Signal) -> dict[str, Any]:
    return {"type": sig.type, "time": iso(sig.time), "start": iso(sig.start),
            "step": sig.step, "evidence": sig.evidence}


def _journey(state: SessionState) -> Any:
    j = state.detector_state.get("journey")
    if isinstance(j, dict):
        return {k: j[k] for k in ("journey", "step", "step_name") if k in j} or None
    return None
