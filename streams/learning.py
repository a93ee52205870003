"""The online models in the worker: restored from their checkpoints at start, saved on a
timer, their quality and counts in Prometheus; and people's verdicts on alerts, which re-weigh
the alert policy.

The feedback topic is keyed by session like the web events, so each worker learns from the
verdicts on its own sessions' alerts.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from models.feedback import FeedbackTally
from streams import checkpoints, detection
from streams.context import Context
from streams.guard import inc_finite, set_finite

__all__ = ["register_learning"]


def register_learning(ctx: Context, **extra: Any) -> tuple[FeedbackTally, Callable[[], None]]:
    """Restore, checkpoint and gauge the models: the abandonment scorer, the feedback tally
    and ``extra`` (name -> model or None, e.g. the customers agent's triage and churn).
    Returns the tally and the function that re-weighs the alert policy from it."""
    settings, metrics, alerting, app = ctx.settings, ctx.metrics, ctx.alerting, ctx.app
    tally = FeedbackTally(known={d.name for d in ctx.processor.detectors})
    base_weights = dict(alerting.weights)

    def reweigh() -> None:
        alerting.weights = tally.weights(base_weights)
        for reason, weight in alerting.weights.items():
            metrics.alert_weight.labels(reason=reason).set(weight)

    candidates: dict[str, Any] = {"abandonment": detection.scorer(ctx.processor), **extra,
                                  "feedback": tally if settings.learn_from_feedback else None}
    models = {k: m for k, m in candidates.items() if m is not None}
    saved_at: dict[str, Path] = {name: settings.data_dir / "models" / f"{name}.ckpt"
                                 for name in models}
    learned = dict.fromkeys(models, 0)
    for name, model in models.items():
        checkpoints.restore(model, saved_at[name])
        learned[name] = model.learned
    if settings.learn_from_feedback:
        reweigh()
    rejected = dict.fromkeys(models, 0)

    if models:
        @ctx.guard.timer(app, settings.model_checkpoint_interval)
        async def checkpoint_models() -> None:
            failed: Exception | None = None
            for name, model in models.items():
                try:  # one model's failure does not keep the others from their checkpoint
                    checkpoints.save(model, saved_at[name])
                except Exception as exc:  # noqa: BLE001 - raised below, once the others ran
                    failed = failed or exc
            if failed is not None:
                raise failed

        @ctx.guard.timer(app, 5.0)
        async def gauge_models() -> None:
            for name, model in models.items():
                for metric, value in model.quality().items():
                    # NaN: no outcome yet. Never a non-finite value on /metrics.
                    set_finite(metrics.model_quality.labels(name, metric), value)
                inc_finite(metrics.model_examples_learned.labels(name),
                           model.learned - learned[name])
                learned[name] = model.learned
                n = getattr(model, "rejected", 0)
                inc_finite(metrics.model_inputs_rejected.labels(name), n - rejected[name])
                rejected[name] = n

    return tally, reweigh
