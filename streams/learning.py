"""The online models in the worker: restored from their checkpoints at start, saved on a
timer, their quality and counts in Prometheus; and people's verdicts on alerts, which re-weigh
the alert policy.

The feedback topic is keyed by session like the web events, so each worker learns from the
verdicts on its own sessions' alerts.

Shared across workers (README "Scaling out"): every checkpoint is also published on the
compacted checkpoints topic, with the detectors' learned thresholds; at its first assignment a
worker takes each from there if the published copy learned more than its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from models.feedback import FeedbackTally
from models.thresholds import LearnedThresholds
from streams import checkpoints, detection
from streams.context import Context
from streams.guard import inc_finite, set_finite

__all__ = ["register_learning"]


def register_learning(ctx: Context, shared: checkpoints.Shared | None = None, **extra: Any
                      ) -> tuple[FeedbackTally, Callable[[], None]]:
    """Restore, checkpoint and gauge the models: the abandonment scorer, the feedback tally
    and ``extra`` (name -> model or None, e.g. the customers agent's triage and churn).
    With ``shared`` (the checkpoints topic), they and the detectors' learned thresholds are
    also published, and taken from there at start when a published copy learned more.
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
    # What the shared detectors learned across sessions (step medians, dead elements) is
    # saved and shared like a model, though not gauged as one (it predicts nothing).
    saved = {**models, "thresholds": LearnedThresholds(ctx.processor.detectors)}
    saved_at = {name: settings.data_dir / "models" / f"{name}.ckpt" for name in saved}
    learned = dict.fromkeys(models, 0)
    for name, model in saved.items():
        checkpoints.restore(model, saved_at[name])
    for name, model in models.items():
        learned[name] = model.learned
    if settings.learn_from_feedback:
        reweigh()
    rejected = dict.fromkeys(models, 0)

    if shared is not None:
        adopted = False

        async def adopt_published(sender: Any, *args: Any, **kw: Any) -> None:
            """At the first assignment (Faust sends this before the streams resume): take
            each model from the checkpoints topic if the copy there learned more than the
            one on this worker's disk (a new worker, or one whose disk was lost)."""
            nonlocal adopted
            if adopted:
                return
            adopted = True
            published = await shared.read()
            for name, model in saved.items():
                checkpoints.adopt_model(model, published.get(checkpoints.model_key(name)),
                                        name)
            for name, model in models.items():
                learned[name] = model.learned
            if settings.learn_from_feedback:
                reweigh()

        # Faust's stubs want a keyword-only ``signal`` argument; its senders pass it so.
        app.on_rebalance_complete.connect(cast(Any, adopt_published))

    @ctx.guard.timer(app, settings.model_checkpoint_interval)
    async def checkpoint_models() -> None:
        failed: Exception | None = None
        for name, model in saved.items():
            try:  # one model's failure does not keep the others from their checkpoint
                checkpoints.save(model, saved_at[name])
                if shared is not None:
                    await shared.publish_model(name, model)
            except Exception as exc:  # noqa: BLE001 - raised below, once the others ran
                failed = failed or exc
        if failed is not None:
            raise failed

    if models:

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
