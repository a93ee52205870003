"""Will this checkout be abandoned? An online River model that scores a session at each of its
checkout events and learns when the session's outcome is known.

``AbandonmentScorer`` plugs into the session processor like a detector (it raises no signals):
at each checkout event (but a step viewed again with nothing new since its last score: a
reload) it computes the session's features *as they are then*
(``checkout_features``), predicts the probability of abandoning and writes it on the session
(``SessionState.abandon_probability``, which alerts carry: revenue at risk is the cart value
times it; ``explain`` names the factors that pushed it most, for the alert). The features are
kept with the prediction, in the session's own memory, and only those snapshots are learned
from, once the outcome is known: when ``label_after_s`` pass after the last checkout event
without an order (abandoned; e-commerce platforms call a checkout abandoned after a similar
idle time), or at the session's expiry; an order's snapshots (not abandoned) are held as long
after the order, so both labels reach the model after the same delay. A feature computed after a
prediction can never reach the example it made (no leakage), and the snapshots are
checkpointed with the session like the rest of its state.

Predict-then-learn with delayed labels is progressive validation by construction: each
prediction is scored against the outcome before the model learns it. ``quality()`` gives ROC
AUC, log loss and accuracy over the latest ``window`` of them, for Prometheus.

The model is a scaled logistic regression: about 5 us to predict and 16 us to learn (River,
DEVELOPERS.md), and linear, so each score explains itself as per-feature contributions.

>>> from detectors.events import CheckoutStarted, CheckoutStepViewed, PaymentAttempted
>>> from detectors.session import SessionProcessor
>>> scorer = AbandonmentScorer(record=True)
>>> proc = SessionProcessor([scorer])
>>> state, _ = proc.apply(None, [
...     CheckoutStarted(id="1", time=0.0, session_id="s", cart_value=80.0),
...     PaymentAttempted(id="2", time=60.0, session_id="s", success=False)])
>>> state.abandon_probability   # nothing learned yet
0.5
>>> proc.finish(state, {"converted": False, "checkout": True})
>>> len(scorer.history), scorer.history[0], scorer.quality()["accuracy"]
(2, (0.5, True), 1.0)
"""

from __future__ import annotations

import heapq
import math
import zlib
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import msgspec
from river import linear_model, optim

from detectors import events as ev
from detectors.base import BaseDetector, Signal
from models import checkpoint
from models.explain import pushes
from models.finite import usable
from models.linear import fast_path, scaled_some
from models.progressive import live_quality

if TYPE_CHECKING:
    from detectors.session import SessionState

__all__ = ["SCALED", "SCORED_EVENTS", "AbandonmentScorer", "abandonment_model", "checkout_features",
           "describe"]

#: The checkout events at which a session is scored.
SCORED_EVENTS: tuple[type, ...] = (
    ev.CheckoutStarted, ev.CheckoutStepViewed, ev.CheckoutStepCompleted, ev.PaymentAttempted,
    ev.CouponEntered, ev.FormFieldError,
)
_TAGS = {cls: cls.__struct_config__.tag for cls in SCORED_EVENTS}  # type: ignore[attr-defined]
# Feature names built once: formatting them was a fifth of ``checkout_features``.
_EVENT_FEATURES = {cls: f"event={tag}" for cls, tag in _TAGS.items()}
_STEP_FEATURES = {step: f"step={step}" for step in range(64)}
_FRICTION_FEATURES: dict[str, str] = {}

_snapshot_json = msgspec.json.Encoder()

#: Most a session's learned snapshots weigh together (``AbandonmentScorer._taken``).
MAX_SESSION_WEIGHT = 32


def _sealed(snapshot: Any) -> msgspec.Raw:
    """A snapshot no longer the latest, as its JSON: the session's state is written after
    nearly every event, and the kept dicts of features re-encoded each time were two thirds
    of that write (18 of 27 us at 2.5 KB); now each is encoded once."""
    return msgspec.Raw(_snapshot_json.encode(snapshot))


def _opened(snapshot: Any) -> Any:
    """``[features, probability, time]`` of a stored snapshot (sealed or not)."""
    return msgspec.json.decode(snapshot) if type(snapshot) is msgspec.Raw else snapshot


