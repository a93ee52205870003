"""People's feedback on alerts: a CX person marks an alert useful or a false alarm, and that
verdict becomes a label the models (and the alert policy's tuning) learn from.

``decode_feedback`` validates a feedback document (from ``POST /feedback`` or any tool writing
to the feedback topic); ``feedback_label`` turns it into the label sent on the labels topic.
``FeedbackTally`` keeps, per friction type, how many alerts people found useful: the precision
of the alerts as people judge them, which the detectors' own precision on simulated truth
cannot show.

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

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import msgspec

__all__ = ["VERDICTS", "Feedback", "FeedbackError", "FeedbackTally", "decode_feedback",
           "feedback_label"]

#: What a person can say of an alert.
VERDICTS = ("useful", "false_alarm")

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
class FeedbackTally:
    """Verdicts per alert reason, among ``known`` reasons (others count as "other", so the
    reasons stay a bounded set, fit for Prometheus labels).

    >>> t = FeedbackTally(known={"rage_click"})
    >>> for v in ("useful", "useful", "false_alarm"):
    ...     _ = t.add(Feedback(alert_id="a", session_id="s", verdict=v, reason="rage_click"))
    >>> t.add(Feedback(alert_id="b", session_id="s", verdict="useful", reason="made_up"))
    'other'
    >>> round(t.precision("rage_click"), 3), t.counts[("other", "useful")]
    (0.667, 1)
    """

    known: set[str] = field(default_factory=set)
    counts: dict[tuple[str, str], int] = field(default_factory=dict)

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
