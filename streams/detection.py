"""The detection core as configured by the settings, built in one place, so that the worker,
the backtest and the benches run the very same detectors, journeys and alert policy.

>>> from streams.settings import load
>>> eng = engine(load())
>>> [d.name for d in eng.processor.detectors][-2:], eng.session_gap
(['journey', 'abandonment'], 1800.0)
"""

from __future__ import annotations

from collections.abc import Sequence

from detectors.alerting import Alerting
from detectors.catalog import default_detectors
from detectors.engine import Engine
from detectors.followup import FollowUps
from detectors.funnel import Funnel
from detectors.holdout import Experiment, Holdout
from detectors.incidents import IncidentConfig, IncidentPipeline
from detectors.journey import JourneyTracker
from detectors.session import Detector, SessionProcessor
from models.abandonment import AbandonmentScorer
from models.churn import ChurnScorer
from models.experiments import Ledger
from models.segments import Segmenter
from streams.journeys import load_journeys
from streams.settings import Settings

__all__ = ["alerting", "churn", "engine", "experiments", "followups", "funnel", "holdout",
           "incident_config", "incidents", "ledger", "processor", "scorer", "segments"]


def processor(settings: Settings, extra: Sequence[Detector] = ()) -> SessionProcessor:
    """Every detector with its defaults (and ``settings.detector_ignore``'s ignore lists),
    and the journeys of ``settings.journeys_file``
    (counted window by window in a ``Funnel``); then the abandonment scorer
    (``settings.abandonment_model``) and ``extra`` ones, which see the session's journey
    position as of the event."""
    models: list[Detector] = [AbandonmentScorer()] if settings.abandonment_model else []
    ignore = {name: {"ignore": spec} for name, spec in settings.detector_ignore.items()}
    found = default_detectors(ignore, journeys=load_journeys(settings.journeys_file),
                              funnel=Funnel(settings.incident_window_seconds),
                              friction_paths=settings.friction_paths)
    return SessionProcessor([*found, *models, *extra])


def funnel(proc: SessionProcessor) -> Funnel | None:
    """The journey counts per window ``proc``'s journey tracker feeds, if any."""
    return next((d.funnel for d in proc.detectors if isinstance(d, JourneyTracker)), None)


def scorer(proc: SessionProcessor) -> AbandonmentScorer | None:
    """The processor's abandonment scorer, if it runs one."""
    return next((d for d in proc.detectors if isinstance(d, AbandonmentScorer)), None)


def alerting(settings: Settings, proc: SessionProcessor | None = None) -> Alerting:
    """The alert policy; alerts name the factors of ``proc``'s abandonment scorer, if any."""
    model = scorer(proc) if proc is not None else None
    return Alerting(customer_salt=settings.customer_salt,
                    silent_stalls=settings.alert_silent_stalls,
                    chat_presumed=settings.chat_presumed_stalls,
                    explain=model.explain if model is not None else None)


def engine(settings: Settings, proc: SessionProcessor | None = None,
           alert: Alerting | None = None, extra: Sequence[Detector] = ()) -> Engine:
    """One engine (the worker runs one per partition, sharing ``proc`` and ``alert``)."""
    proc = proc or processor(settings, extra)
    return Engine(proc, alert or alerting(settings, proc),
                  session_gap=settings.session_gap, funnel=funnel(proc),
                  holdout=holdout(settings), explicit_gap=settings.explicit_session_gap,
                  followups=followups(settings))


def experiments(settings: Settings) -> list[Experiment]:
    """The interventions' holdout experiments (none when the holdout is off)."""
    if not settings.holdout:
        return []
    found = [Experiment("chat_offer", "chat", control_share=settings.holdout_control_share,
                        salt=settings.holdout_salt,
                        attribution_window=settings.attribution_window,
                        cost_per_intervention=settings.intervention_costs.get("chat", 0.0))]
    if settings.followups:
        found.append(Experiment(
            "followup", "followup", control_share=settings.holdout_control_share,
            salt=settings.holdout_salt, attribution_window=settings.attribution_window,
            cost_per_intervention=settings.intervention_costs.get("followup", 0.0)))
    return found


def followups(settings: Settings) -> FollowUps | None:
    """Follow-ups of abandoned sessions (``detectors.followup``), in their holdout; None: off."""
    if not settings.followups:
        return None
    exp = next((e for e in experiments(settings) if e.intervention == "followup"), None)
    return FollowUps(exp, delay=settings.followup_delay, customer_salt=settings.customer_salt)


def holdout(settings: Settings) -> Holdout | None:
    """Who gets the interventions (``detectors.holdout``), or None: everybody."""
    found = experiments(settings)
    return Holdout(found, customer_salt=settings.customer_salt) if found else None


def ledger(settings: Settings, keep_history: bool = False) -> Ledger:
    """Outcomes per arm of the experiments (``models.experiments``)."""
    return Ledger(experiments(settings), session_gap=settings.session_gap,
                  keep_history=keep_history)


def incident_config(settings: Settings) -> IncidentConfig:
    """How journey incidents are found (``detectors.incidents``), from the settings."""
    return IncidentConfig(warmup_entries=settings.incident_warmup_entries,
                          open_at=settings.incident_open_at)


def incidents(settings: Settings, eng: Engine) -> IncidentPipeline | None:
    """Journey incidents over ``eng``'s funnel in one process (the backtest, benches), as the
    worker's incidents agent finds them; None when incident detection is off."""
    if not settings.incident_detection:
        return None
    return IncidentPipeline(eng.funnel, incident_config(settings), settings.incident_lateness)


def segments(settings: Settings) -> Segmenter | None:
    """The customer segmenter (``settings.customer_segments``), or None."""
    if not settings.customer_segments:
        return None
    return Segmenter(k=settings.segments_k)


def churn(settings: Settings) -> ChurnScorer | None:
    """The customers' churn scorer (``settings.churn_model``), or None."""
    if not settings.churn_model:
        return None
    return ChurnScorer(window_days=settings.churn_window_days, alert_at=settings.churn_alert_at,
                       rearm_at=settings.churn_rearm_at, source="frictionwatch/customers",
                       customer_salt=settings.customer_salt)