#: Features with a value of their own, standardised: counts, durations, money, steps. The
#: others are indicators sent only when they hold (the event, the step, the device, the
#: source, a decline now) and friction counts sent once met, learned as they are: scaled, a
#: feature that is always 1.0 when present has no variance and adds nothing.
SCALED = ("step", "max_step", "cart_value", "session_seconds", "page_views", "clicks",
          "logged_in", "payment_failures", "form_errors", "js_errors", "friction",
          "checkout_seconds", "step_seconds", "back_moves")


def abandonment_model(learning_rate: float = 0.05, l2: float = 1e-4) -> Any:
    """The valued features standardised (``SCALED``), the indicators as they are, into a
    logistic regression (``True``: abandons) fitted with AdaGrad: a step per feature that
    shrinks as the feature is seen, so rare features (a friction type, a decline) still move
    their weight while common ones settle.

    Measured on simulated traffic (``bench/abandonment_quality.py --seeds 1 2 3 4 5``, 120
    min, online ROC AUC on the last 30% of the scores, where the batch models are tested):
    0.725, 0.734, 0.715, 0.731, 0.755 against batch logistic regression's 0.736, 0.750, 0.739,
    0.739, 0.765; the model before (every feature scaled, a grid of snapshots, a step of 0.1)
    0.710, 0.711, 0.697, 0.716, 0.735 (its indicators never learned; the batch model loses
    0.011 without them, seed 1). A step
    of 0.1 ranked as well on the bench's replayed calls (seeds 1-3) but its probabilities were
    worse (log loss 0.586 against 0.574, seed 1). Plain SGD and Adam did worse (0.664 and
    0.605 against AdaGrad's 0.674 over all scores, seed 1, every feature scaled)."""
    return scaled_some(SCALED, linear_model.LogisticRegression(
        optimizer=optim.AdaGrad(learning_rate), l2=l2))


def checkout_features(state: SessionState, event: Any) -> dict[str, float]:
    """What is known of the session at ``event`` (already folded into ``state``): step, time
    in checkout and in the step, cart, device, traffic source, whether logged in, pages and
    clicks, and the friction so far. Counts and durations as ``log1p`` (heavy-tailed)."""
    now = event.time
    step = state.checkout_step
    log1p = math.log1p
    x: dict[str, float] = {
        _EVENT_FEATURES[type(event)]: 1.0,
        _STEP_FEATURES.get(step) or f"step={step}": 1.0,
        "step": float(step),
        "max_step": float(state.max_checkout_step),
        "cart_value": log1p(max(state.cart_value, 0.0)),
        "session_seconds": log1p(max(now - state.first_time, 0.0)),
        "page_views": log1p(state.page_views),
        "clicks": log1p(state.clicks),
        "logged_in": 1.0 if state.customer_id else 0.0,
        "payment_failures": float(state.payment_failures),
        "form_errors": float(state.form_errors),
        "js_errors": float(state.js_errors),
    }
    if state.device:
        x[f"device={state.device}"] = 1.0
    if state.source:
        x[f"source={state.source}"] = 1.0
    if state.checkout_started_at is not None:
        x["checkout_seconds"] = log1p(max(now - state.checkout_started_at, 0.0))
    journey = state.detector_state.get("journey")
    if journey and "entered" in journey:
        x["step_seconds"] = log1p(max(now - journey["entered"], 0.0))
        x["back_moves"] = float(journey["back_moves"])
    total = 0
    for kind, n in state.friction.items():
        # Friction kinds are the detectors' signal types: a small set (bounded all the same).
        name = _FRICTION_FEATURES.get(kind)
        if name is None:
            name = f"friction:{kind}"
            if len(_FRICTION_FEATURES) < 256:
                _FRICTION_FEATURES[kind] = name
        x[name] = float(n)
        total += n
    x["friction"] = float(total)
    if type(event) is ev.PaymentAttempted and not event.success:
        x["declined_now"] = 1.0
    return x


#: Plain words for a feature that raised the risk (``describe``).
_WORDS: dict[str, Callable[[SessionState], str]] = {
    "payment_failures": lambda s: f"{s.payment_failures} declined payment(s)",
    "declined_now": lambda s: "payment just declined",
    "form_errors": lambda s: f"{s.form_errors} form error(s)",
    "js_errors": lambda s: f"{s.js_errors} page error(s)",
    "cart_value": lambda s: f"cart of {s.cart_value:.2f}",
    "logged_in": lambda s: "logged in" if s.customer_id else "guest checkout",
    "friction": lambda s: f"{sum(s.friction.values())} friction signal(s)",
    "back_moves": lambda s: "went back in checkout",
    "step_seconds": lambda s: "long in this step",
    "checkout_seconds": lambda s: "long in checkout",
    "session_seconds": lambda s: "long session",
    "page_views": lambda s: f"{s.page_views} pages viewed",
    "clicks": lambda s: f"{s.clicks} clicks",
    "step": lambda s: f"at checkout step {s.checkout_step}",
    "max_step": lambda s: f"reached checkout step {s.max_checkout_step}",
}


