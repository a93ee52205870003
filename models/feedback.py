"""People's feedback on alerts: a CX person marks an alert useful or a false alarm, and that
verdict becomes a label the models (and the alert policy's tuning) learn from.

``decode_feedback`` validates a feedback document (from ``POST /feedback`` or any tool writing
to the feedback topic); ``feedback_label`` turns it into the label sent on the labels topic.
``FeedbackTally`` keeps, per friction type, how many alerts people found useful: the precision
of the alerts as people judge them, which the detectors' own precision on simulated truth
cannot show. The alert policy learns from it (``FeedbackTally.weights``): a friction type
people keep calling a false alarm weighs less in a session's friction score, so it needs more
company before it alerts; one they find useful weighs a little more.

>>> fb = decode_feedback(b'{"alert_id": "alert-s1-1", "session_id": "s1", '
...                      b'"verdict": "false_alarm", "reason": "slow_page", "by": "ana"}')
>>> label = feedback_label(fb, now=100.0)
>>> label["type"], label["useful"], label["reason"], label["time"]
('alert_feedback', False, 'slow_page', 100.0)
>>> decode_feedback(b'{"alert_id": "a", "session_id": "s", "verdict": "maybe"}')
Traceback (most recent call last):
  ...
models.feedback.FeedbackError: invalid_field: Invalid enum value 'maybe' - at `$.verdict`
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import msgspec

from models import checkpoint

__all__ = ["VERDICTS", "Feedback", "FeedbackError", "FeedbackTally", "decode_feedback",
           "feedback_label"]

#: What a person can say of an alert.
VERDICTS = ("useful", "false_alarm")
#: Beta prior on the share of a reason's alerts people find useful: as if 4 useful verdicts
#: and 1 false alarm were already in, so a first false alarm moves the weight a little, not
#: a lot, and it takes a run of them to halve it.
PRIOR_USEFUL, PRIOR_FALSE = 4.0, 1.0
#: Bounds of the factor feedback puts on a reason's alert weight.
MIN_FACTOR, MAX_FACTOR = 0.25, 1.2

_Id = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
_Text = Annotated[str, msgspec.Meta(max_length=2000)]


class Feedback(msgspec.Struct, frozen=True, kw_only=True):
    """One person's verdict on one alert."""

    #: The alert's CloudEvents ``id``.
    alert_id: _Id
    #: The session it was about (the key of the feedback and labels topics).
    session_id: _Id
    verdict: Literal["useful", "false_alarm"]
    #: The alert's reason (friction type), when the tool knows it: feedback is tallied by it.
    reason: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    #: Who said it (free text, kept in the label, never a metric label).
    by: Annotated[str, msgspec.Meta(max_length=256)] | None = None
    note: _Text | None = None
    #: Unix seconds when it was given; None: when it was received.
    time: float | None = None


class FeedbackError(ValueError):
    """Unusable feedback: ``reason`` is a dead-letter reason, the message says why."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


_decoder = msgspec.json.Decoder(Feedback)


def decode_feedback(data: bytes) -> Feedback:
    """Validate a feedback document; ``FeedbackError`` (not_json, empty, invalid_field)."""
    if not data.strip():
        raise FeedbackError("empty", "no feedback in the body")
    try:
        return _decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise FeedbackError("invalid_field", str(exc)) from None
    except msgspec.DecodeError as exc:
        raise FeedbackError("not_json", str(exc)) from None


def feedback_label(fb: Feedback, now: float) -> dict[str, Any]:
    """The label a verdict becomes (labels topic, keyed by session id)."""
    return {"type": "alert_feedback", "alert_id": fb.alert_id, "session_id": fb.session_id,
            "verdict": fb.verdict, "useful": fb.verdict == "useful", "reason": fb.reason,
            "by": fb.by, "note": fb.note, "time": fb.time if fb.time is not None else now}


@dataclass
class FeedbackTally(checkpoint.Learned):
    """Verdicts per alert reason, among ``known`` reasons (others count as "other", so the
    reasons stay a bounded set, fit for Prometheus labels).

    >>> t = FeedbackTally(known={"rage_click"})
    >>> for v in ("useful", "useful", "false_alarm"):
    ...     _ = t.add(Feedback(alert_id="a", session_id="s", verdict=v, reason="rage_click"))
    >>> t.add(Feedback(alert_id="b", session_id="s", verdict="useful", reason="made_up"))
    'other'
    >>> round(t.precision("rage_click"), 3), t.counts[("other", "useful")]
    (0.667, 1)
    >>> for _ in range(5):
    ...     _ = t.add(Feedback(alert_id="c", session_id="s", verdict="false_alarm",
    ...                        reason="rage_click"))
    >>> t.weights({"rage_click": 0.6, "slow_page": 0.35})   # judged and found wanting
    {'rage_click': 0.3462, 'slow_page': 0.35}
    """

    known: set[str] = field(default_factory=set)
    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    LEARNED = ("counts",)

    @property
    def learned(self) -> int:
        """Verdicts counted."""
        return sum(self.counts.values())

    def add(self, fb: Feedback) -> str:
        """Count ``fb``; returns the reason it was counted under."""
        reason = fb.reason if fb.reason in self.known else "other"
        key = (reason, fb.verdict)
        self.counts[key] = self.counts.get(key, 0) + 1
        return reason

    def precision(self, reason: str) -> float:
        """Share of ``reason``'s judged alerts people found useful (NaN: none judged)."""
        useful = self.counts.get((reason, "useful"), 0)
        judged = useful + self.counts.get((reason, "false_alarm"), 0)
        return useful / judged if judged else float("nan")

    def factor(self, reason: str) -> float:
        """What people's verdicts do to ``reason``'s alert weight: the posterior share of
        useful verdicts (Beta prior ``PRIOR_USEFUL``, ``PRIOR_FALSE``) over the prior's, within
        ``MIN_FACTOR``..``MAX_FACTOR``; exactly 1.0 until someone judged one."""
        useful = self.counts.get((reason, "useful"), 0)
        false = self.counts.get((reason, "false_alarm"), 0)
        if useful + false == 0:
            return 1.0
        posterior = (useful + PRIOR_USEFUL) / (useful + false + PRIOR_USEFUL + PRIOR_FALSE)
        prior = PRIOR_USEFUL / (PRIOR_USEFUL + PRIOR_FALSE)
        return min(MAX_FACTOR, max(MIN_FACTOR, posterior / prior))

    def weights(self, base: Mapping[str, float]) -> dict[str, float]:
        """``base`` alert weights scaled by what people said of each reason's alerts."""
        return {reason: round(w * self.factor(reason), 4) for reason, w in base.items()}

    def quality(self) -> dict[str, float]:
        """No predictions to score: the counts are in ``frictionwatch_alert_feedback_total``."""
        return {}

