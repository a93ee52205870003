"""Checkout friction detectors: form-error loops, payment declines, step stalls, backtracking and
coupon failures.

Each is a small pure class (``detectors.base.BaseDetector``) whose ``name`` is the friction type
the simulator's ground truth uses (``streams.sim.FRICTION_TYPES``). Thresholds are
constructor parameters; the defaults and where they come from are in each class's docstring.
Per-session memory lives in ``state.detector_state[name]`` (JSON builtins, bounded); the one
piece of memory shared across sessions, the per-step duration model of ``StepStall``, is owned by
the detector instance and checkpointed with ``StepDurations.to_dict``/``from_dict``.

``checkout_detectors()`` builds all five:

>>> from detectors.session import SessionProcessor
>>> from detectors.events import CouponEntered
>>> proc = SessionProcessor(checkout_detectors(coupon_failure={"min_failures": 3}))
>>> [d.name for d in proc.detectors]
['form_error_loop', 'payment_declined', 'step_stall', 'backtrack', 'coupon_failure']
>>> denied = [CouponEntered(id=str(i), time=float(i), session_id="s", code="X", success=False)
...           for i in range(3)]
>>> _, out = proc.apply(None, denied)
>>> [(s.type, s.evidence["count"]) for s in out]
[('coupon_failure', 3)]
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from detectors.base import BaseDetector, Signal
from detectors.events import (
    ApiError,
    CartUpdated,
    CheckoutStarted,
    CheckoutStepCompleted,
    CheckoutStepViewed,
    Click,
    CouponEntered,
    DeadClick,
    FormFieldError,
    FormInteraction,
    FormSubmitted,
    Identify,
    OrderCompleted,
    PagePerformance,
    PageView,
    PaymentAttempted,
    Presence,
)

if TYPE_CHECKING:
    from detectors.session import SessionState

__all__ = [
    "SYSTEM_DECLINE_REASONS",
    "Backtrack",
    "CouponFailure",
    "FormErrorLoop",
    "PaymentDeclined",
    "StepDurations",
    "StepStall",
    "checkout_detectors",
]

#: Lists kept in evidence (times, reasons, codes...) hold at most this many items (the latest).
MAX_ITEMS = 10

_NO_SIGNALS: tuple[Signal, ...] = ()


def _step_of(state: SessionState) -> int | None:
    return state.checkout_step or None


def _push(items: list[Any], value: Any) -> None:
    """Append, keeping the last ``MAX_ITEMS``."""
    items.append(value)
    if len(items) > MAX_ITEMS:
        del items[0]


# --- form-error loops --------------------------------------------------------------------------


class FormErrorLoop(BaseDetector):
    """The same form field failing validation ``min_errors`` times or more in one loop.

    A loop is a run of ``FormFieldError`` on one (form, field) with at most ``max_gap`` seconds
    between consecutive errors; it raises one signal, at its ``min_errors``-th error. A later
    run on the same field (after a longer gap) is a new loop and may signal again.

    Parameters
    ----------
    min_errors
        Errors on one field that make a loop. Default 2, the issue's definition: one validation
        error is ordinary (about 6% of checkout forms in the simulator's baseline, and Baymard
        finds most sites' inline validation fires routinely), the same field failing again means
        the customer cannot find what the form wants.
    max_gap
        Seconds between two errors of one loop. Default 600 (10 minutes): people retry a field
        within seconds to a minute; a gap that long is a new attempt at the form. A successful
        ``FormSubmitted`` does not end a loop, because GA4's ``form_submit`` carries no success
        flag (the adapter defaults it to True) and would end every loop there.
    max_fields
        Fields remembered per session (least recently failed dropped first): bounds memory.

    >>> from detectors.events import FormFieldError
    >>> from detectors.session import SessionState
    >>> det, s = FormErrorLoop(), SessionState(session_id="s1", checkout_step=2)
    >>> err = lambda t, f: FormFieldError(id=str(t), time=t, session_id="s1", form="shipping",
    ...                                   field=f, message=f"Enter a valid {f}")
    >>> det.update(s, err(10.0, "postal_code")), det.update(s, err(15.0, "city"))
    ((), ())
    >>> [sig] = det.update(s, err(30.0, "postal_code"))
    >>> sig.type, sig.start, sig.time, sig.step, sig.evidence["field"], sig.evidence["count"]
    ('form_error_loop', 10.0, 30.0, 2, 'postal_code', 2)
    >>> det.update(s, err(40.0, "postal_code"))  # the same loop: no second signal
    ()
    """

    name = "form_error_loop"
    handles: ClassVar[tuple[type, ...]] = (FormFieldError,)

    def __init__(self, min_errors: int = 2, max_gap: float = 600.0, max_fields: int = 8) -> None:
        if min_errors < 1 or max_gap <= 0 or max_fields < 1:
            raise ValueError("min_errors and max_fields must be >= 1, max_gap > 0")
        self.min_errors = min_errors
        self.max_gap = max_gap
        self.max_fields = max_fields

    def update(self, state: SessionState, event: Any) -> Sequence[Signal]:
        fields = self.memory(state).setdefault("fields", {})
        key = f"{event.form or ''}|{event.field}"
        loop = fields.get(key)
        t = event.time
        if loop is None or t - loop["last"] > self.max_gap:
            if loop is None and len(fields) >= self.max_fields:
                del fields[min(fields, key=lambda k: fields[k]["last"])]
            loop = fields[key] = {"count": 0, "times": [], "messages": [], "last": t,
                                  "signalled": False}
        loop["count"] += 1
        loop["last"] = max(loop["last"], t)
        _push(loop["times"], t)
        msg = event.message
        if msg is not None and msg not in loop["messages"] and len(loop["messages"]) < 5:
            loop["messages"].append(msg)
        if loop["signalled"] or loop["count"] < self.min_errors:
            return _NO_SIGNALS
        loop["signalled"] = True
        return [self.signal(state, t, loop["times"][0], _step_of(state), field=event.field,
                            form=event.form, messages=list(loop["messages"]),
                            count=loop["count"], times=list(loop["times"]))]


# --- payment declines --------------------------------------------------------------------------

#: Decline reasons that say the payment system, not the card or the customer, failed: Stripe's
#: ``processing_error``, ``issuer_not_available``, ``try_again_later``, ``reenter_transaction``
#: (https://docs.stripe.com/declines/codes) and the generic gateway/network failures. The customer
#: can do nothing about them, and retrying the same card usually fails again.
SYSTEM_DECLINE_REASONS: frozenset[str] = frozenset({
    "processing_error", "issuer_not_available", "try_again_later", "reenter_transaction",
    "service_unavailable", "gateway_error", "gateway_timeout", "timeout", "network_error",
    "provider_error", "system_error", "rate_limited",
})


class PaymentDeclined(BaseDetector):
    """Repeated payment declines, with their reasons; a system-side decline counts at once.

    The rule: signal when a session has ``min_declines`` declined ``PaymentAttempted`` since its
    last successful payment, or ``min_system_declines`` whose reason is in ``system_reasons``.
    One signal per run of declines (a successful payment ends the run).

    Why two kinds: a single customer-side decline (``insufficient_funds``, ``incorrect_cvc``,
    ``expired_card``...) is common and usually fixed on the next try: card-not-present decline
    rates run 5-15% of attempts in payment-industry reports, and the simulator's baseline has
    one such decline in 3% of payments, never two. Two in a row mean the customer is stuck.
    A system-side decline (``processing_error`` and friends) is the shop's or its provider's
    failure: the customer cannot fix it, a retry tends to fail too, and it is what a provider
    outage looks like (the simulator's ``payment_outage`` records one such decline as friction).
    So one is enough. A decline without a reason counts as customer-side.

    Parameters
    ----------
    min_declines
        Declines of any reason that make friction. Default 2 (the issue: "repeated declines").
    min_system_declines
        Declines with a system-side reason that make friction. Default 1.
    system_reasons
        The system-side reasons. Default ``SYSTEM_DECLINE_REASONS``.

    >>> from detectors.events import PaymentAttempted
    >>> from detectors.session import SessionState
    >>> det, s = PaymentDeclined(), SessionState(session_id="s1", checkout_step=4)
    >>> pay = lambda t, reason: PaymentAttempted(id=str(t), time=t, session_id="s1",
    ...                                          success=False, decline_reason=reason)
    >>> det.update(s, pay(10.0, "insufficient_funds"))
    ()
    >>> [sig] = det.update(s, pay(40.0, "do_not_honor"))
    >>> sig.start, sig.time, sig.step, sig.evidence["reasons"], sig.evidence["count"]
    (10.0, 40.0, 4, ['insufficient_funds', 'do_not_honor'], 2)
    >>> [sig] = PaymentDeclined().update(SessionState(session_id="s2"),
    ...                                  pay(5.0, "processing_error"))
    >>> sig.evidence["system_side"], sig.evidence["count"]
    (True, 1)
    """

    name = "payment_declined"
    handles: ClassVar[tuple[type, ...]] = (PaymentAttempted,)

    def __init__(self, min_declines: int = 2, min_system_declines: int = 1,
                 system_reasons: Iterable[str] = SYSTEM_DECLINE_REASONS) -> None:
        if min_declines < 1 or min_system_declines < 1:
            raise ValueError("min_declines and min_system_declines must be >= 1")
        self.min_declines = min_declines
        self.min_system_declines = min_system_declines
        self.system_reasons = frozenset(system_reasons)

    def update(self, state: SessionState, event: Any) -> Sequence[Signal]:
        if event.success:
            mem = state.detector_state.get(self.name)
            if mem:
                mem.clear()  # the run of declines is over
            return _NO_SIGNALS
        mem = self.memory(state)
        if not mem:
            mem.update(count=0, system=0, reasons=[], times=[], providers=[], signalled=False)
        reason = event.decline_reason
        mem["count"] += 1
        system = reason in self.system_reasons
        if system:
            mem["system"] += 1
        _push(mem["reasons"], reason)
        _push(mem["times"], event.time)
        if event.provider is not None and event.provider not in mem["providers"] \
                and len(mem["providers"]) < 4:
            mem["providers"].append(event.provider)
        if mem["signalled"] or (mem["count"] < self.min_declines
                                and mem["system"] < self.min_system_declines):
            return _NO_SIGNALS
        mem["signalled"] = True
        return [self.signal(state, event.time, mem["times"][0], _step_of(state),
                            reasons=list(mem["reasons"]), count=mem["count"],
                            system_side=mem["system"] > 0, times=list(mem["times"]),
                            providers=list(mem["providers"]), method=event.method,
                            amount=event.amount, currency=event.currency)]


# --- step stalls -------------------------------------------------------------------------------


class StepDurations:
    """Typical time in each checkout step, learned online: a streaming median of log-seconds.

    The first ``warmup`` durations of a step are kept and their exact median starts the
    estimate; after that each new duration moves it by a fixed amount ``rate`` (in log units)
    towards itself: ``m += rate * sign(log(x) - m)`` (stochastic-approximation median, as in
    Robbins-Monro quantile tracking). The move does not depend on how far the value is, so
    outliers barely count (a 5% share of huge values shifts it to about the 52.6th percentile),
    and a fixed rate keeps following slow drift (a step that got slower) within some
    ``1 / rate`` steps. Until a step has ``warmup`` samples, ``typical`` is ``default``.

    >>> d = StepDurations(warmup=5, default=60.0)
    >>> d.typical(2)
    60.0
    >>> for s in (30, 35, 40, 45, 50, 3000):
    ...     d.learn_one(2, s)
    >>> round(d.typical(2), 1), d.count(2)
    (40.8, 6)
    >>> StepDurations.from_dict(d.to_dict()).typical(2) == d.typical(2)
    True
    """

    def __init__(self, warmup: int = 20, rate: float = 0.02, default: float = 60.0) -> None:
        if warmup < 1 or not 0 < rate < 1 or default <= 0:
            raise ValueError("warmup >= 1, 0 < rate < 1 and default > 0 are required")
        self.warmup = warmup
        self.rate = rate
        self.default = default
        #: step (as str, for JSON) -> {"n": samples, "m": log-median or None, "buf": [...]}
        self._steps: dict[str, dict[str, Any]] = {}
        self._cache: dict[int, float] = {}

    def learn_one(self, step: int, seconds: float) -> None:
        if not seconds > 0 or not math.isfinite(seconds):
            return
        key = str(step)
        st = self._steps.get(key)
        if st is None:
            st = self._steps[key] = {"n": 0, "m": None, "buf": []}
        x = math.log(seconds)
        st["n"] += 1
        m = st["m"]
        if m is None:
            st["buf"].append(x)
            if len(st["buf"]) >= self.warmup:
                st["m"] = _median(st["buf"])
                st["buf"] = []
        else:
            rate = self.rate
            st["m"] = m + rate if x > m else m - rate if x < m else m
        self._cache.pop(step, None)

    def typical(self, step: int) -> float:
        """Typical (median) seconds in ``step``; ``default`` while it has too few samples."""
        v = self._cache.get(step)
        if v is None:
            st = self._steps.get(str(step))
            v = self.default if st is None or st["m"] is None else math.exp(st["m"])
            self._cache[step] = v
        return v

    def count(self, step: int) -> int:
        st = self._steps.get(str(step))
        return 0 if st is None else int(st["n"])

    def to_dict(self) -> dict[str, Any]:
        return {"warmup": self.warmup, "rate": self.rate, "default": self.default,
                "steps": {k: {"n": v["n"], "m": v["m"], "buf": list(v["buf"])}
                          for k, v in self._steps.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StepDurations:
        out = cls(warmup=int(data["warmup"]), rate=float(data["rate"]),
                  default=float(data["default"]))
        out._steps = {str(k): {"n": int(v["n"]), "m": None if v["m"] is None else float(v["m"]),
                               "buf": [float(x) for x in v["buf"]]}
                      for k, v in data.get("steps", {}).items()}
        return out


def _median(xs: list[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


#: Events that show the customer acting in a step (progress is handled separately). The page
#: failing (``_failed``: a failed API call, an error page view, a "poor" page load) is the other
#: thing that ends an idle visit. Neither: the step's own load events (PageView,
#: CheckoutStepViewed, PagePerformance) and JsError (scripts failing at load are common
#: background noise, not something the customer did or saw).
_ACTIONS = (Click, DeadClick, FormFieldError, FormInteraction, FormSubmitted, CouponEntered,
            PaymentAttempted, CartUpdated, Identify)
_ACTIONS_SET = frozenset(_ACTIONS)

#: Core Web Vitals "poor" lines (https://web.dev/articles/vitals): LCP > 4 s, INP > 500 ms.
POOR_LCP_MS = 4000.0
POOR_INP_MS = 500.0


def _failed(event: Any) -> bool:
    """A failed API call, a page view with an error status, or a load with poor Web Vitals."""
    t = type(event)
    if t is ApiError:
        return True
    if t is PageView:
        return (event.status_code or 0) >= 400
    if t is not PagePerformance:
        return False
    lcp, inp = event.lcp_ms, event.inp_ms
    return (lcp is not None and lcp > POOR_LCP_MS) or (inp is not None and inp > POOR_INP_MS)


class StepStall(BaseDetector):
    """A customer in a checkout step far longer than that step's learned typical time, without
    doing anything in it: flagged while they are still there, by a deadline.

    On entering a step (``CheckoutStepViewed`` of another step, or ``CheckoutStarted`` for step
    1) the detector sets a deadline ``entry + max(min_seconds, k * typical(step))``. If event
    time reaches it (``due``/``tick``: the stream's watermark or the session's next event) while
    the session is still in the step and has not interacted with it (no click, form event,
    coupon, payment...), it raises ``step_stall`` with ``time`` = the deadline and ``start`` =
    the step entry. Completing the step, moving to another one, ordering or interacting clears
    the deadline.

    Why "without interacting": an idle session past the deadline is either stuck in front of
    the page or gone, and a session that did things in the step and then fell silent has most
    likely left (abandonment, which the outcome label and the models cover, not a friction
    signal). Requiring no interaction keeps abandonments after a filled-in step out. Presence
    signals (``Presence``) tell the two apart where the source sends them: a leave or hide
    before the deadline ends the clock (the customer went away: an abandonment), and where
    the source sends heartbeats (``Presence`` "here", e.g. Snowplow's ``page_ping``) the stall
    waits for the first one past the deadline (``time`` = that heartbeat): none comes from
    a customer who has gone. Evidence ``presence`` says how we know they are there:
    ``confirmed`` (that heartbeat, or they came back), ``presumed`` (the session sends leave
    beacons and none came; beacons get lost) or ``unknown`` (silence only; alerting leaves
    those out unless told otherwise). Likewise the page failing in
    the step (an error page view, a failed API call, a load with "poor" Web Vitals) ends the
    idle clock: silence after it is that failure's friction (``error_page``, ``api_error``,
    ``slow_page``), most often the customer leaving. If such a customer does come back and
    act in the step after the deadline, it was a stall after all: ``step_stall`` is raised
    then (``time`` = that event, evidence ``came_back`` True). Long *active* steps are left to
    the detectors of what makes them long (form-error loops, backtracking, declines...).

    The typical time is learned online per step by the ``StepDurations`` this instance owns
    (shared by all sessions it sees): from step visits that ended by completing the step or by
    moving on to a later one, first visits only (a return after backtracking is short and
    not representative), stalls already flagged excluded.

    Parameters
    ----------
    k
        Multiple of the typical time that is "far above". Default 3: checkout step times are
        about log-normal with a spread (sigma) near 0.5, so 3x the median is 2.2 sigma out
        (about 1% of ordinary visits, and those are busy, not idle, so they never fire); in
        simulated traffic the longest friction-free visit of each step is 2.5-3.3x that step's
        median. Precision hardly depends on k (measured equal for 2.5-4: idle visits that long
        are rare whatever k), so it trades the time to detect against what "far above" means:
        each 0.5 costs half a typical step time. Measured (bench/detection_quality.py, seeds
        1-3): 3.5 flagged 12 s after the stall's onset (3x typical), 3 flagged about 2 s before.
    min_seconds
        Floor of the threshold, so a step that normally takes seconds does not flag a short
        pause. Default 60.
    durations
        The learner; default ``StepDurations()`` (warm-up 20 visits per step, default typical
        60 s, rate 0.02).

    >>> from detectors.events import CheckoutStepViewed, CheckoutStepCompleted
    >>> from detectors.session import SessionProcessor
    >>> det = StepStall(k=3.5, durations=StepDurations(warmup=3))
    >>> proc = SessionProcessor([det])
    >>> view = lambda sid, t, n: CheckoutStepViewed(id=f"v{t}", time=t, session_id=sid, step=n)
    >>> done = lambda sid, t, n: CheckoutStepCompleted(id=f"d{t}", time=t, session_id=sid, step=n)
    >>> for i in range(3):  # three sessions take 30 s in step 2
    ...     _ = proc.apply(None, [view(f"s{i}", 0.0, 2), done(f"s{i}", 30.0, 2)])
    >>> round(det.durations.typical(2), 6)
    30.0
    >>> state, out = proc.apply(None, [view("x", 100.0, 2)])
    >>> proc.next_due(state)  # entry + max(60, 3.5 x 30)
    205.0
    >>> proc.advance(state, 200.0)
    []
    >>> [sig] = proc.advance(state, 206.0)
    >>> sig.type, sig.start, sig.time, sig.step, sig.evidence["typical_seconds"]
    ('step_stall', 100.0, 205.0, 2, 30.0)
    """

    name = "step_stall"
    handles: ClassVar[tuple[type, ...]] = (CheckoutStarted, CheckoutStepViewed)
    #: What ends a step or its idle clock: only while the session is in checkout.
    follows: ClassVar[tuple[type, ...]] = (
        CheckoutStepCompleted, OrderCompleted, *_ACTIONS, ApiError, PageView, PagePerformance,
        Presence)

    def __init__(self, k: float = 3.0, min_seconds: float = 60.0,
                 durations: StepDurations | None = None) -> None:
        if k <= 1 or min_seconds < 0:
            raise ValueError("k must be > 1 and min_seconds >= 0")
        self.k = k
        self.min_seconds = min_seconds
        self.durations = durations if durations is not None else StepDurations()

    def threshold(self, step: int) -> float:
        """Seconds in ``step`` after which an idle visit is a stall."""
        return max(self.min_seconds, self.k * self.durations.typical(step))

    def update(self, state: SessionState, event: Any) -> Sequence[Signal]:
        t = type(event)
        mem = state.detector_state.get("step_stall")
        if t is CheckoutStepViewed or t is CheckoutStarted:
            step = event.step if t is CheckoutStepViewed else 1
            if mem is None:
                mem = state.detector_state["step_stall"] = {}
            cur = mem.get("step")
            if cur == step:
                return _NO_SIGNALS  # a reload, or the step-1 view after CheckoutStarted
            if cur is not None and step > cur:
                self._learn(mem, event.time)  # moved on without a completion event
            top = mem.get("max", 0)
            mem.clear()
            mem.update(step=step, entry=event.time, max=max(top, step), first=step > top,
                       step_name=event.step_name if t is CheckoutStepViewed else None)
            mem["due"] = event.time + self.threshold(step) if step > top else None
        elif mem:
            if t is not Presence and t is not PagePerformance and "away" in mem:
                # Something after the leave beacon: it was a navigation, or they are back
                # (Web Vitals are left out: the page reports them as it goes away too).
                del mem["away"]
            if t is CheckoutStepCompleted:
                if event.step == mem.get("step"):
                    self._learn(mem, event.time)
                    top = mem.get("max", 0)
                    mem.clear()
                    mem["max"] = top
            elif t is OrderCompleted:
                top = mem.get("max", 0)
                mem.clear()
                mem["max"] = top
            elif t is Presence:
                if event.state == "here" or event.state == "visible":
                    mem.pop("away", None)  # there, and still idle
                    quiet = mem.pop("quiet", None)
                    if quiet is not None and event.time >= quiet:
                        # In front of the untouched step past its deadline: a heartbeat
                        # (``tick`` waits for one) or the page back in view.
                        return self._stall(state, mem, event.time,
                                           came_back=event.state == "visible")
                else:
                    # Gone, unless something follows: a page's beacon also goes as the next
                    # page of the site loads (the cart's, after "Checkout Started").
                    mem["away"] = True
            elif t in _ACTIONS_SET:
                mem["due"] = None  # the customer acts in the step: not an idle stall
                quiet = mem.pop("quiet", None)
                if quiet is not None and event.time >= quiet:
                    return self._stall(state, mem, event.time, came_back=True)
            elif mem.get("due") is not None and _failed(event):
                # Silence after the page failed is most often that failure's friction (they
                # left); if they come back after the deadline, it was a stall after all.
                mem["quiet"] = mem["due"]
                mem["due"] = None
        return _NO_SIGNALS

    def _learn(self, mem: dict[str, Any], now: float) -> None:
        if mem.get("first") and not mem.get("flagged") and "entry" in mem:
            self.durations.learn_one(mem["step"], now - mem["entry"])

    def due(self, state: SessionState) -> float | None:
        mem = state.detector_state.get("step_stall")
        return mem.get("due") if mem else None

    def tick(self, state: SessionState, now: float) -> Sequence[Signal]:
        mem = self.memory(state)
        due = mem.get("due")
        if due is None or due > now:
            return _NO_SIGNALS
        mem["due"] = None
        if mem.pop("away", None):
            # Gone before the deadline: an abandonment (the outcome's), not a stall; nor is
            # it one when they come back to act after it.
            mem.pop("quiet", None)
            return _NO_SIGNALS
        if state.heartbeat_at is not None:
            # The source sends heartbeats while the page is in use: the next one shows they
            # are still there, and the stall is raised with it; none, that they went away
            # (Snowplow sends no leave event at all). So no alert or chat offer goes to a
            # customer who left between the last heartbeat and the deadline.
            mem["quiet"] = due
            return _NO_SIGNALS
        return self._stall(state, mem, due, came_back=False)

    def _stall(self, state: SessionState, mem: dict[str, Any], time: float, came_back: bool
               ) -> list[Signal]:
        mem["flagged"] = True
        step = mem["step"]
        typical = self.durations.typical(step)
        # How we know they are there: a heartbeat past the deadline (their source sends
        # them: ``tick`` waits for one) or their coming back (confirmed); their source sends
        # leave beacons and none came (presumed); or nothing but silence (unknown: alerting
        # leaves such stalls out unless told otherwise).
        presence = ("confirmed" if came_back or state.heartbeat_at is not None
                    else "presumed" if state.presence_at is not None else "unknown")
        return [self.signal(state, time, mem["entry"], step, step_name=mem.get("step_name"),
                            entered_at=mem["entry"], seconds=round(time - mem["entry"], 3),
                            typical_seconds=round(typical, 3), k=self.k,
                            samples=self.durations.count(step), came_back=came_back,
                            presence=presence)]


# --- backtracking ------------------------------------------------------------------------------


class Backtrack(BaseDetector):
    """Returning to an earlier checkout step ``min_returns`` times or more.

    A return is a ``CheckoutStepViewed`` of a step lower than the step the session was viewing.
    One signal per session, at the ``min_returns``-th return; evidence lists each move.

    Parameters
    ----------
    min_returns
        Returns that make friction. Default 2 (the issue: "repeatedly"): going back once to fix
        an address or change the delivery option is ordinary; going back and forth again means
        the customer is hunting for something the step does not show (a total, a delivery
        date, a fee), which Baymard lists among the top reasons for checkout abandonment.

    >>> from detectors.events import CheckoutStepViewed
    >>> from detectors.session import SessionState
    >>> det, s = Backtrack(), SessionState(session_id="s1")
    >>> view = lambda t, n: CheckoutStepViewed(id=str(t), time=t, session_id="s1", step=n)
    >>> [x for t, n in ((1.0, 1), (9.0, 2), (20.0, 3), (30.0, 2), (40.0, 3)) for x in
    ...  det.update(s, view(t, n))]
    []
    >>> [sig] = det.update(s, view(50.0, 2))
    >>> sig.start, sig.time, sig.step, sig.evidence["count"], sig.evidence["moves"]
    (30.0, 50.0, 3, 2, [[3, 2, 30.0], [3, 2, 50.0]])
    """

    name = "backtrack"
    handles: ClassVar[tuple[type, ...]] = (CheckoutStepViewed,)

    def __init__(self, min_returns: int = 2) -> None:
        if min_returns < 1:
            raise ValueError("min_returns must be >= 1")
        self.min_returns = min_returns

    def update(self, state: SessionState, event: Any) -> Sequence[Signal]:
        mem = self.memory(state)
        cur = mem.get("step")
        mem["step"] = step = event.step
        if cur is None or step >= cur:
            return _NO_SIGNALS
        moves = mem.setdefault("moves", [])
        mem["count"] = n = mem.get("count", 0) + 1
        _push(moves, [cur, step, event.time])
        if n < self.min_returns or mem.get("signalled"):
            return _NO_SIGNALS
        mem["signalled"] = True
        return [self.signal(state, event.time, moves[0][2], cur, from_step=cur, to_step=step,
                            count=n, times=[m[2] for m in moves],
                            moves=[list(m) for m in moves])]


# --- coupon failures ---------------------------------------------------------------------------


class CouponFailure(BaseDetector):
    """A coupon denied ``min_failures`` times or more (any codes) since the last accepted one.

    One signal per run of denials; an accepted coupon ends the run.

    Parameters
    ----------
    min_failures
        Denials that make friction. Default 2 (the issue: "repeated"): one denied code is
        common (a typo, an expired code from a voucher site); a second means the customer is
        fighting the promo, and coupon-code frustration is a known abandonment driver (Baymard
        advises hiding the field for that reason).

    >>> from detectors.events import CouponEntered
    >>> from detectors.session import SessionState
    >>> det, s = CouponFailure(), SessionState(session_id="s1", checkout_step=4)
    >>> deny = lambda t, code, why: CouponEntered(id=str(t), time=t, session_id="s1",
    ...                                           code=code, success=False, reason=why)
    >>> det.update(s, deny(10.0, "SPRING20", "not_applicable"))
    ()
    >>> [sig] = det.update(s, deny(20.0, "SPRING20", "not_applicable"))
    >>> sig.start, sig.step, sig.evidence["codes"], sig.evidence["count"]
    (10.0, 4, ['SPRING20', 'SPRING20'], 2)
    """

    name = "coupon_failure"
    handles: ClassVar[tuple[type, ...]] = (CouponEntered,)

    def __init__(self, min_failures: int = 2) -> None:
        if min_failures < 1:
            raise ValueError("min_failures must be >= 1")
        self.min_failures = min_failures

    def update(self, state: SessionState, event: Any) -> Sequence[Signal]:
        if event.success:
            mem = state.detector_state.get(self.name)
            if mem:
                mem.clear()
            return _NO_SIGNALS
        mem = self.memory(state)
        if not mem:
            mem.update(count=0, codes=[], reasons=[], times=[], signalled=False)
        mem["count"] += 1
        _push(mem["codes"], event.code)
        _push(mem["reasons"], event.reason)
        _push(mem["times"], event.time)
        if mem["signalled"] or mem["count"] < self.min_failures:
            return _NO_SIGNALS
        mem["signalled"] = True
        return [self.signal(state, event.time, mem["times"][0], _step_of(state),
                            codes=list(mem["codes"]), reasons=list(mem["reasons"]),
                            count=mem["count"], times=list(mem["times"]))]


# --- factory -----------------------------------------------------------------------------------

_CLASSES: tuple[type[BaseDetector], ...] = (FormErrorLoop, PaymentDeclined, StepStall, Backtrack,
                                            CouponFailure)


def checkout_detectors(**overrides: Mapping[str, Any]) -> list[BaseDetector]:
    """All checkout detectors, in a fixed order; ``overrides[name]`` are constructor keyword
    arguments for the detector of that name (e.g. ``step_stall={"k": 5}``)."""
    names = {c.name for c in _CLASSES}
    unknown = set(overrides) - names
    if unknown:
        raise ValueError(f"unknown checkout detectors {sorted(unknown)}; one of {sorted(names)}")
    return [cls(**dict(overrides.get(cls.name, {}))) for cls in _CLASSES]