def describe(feature: str, state: SessionState) -> str:
    """A feature of ``checkout_features`` in plain words, for people reading an alert."""
    if feature.startswith("friction:"):
        kind = feature.split(":", 1)[1]
        return f"{state.friction.get(kind, 0)} {kind.replace('_', ' ')} signal(s)"
    if "=" in feature:
        key, value = feature.split("=", 1)
        return {"device": f"on {value}", "step": f"at checkout step {value}",
                "source": f"came from {value.replace('_', ' ')}",
                "event": f"at {value.replace('_', ' ')}"}.get(key, feature)
    words = _WORDS.get(feature)
    return words(state) if words is not None else feature


_VIEWED = _EVENT_FEATURES[ev.CheckoutStepViewed]


def _repeats(latest: list[Any], state: SessionState) -> bool:
    """Whether a step view now adds nothing to the ``latest`` snapshot, itself a view: same
    step and furthest step, cart, declines, errors and friction (only the clocks and the
    page and click counts moved). A reload of the review page scored again and again would
    fill the session's snapshots with near copies of one moment, and cost a score each."""
    if type(latest) is not list or len(latest) != 3 or type(latest[0]) is not dict:
        return False  # stored otherwise than this scorer keeps it: scored, to be safe
    x = latest[0]
    get = x.get
    return (_VIEWED in x and get("step") == state.checkout_step
            and get("max_step") == state.max_checkout_step
            and get("payment_failures") == state.payment_failures
            and get("form_errors") == state.form_errors and get("js_errors") == state.js_errors
            and get("friction") == sum(state.friction.values())
            and get("cart_value") == math.log1p(max(state.cart_value, 0.0)))


class AbandonmentScorer(checkpoint.Learned, BaseDetector):
    """Scores sessions at checkout events; learns from their outcomes (see the module).

    Parameters
    ----------
    model
        A River binary classifier (``predict_proba_one``/``learn_one``); default
        ``abandonment_model()``. Shared by the sessions a worker handles.
    label_after_s
        Seconds after a session's last checkout event without an order after which its
        predictions are learned as abandoned, and after an order after which they are learned
        as not. Default 600: shorter than the 30-minute session gap. Both labels wait as long:
        with one class arriving much later than the other, an online model drifts toward the
        early class (measured on simulated traffic, seed 1, while only the latest 8 snapshots
        were kept: abandonments labelled only at expiry 0.69 against 0.73; orders learned at
        once 0.776 against 0.790 held).
    learned_per_session
        Snapshots kept per session until its outcome, and learned then: its latest, and a
        uniform sample of those before it (reservoir sampling, the draws made from the
        session id and the snapshot's place, so any worker keeps the same), each learned
        with the weight of the scores it stands for (the latest itself, the sample an equal
        share of the rest). Learning every snapshot kept up to 32 feature sets in the
        session's stored state (14 KB, written after nearly every event) and cost a learn per
        score; keeping only the latest ones teaches that early steps always end badly (with
        8, every step-1 snapshot learned on simulated traffic was abandoned); a grid of every
        2nd, 4th, 8th... score (before the sample) learned scores at even places only, and on
        simulated checkouts, where a step's view and its completion alternate, the event and
        step indicators then taught the wrong thing (seed 1, online ROC AUC on the batch
        test scores 0.707 with the grid, 0.726 learning every score, 0.726 with a sample of
        4). ``quality()`` covers the kept snapshots' scores.
    top
        Factors named per score.
    window
        Latest predictions ``quality`` covers.
    record
        Keep every (probability, abandoned) pair in ``history`` (benches, tests).

    A step viewed again with nothing new since the session's latest score, itself at a view
    of that step (same cart, declines, errors and friction; ``_repeats``), is not scored:
    its snapshot would be a near copy of the latest, and a reload loop would cost a score
    per reload (on ``bench/throughput.py``'s traffic, 20 calls per message, the models cost
    5.4 µs per event offline when each was scored, 2.2 µs now). It moves the latest
    snapshot's time, so the outcome waits ``label_after_s`` after it. The simulated
    checkouts (``bench/abandonment_quality.py``) have no such repeats: their figures are
    unchanged.

    A checkout whose features are not all finite and of a sane magnitude
    (``models.finite.usable``: e.g. a step of ``1e308``) is not scored and never learned;
    ``rejected`` counts those (and any score that came out outside [0, 1]).

    Memory: ``state.detector_state["abandonment"]``, ``[[features, probability, time], ...]``,
    at most ``learned_per_session``, all but the latest kept as their JSON (``msgspec.Raw``)
    until learned; ``["abandonment_sample"]``, ``[snapshots taken, the place of each kept]``.
    """

    name = "abandonment"
    LEARNED = ("model", "recent", "learned", "held", "_seq")
    # 2: indicators passed unscaled and weighted snapshots (a form-1 checkpoint would keep the
    # old pipeline, which never learned the indicators, and its held snapshots lack weights).
    FORM = 2
    handles: ClassVar[tuple[type, ...]] = (*SCORED_EVENTS, ev.OrderCompleted)

    def __init__(self, model: Any = None, label_after_s: float = 600.0,
                 learned_per_session: int = 4, top: int = 3, window: int = 1000,
                 record: bool = False) -> None:
        if label_after_s <= 0:
            raise ValueError("label_after_s must be > 0")
        if learned_per_session < 2:
            raise ValueError("learned_per_session must be >= 2 (a checkout's first and last)")
        self.model = model if model is not None else abandonment_model()
        self.label_after_s = label_after_s
        self.learned_per_session = learned_per_session
        self.top = top
        # The latest (probability, abandoned) pairs, scored before learning: ``quality``.
        self.recent: deque[tuple[float, bool]] = deque(maxlen=window)
        self.learned = 0
        self.record = record
        self.history: list[tuple[float, bool]] = []
        # Converted sessions' snapshots, held until ``label_after_s`` after the order (a heap
        # by event time, released as checkout events and deadlines pass it).
        # Entries: (time, sequence, features, probability, weight).
        self.held: list[tuple[float, int, dict[str, float], float, float]] = []
        self._seq = 0
        #: Examples refused (not scored or not learned): see the class docstring.
        self.rejected = 0

    def update(self, state: SessionState, event: Any) -> Sequence[Signal]:
        held = self.held
        if held and held[0][0] <= event.time:
            self._release(event.time)
        if type(event) is ev.OrderCompleted:
            # Not abandoned: learned ``label_after_s`` from now, as abandonments are.
            snapshots, weights = self._taken(state)
            for snapshot, w in zip(snapshots, weights, strict=True):
                x, p, _ = _opened(snapshot)
                self._seq += 1
                heapq.heappush(held, (event.time + self.label_after_s, self._seq, x, p, w))
            return ()
        memory = state.detector_state.get("abandonment")
        if memory and type(event) is ev.CheckoutStepViewed and _repeats(memory[-1], state):
            # A view of the step the latest score was made at, with nothing new since: no
            # score (``_repeats``), but the checkout is still going on, so its outcome is
            # not due until ``label_after_s`` after this view.
            memory[-1][2] = event.time
            return ()
        x = checkout_features(state, event)
        if not usable(x):
            self.rejected += 1
            return ()
        p = fast_path(self).predict_proba_one(x)
        if not 0.0 <= p <= 1.0:  # NaN: the model must never learn or publish it
            self.rejected += 1
            return ()
        state.abandon_probability = round(p, 4)
        self._keep(state, [x, p, event.time])
        return ()

    def _keep(self, state: SessionState, snapshot: list[Any]) -> None:
        """Add the session's latest snapshot; the one it replaces as the latest joins the
        session's sample or is dropped (see ``learned_per_session``).
        ``detector_state["abandonment_sample"]``: ``[snapshots taken, index of each one
        kept]``, the latest last."""
        mem = state.detector_state
        memory = mem.get("abandonment")
        sample = mem.get("abandonment_sample")
        if not memory:
            memory = mem["abandonment"] = []
            sample = mem["abandonment_sample"] = [0, []]
        elif sample is None or len(sample[1]) != len(memory):
            # A session stored before samples (a grid, or every snapshot kept), or whose
            # sample was dropped to fit the state budget (``detectors.budget`` drops whole
            # memories): what it holds counts as its sample.
            mem.pop("abandonment_grid", None)
            sample = mem["abandonment_sample"] = [len(memory), list(range(len(memory)))]
            while len(memory) > self.learned_per_session:  # kept every snapshot: thinned
                j = zlib.crc32(f"{state.session_id}/{len(memory)}".encode()) % (len(memory) - 1)
                del memory[j], sample[1][j]
        n, at = sample
        if memory:
            if type(memory[-1]) is not msgspec.Raw:
                memory[-1] = _sealed(memory[-1])  # the latest stays open: due() and explain()
            # Reservoir sampling (Vitter's algorithm R) of the snapshots before the latest:
            # each of the first ``i`` is kept with the same chance. A draw from the session
            # id and the index: the same session learns the same snapshots on any worker.
            i = n - 1  # the snapshot that was the latest
            room = self.learned_per_session - 1
            if len(at) - 1 < room:
                pass  # room left: kept where it is
            else:
                j = zlib.crc32(f"{state.session_id}/{i}".encode()) % (i + 1)
                if j < len(at) - 1:
                    del memory[j], at[j]  # it takes that one's place
                else:
                    memory.pop()
                    at.pop()
        memory.append(snapshot)
        at.append(n)
        sample[0] = n + 1

    @staticmethod
    def _taken(state: SessionState) -> tuple[list[Any], list[float]]:
        """The session's kept snapshots, removed from its state, and the weight each is learned
        with: the scores it stands for (the latest itself; each of the sample an equal share
        of those before it), so a session weighs as much as when every score was learned
        (the model's probabilities stay calibrated)."""
        state.detector_state.pop("abandonment_grid", None)
        sample = state.detector_state.pop("abandonment_sample", None)
        kept = state.detector_state.pop("abandonment", None) or []
        if not (sample and kept) or len(sample[1]) != len(kept):
            return kept, [1.0] * len(kept)
        n = sample[0]
        # At most MAX_SESSION_WEIGHT in all: a bot's thousand checkout events must not
        # weigh a thousand sessions.
        scale = min(n, MAX_SESSION_WEIGHT) / n
        before = len(kept) - 1
        share = (n - 1) / before if before else 0.0
        return kept, [share * scale] * before + [scale]

    def due(self, state: SessionState) -> float | None:
        memory = state.detector_state.get("abandonment")
        return memory[-1][2] + self.label_after_s if memory else None  # type: ignore[no-any-return]

    def tick(self, state: SessionState, now: float) -> Sequence[Signal]:
        if self.held and self.held[0][0] <= now:
            self._release(now)
        # No order within ``label_after_s`` of the last checkout event: abandoned.
        self._learn(state, abandoned=True)
        return ()

    def quality(self) -> dict[str, float]:
        """ROC AUC, log loss and accuracy of the latest ``window`` predictions against their
        outcomes (``models.progressive.live_quality``)."""
        return live_quality(self.recent)

    def explain(self, state: SessionState) -> list[str]:
        """The factors that pushed the session's latest score up most, in plain words (for
        an alert; computed when asked, not at every score)."""
        memory = state.detector_state.get("abandonment")
        if not memory:
            return []
        return [describe(f, state) for f in self.factors(memory[-1][0])]

    def factors(self, x: Mapping[str, float]) -> list[str]:
        """The features that pushed this score up most (``models.explain.pushes``)."""
        return pushes(x, self.model, self.top)

    def learn(self, state: SessionState, outcome: Mapping[str, Any]) -> None:
        """The session ended: learn its snapshots, labelled abandoned unless it converted."""
        self._learn(state, abandoned=not outcome.get("converted", False))

    def _release(self, now: float) -> None:
        """Event time reached ``now``: learn the held orders that are due."""
        held = self.held
        while held and held[0][0] <= now:
            _, _, x, p, *w = heapq.heappop(held)
            self._teach(x, p, False, *w)

    def _learn(self, state: SessionState, abandoned: bool) -> None:
        snapshots, weights = self._taken(state)
        for snapshot, w in zip(snapshots, weights, strict=True):
            x, p, _ = _opened(snapshot)
            self._teach(x, p, abandoned, w)

    def _teach(self, x: dict[str, float], p: float, abandoned: bool, w: float = 1.0) -> None:
        # Snapshots come back from stored session state: checked again before learning.
        if not (usable(x) and isinstance(p, int | float) and 0.0 <= p <= 1.0):
            self.rejected += 1
            return
        self.recent.append((p, abandoned))
        if self.record:
            self.history.append((p, abandoned))
        fast_path(self).learn_one(x, abandoned, w)
        self.learned += 1

