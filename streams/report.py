"""``frictionwatch report``: what the holdouts, the alerts and the outcomes add up to, as an
HTML page with plots.

Data comes from one of two places, into one ``ReportData``:

- offline: the detection core over a JSONL file (``gather_file``) or over simulated traffic
  (``gather_simulated``), exactly as the backtest runs it;
- Kafka (``gather_kafka``): what a worker wrote to the experiments, labels and alerts topics,
  read from the beginning up to the end offsets they had when the report started. A topic
  that does not exist yet reads as empty.

``render`` writes ``index.html`` and four PNGs beside it (the page references them): the
conversion lift over time with its always-valid interval, the checkout funnel of exposed
sessions per arm, revenue at risk by friction type, and the friction points that lost most
money; a table ranks the elements most sessions met dead, rage and error clicks on. The
numbers come from the pure core (``models.experiments``, ``models.lift``, ``models.kpis``,
``detectors.elements``); this module only gathers and draws.
"""

from __future__ import annotations

import copy
import html
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from detectors.elements import CLICK_FRICTION, ElementRow, outcome_rows
from detectors.engine import Engine, Outputs
from detectors.holdout import Experiment
from models.attribution import MODELS, Attribution, Credit, journeys_from_outcomes
from models.experiments import Ledger
from models.kpis import CustomerKpis, SegmentKpis, by_segment, customer_kpis, total
from models.lift import LiftEstimate, path
from models.segments import Segmenter, SegmentRow, segment_rows
from models.trends import TrendWatch, uncovered
from streams import detection
from streams.backtest import run
from streams.checkpoints import adopt_model, unwrap
from streams.normalize import normalize
from streams.settings import Settings
from streams.topics import topic_name

__all__ = ["PLOTS", "ReportData", "attribution", "customer_segments", "gather_file",
           "gather_journeys", "gather_kafka", "gather_simulated",
           "headline", "ledger", "published_segmenter", "render", "top_elements"]

#: The images ``render`` writes, by what they show.
PLOTS = {"lift": "lift.png", "funnel": "funnel.png", "risk": "revenue_at_risk.png",
         "friction": "friction_points.png"}

SESSION_ALERT = "io.frictionwatch.session.friction"
INCIDENT_PREFIX = "io.frictionwatch.journey.incident."

STATUS_WORDS = {
    "not_enough_data": "not enough data yet",
    "no_difference_yet": "no difference yet (the interval still includes zero)",
    "positive": "positive: the intervention lifts conversion",
    "negative": "negative: the intervention lowers conversion",
}


@dataclass
class ReportData:
    """Everything a report is drawn from."""

    #: Where it came from, in words (shown on the page).
    source: str
    #: Session outcomes (``detectors.engine.outcome``).
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    #: Holdout records (``detectors.holdout``): exposures and results, in time order.
    experiments: list[dict[str, Any]] = field(default_factory=list)
    #: Alert documents (CloudEvents): session friction alerts and churn alerts.
    alerts: list[dict[str, Any]] = field(default_factory=list)
    #: Journey incident documents (CloudEvents, ``io.frictionwatch.journey.incident.*``).
    incidents: list[dict[str, Any]] = field(default_factory=list)
    #: The workers' customer segmenter as last published (Kafka), or None: then the report
    #: learns its own from the outcomes.
    segmenter: Segmenter | None = None
    #: ``(customer_id, churned)`` when known; None: churn is derived from inactivity.
    churn: list[tuple[str, bool]] | None = None
    #: Simulated journeys only: each channel's true incremental conversions.
    true_incremental: dict[str, float] | None = None
    #: Rising support topics (``models.trends`` records), in the order they were reported.
    trends: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        # Records from several partitions interleave; the lift-over-time path needs them in
        # the order they happened.
        self.experiments = sorted(self.experiments, key=_record_time)


def _record_time(r: Mapping[str, Any]) -> float:
    return float((r.get("time") if r.get("type") == "exposure" else r.get("end")) or 0.0)


# --- gathering -------------------------------------------------------------------------------


def _from_outputs(source: str, out: Outputs, incidents: list[dict[str, Any]]) -> ReportData:
    return ReportData(source, outcomes=out.outcomes, experiments=out.experiments,
                      alerts=out.alerts, incidents=incidents)


def gather_file(file: Path, settings: Settings) -> ReportData:
    """The detection core over a JSONL file (as ``frictionwatch backtest`` runs it)."""
    eng = detection.engine(settings)
    with open(file, "rb") as f:
        res = run(f, eng, max_bytes=settings.max_payload_bytes,
                  max_events=settings.max_events_per_message,
                  incidents=detection.incidents(settings, eng))
    return _from_outputs(f"backtest of {file}", res.outputs, res.incidents)


def gather_simulated(settings: Settings, seconds: float, rate: float, seed: int,
                     chat_effect: float, incidents: Sequence[Any] = (),
                     ticket_burst: Any = None, followup_effect: float = 0.0,
                     followup_base: float = 0.0) -> ReportData:
    """The detection core over ``seconds`` of simulated traffic (event time) at ``rate``
    events per second, where a chat offer truly rescues ``chat_effect`` of the shoppers it
    reaches, so the report shows whether the holdout finds that; ``incidents``:
    ``streams.sim.Incident`` s to schedule; ``ticket_burst``: a ``streams.sim.tickets.
    TicketBurst`` to inject. ``followup_effect`` / ``followup_base``: the chance that a
    followed-up abandoned shopper comes back to order because of it / on their own
    (``SimConfig``); the follow-ups themselves need ``settings.followups``."""
    from streams.sim import SimConfig, Simulator
    from streams.sim.truth import followup_truth

    exps = detection.experiments(settings)
    fexp = next((e for e in exps if e.intervention == "followup"), None)
    sim = Simulator(SimConfig(seed=seed, events_per_second=rate, duration=seconds,
                              chat_effect=chat_effect, incidents=tuple(incidents),
                              chat_experiment=exps[0] if exps else Experiment(),
                              ticket_burst=ticket_burst,
                              followup_effect=followup_effect, followup_base=followup_base,
                              followup_delay=max(settings.followup_delay,
                                                 settings.session_gap),
                              followup_experiment=fexp or Experiment("followup",
                                                                     "followup")))
    eng = detection.engine(settings)
    watch = TrendWatch(articles=settings.kb_articles) if settings.support_trends else None
    trends: list[dict[str, Any]] = []
    pipeline = detection.incidents(settings, eng)
    out = Outputs()
    found: list[dict[str, Any]] = []
    for i, msg in enumerate(sim.messages()):
        norm = normalize(msg.encode(), msg.source, max_bytes=settings.max_payload_bytes,
                         max_events=settings.max_events_per_message, now=0.0)
        for evs in norm.web.values():
            eng.feed(evs, None, out)
        if watch is not None:
            for evs in norm.support.values():
                for e in evs:
                    trends += watch.update(e)
        if i % 1000 == 999:  # windows close as event time passes, as in the backtest
            _close_windows(eng, pipeline, found)
    _close_windows(eng, pipeline, found)
    eng.close(out)
    if pipeline is not None:
        found += pipeline.finish()
    truth = (f", true follow-up effect {followup_effect:g} over a base return rate "
             f"{followup_base:g}" if followup_effect or followup_base else "")
    if settings.followups and (followup_effect or followup_base):
        # What the follow-ups' lift per exposed unit estimates, as it happened in this run
        # (returns after the end of the data are seen by neither): the interval should hold
        # it. Counted per followed-up session: a customer with two abandoned sessions is one
        # unit in the ledger, so with a small customer base the two differ a little.
        caused, per_unit, units = followup_truth(sim.outcomes, sim.clock)
        truth += (f"; true follow-up lift here {_pct(caused, points=True, sign=True)} "
                  f"conversion, {per_unit:+,.2f} revenue per unit, over {units:,} "
                  f"followed-up treatment-arm sessions")
    data = _from_outputs(f"{seconds:g} s of simulated traffic at {rate:g} events/s (seed "
                         f"{seed}, true chat effect {chat_effect:g}{truth})", out, found)
    data.trends = trends
    return data


def gather_journeys(settings: Settings, journeys: int, seed: int) -> ReportData:
    """The detection core over ``journeys`` simulated multi-session customer journeys whose
    channels' effects are known (``streams.sim.journeys``): the attribution table can then be
    set beside the truth."""
    from streams.sim.journeys import JourneyConfig, messages, simulate_journeys

    sim = simulate_journeys(JourneyConfig(journeys=journeys, seed=seed))
    eng = detection.engine(settings)
    out = Outputs()
    for msg in messages(sim):
        norm = normalize(msg.encode(), msg.source, max_bytes=settings.max_payload_bytes,
                         max_events=settings.max_events_per_message, now=0.0)
        for evs in norm.web.values():
            eng.feed(evs, None, out)
    eng.close(out)
    data = _from_outputs(f"{journeys:,} simulated customer journeys with known channel "
                         f"effects (seed {seed})", out, [])
    data.true_incremental = sim.incremental
    return data


def _close_windows(eng: Engine, pipeline: Any, found: list[dict[str, Any]]) -> None:
    if pipeline is not None:
        found += pipeline.advance(eng.watermark)
    elif eng.funnel is not None:  # nobody reads the windows: keep memory bounded
        eng.funnel.close(eng.watermark)


def gather_kafka(settings: Settings, bootstrap: str, timeout: float = 120.0) -> ReportData:
    """What the worker wrote to the experiments, labels and alerts topics, from the beginning
    to the end offsets at the start. Missing topics read as empty; duplicates (a record sent
    again after a crash) are counted once."""
    from kafka import KafkaConsumer, TopicPartition

    names = {t: topic_name(t, settings.topic_prefix)
             for t in ("experiments", "labels", "alerts", "support_trends")}
    # The workers' segmenter, as last published (compacted: its key's latest value wins).
    ckpt_topic, ckpt_key = topic_name("checkpoints", settings.topic_prefix), b"model/segments"
    ckpt: bytes | None = None
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             auto_offset_reset="earliest", client_id=f"{settings.app_id}-report",
                             **settings.kafka_client_kwargs())
    values: dict[str, dict[bytes, None]] = {n: {} for n in names.values()}
    try:
        existing = consumer.topics()
        tps = [TopicPartition(n, p) for n in [*names.values(), ckpt_topic] if n in existing
               for p in sorted(consumer.partitions_for_topic(n) or ())]
        if tps:
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            ends = consumer.end_offsets(tps)
            deadline = time.monotonic() + timeout
            while any(consumer.position(tp) < ends[tp] for tp in tps):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"Kafka topics not read to their end in {timeout:g} s")
                for tp, batch in consumer.poll(timeout_ms=300, max_records=10_000).items():
                    for r in batch:
                        if r.offset >= ends[tp]:
                            continue
                        if tp.topic == ckpt_topic:
                            if r.key == ckpt_key:
                                ckpt = r.value
                        elif r.value is not None:
                            values[tp.topic][r.value] = None  # ordered set: dedup, keep order
    finally:
        consumer.close()
    docs = {t: _decode(values[n]) for t, n in names.items()}
    alerts = [d for d in docs["alerts"] if not str(d.get("type", "")).startswith(INCIDENT_PREFIX)]
    incidents = [d for d in docs["alerts"] if str(d.get("type", "")).startswith(INCIDENT_PREFIX)]
    outcomes = [d for d in docs["labels"] if d.get("type") == "session_outcome"]
    records = [d for d in docs["experiments"] if d.get("type") in ("exposure", "result")]
    trends = [d for d in docs["support_trends"] if d.get("type") == "support_trend"]
    return ReportData(f"Kafka {bootstrap}, topics {', '.join(names.values())}",
                      outcomes=outcomes, experiments=records, alerts=alerts,
                      incidents=incidents, trends=trends,
                      segmenter=published_segmenter(settings, ckpt))


def published_segmenter(settings: Settings, value: bytes | None) -> Segmenter | None:
    """The workers' customer segmenter from its value on the checkpoints topic
    (``model/segments``), so that the report's segment ids are the dashboards'; None when
    segments are off, nothing was published yet, it does not load, or it has another number
    of segments."""
    seg = detection.segments(settings)
    if seg is None:
        return None
    if not adopt_model(seg, unwrap(value), "segments") or seg.kmeans.n_clusters != seg.k:
        return None
    return seg


def _decode(raws: Iterable[bytes]) -> list[dict[str, Any]]:
    out = []
    for raw in raws:
        try:
            doc = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            continue  # a report must not die on one record it cannot read
        if isinstance(doc, dict):
            out.append(doc)
    return out


# --- numbers ---------------------------------------------------------------------------------


def ledger(data: ReportData, settings: Settings) -> Ledger:
    """The holdout records added up (history kept): the settings' experiments, plus any other
    experiment the records name (with the settings' window), all units final."""
    exps = {e.name: e for e in detection.experiments(settings)}
    for r in data.experiments:
        name = r.get("experiment")
        if name and name not in exps:
            exps[name] = Experiment(
                name, r.get("intervention", "chat"),
                control_share=settings.holdout_control_share,
                attribution_window=settings.attribution_window,
                cost_per_intervention=settings.intervention_costs.get(
                    r.get("intervention", "chat"), 0.0))
    led = Ledger(exps.values(), session_gap=settings.session_gap, keep_history=True)
    for r in data.experiments:
        led.add(r)
    led.close(math.inf)  # the end of the data: every unit is as final as it gets
    return led


def _estimate(led: Ledger, name: str, settings: Settings) -> LiftEstimate:
    return led.lift(name, alpha=settings.lift_alpha, horizon=settings.lift_horizon)


def _data_end(data: ReportData) -> float:
    """The last time the data shows anything: an event, or a session's expiry (a result
    record's ``end``, which may lie a session gap past the last event)."""
    times = [float(o.get("end") or 0.0) for o in data.outcomes]
    times += [_record_time(r) for r in data.experiments]
    return max(times, default=math.nan)


def _pct(x: float | None, points: bool = False, sign: bool = False) -> str:
    if x is None or math.isnan(x):
        return "n/a"
    return f"{x * 100:{'+' if sign else ''}.1f}{' pp' if points else '%'}"


def _money(x: float | None, sign: bool = False) -> str:
    if x is None or math.isnan(x):
        return "n/a"
    return f"{x:{'+' if sign else ''},.2f}"


def _interval(iv: Any, fmt: Any) -> str:
    """``lift (low to high)``, or the lift alone while there is no interval."""
    if not iv.known:
        return f"{fmt(iv.lift)} (interval: not enough data yet)"
    return f"{fmt(iv.lift)} ({fmt(iv.low)} to {fmt(iv.high)})"


def headline(data: ReportData, settings: Settings) -> list[str]:
    """One line per experiment: conversion per arm, the lift with its interval, the status.

    >>> from streams.settings import load
    >>> headline(ReportData("nothing"), load())
    ['chat_offer: 0 control / 0 treatment units; conversion lift n/a; not enough data yet']
    """
    led = ledger(data, settings)
    if not led.experiments:
        return ["no holdout experiment: set FRICTIONWATCH_HOLDOUT=true to measure lift"]
    lines = []
    for name in led.experiments:
        e = _estimate(led, name, settings)
        c, t = e.control, e.treatment
        conv = (_interval(e.conversion, lambda v: _pct(v, points=True, sign=True))
                if c.units and t.units else "n/a")
        rates = (f" (conversion {_pct(c.conversion_rate)} control, "
                 f"{_pct(t.conversion_rate)} treatment)" if c.units and t.units else "")
        lines.append(f"{name}: {c.units:,} control / {t.units:,} treatment units{rates}; "
                     f"conversion lift {conv}; {STATUS_WORDS[e.status]}")
    return lines


def lift_over_time(led: Ledger, name: str, settings: Settings, end: float
                   ) -> tuple[list[datetime], Any, Any, Any]:
    """Times (UTC), lift, low and high after each finalized unit of ``name``: per-unit arms
    and conversions rebuilt from the ledger's history (each row adds one unit to one arm).
    Units made final only by the end of the data (customer units whose attribution window
    was still open) are shown at ``end``, not a window later."""
    hist = led.history.get(name, [])
    treated = np.zeros(len(hist), dtype=bool)
    converted = np.zeros(len(hist), dtype=bool)
    times = []
    prev = (0, 0, 0, 0)
    for i, (at, cu, cc, _, tu, tc, _) in enumerate(hist):
        treated[i] = tu > prev[2]
        converted[i] = (tc > prev[3]) if treated[i] else (cc > prev[1])
        prev = (cu, cc, tu, tc)
        times.append(datetime.fromtimestamp(min(at, end) if not math.isnan(end) else at, UTC))
    if not hist:
        return [], np.array([]), np.array([]), np.array([])
    p = path(treated, converted, alpha=settings.lift_alpha, horizon=settings.lift_horizon)
    return times, p.lift, p.low, p.high


def exposed_funnel(data: ReportData, experiment: str) -> dict[str, list[float]]:
    """Per arm, the share of exposed sessions (result records joined to their outcomes)
    reaching checkout steps 1 to 4, and ordering after the exposure; key ``n:<arm>``: how
    many sessions."""
    outcomes = {o.get("session_id"): o for o in data.outcomes}
    rows: dict[str, list[tuple[int, bool]]] = {"control": [], "treatment": []}
    for r in data.experiments:
        if r.get("type") != "result" or r.get("experiment") != experiment:
            continue
        o = outcomes.get(r.get("session_id"))
        if o is not None and r.get("arm") in rows:
            rows[r["arm"]].append((int(o.get("max_checkout_step") or 0),
                                   bool(r.get("converted"))))
    out: dict[str, list[float]] = {}
    for arm, xs in rows.items():
        n = len(xs)
        out[arm] = [sum(s >= k for s, _ in xs) / n if n else 0.0 for k in (1, 2, 3, 4)]
        out[arm].append(sum(c for _, c in xs) / n if n else 0.0)
        out[f"n:{arm}"] = [float(n)]
    return out


def revenue_at_risk(data: ReportData) -> dict[str, float]:
    """Session alerts' revenue at risk summed by reason (churn alerts weigh a year of a
    subscription, not a cart: left out)."""
    risk: dict[str, float] = {}
    for a in data.alerts:
        if a.get("type", SESSION_ALERT) == SESSION_ALERT:
            d = a.get("data") or {}
            reason = str(d.get("reason", "?"))
            risk[reason] = risk.get(reason, 0.0) + float(d.get("revenue_at_risk") or 0.0)
    return risk


def top_elements(data: ReportData, top: int = 15) -> list[ElementRow]:
    """The elements most sessions met a dead, rage or error click on, by journey step (or
    page, outside any journey), from the sessions' outcomes: the ``top`` most hit."""
    return outcome_rows(data.outcomes).top(top)


def friction_points(data: ReportData, top: int = 10) -> list[tuple[str, float]]:
    """Abandoned sessions' cart value summed by (journey step, friction type), the ``top``
    largest. A session with several friction types counts under each; abandoned sessions
    without any friction signal are not friction points and are left out."""
    lost: dict[str, float] = {}
    for o in data.outcomes:
        if o.get("converted") or o.get("abandoned_step") is None:
            continue
        step = o.get("journey_step") or (f"checkout step {o['abandoned_step']}"
                                         if o.get("abandoned_step") else "before checkout")
        for kind in o.get("friction") or {}:
            point = f"{step} / {kind}"
            lost[point] = lost.get(point, 0.0) + float(o.get("cart_value") or 0.0)
    ranked = sorted(lost.items(), key=lambda kv: (-kv[1], kv[0]))
    return [(k, round(v, 2)) for k, v in ranked[:top] if v > 0]


def attribution(data: ReportData) -> dict[str, dict[str, Credit]]:
    """Conversions and revenue credited to traffic channels by each attribution model
    (``models.attribution``), over the customers' journeys built from the sessions'
    outcomes (a session without a customer id is a journey of its own)."""
    att = Attribution()
    att.learn_many(journeys_from_outcomes(data.outcomes))
    return att.credits()


# --- plots -----------------------------------------------------------------------------------


def _figure(width: float = 7.5, height: float = 4.0) -> Any:
    # A bare Figure (no pyplot): no global backend state, nothing to close; savefig uses Agg.
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=12,
            color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def lift_ylim(lift: np.ndarray, low: np.ndarray, high: np.ndarray, skip: float = 0.2
              ) -> tuple[float, float] | None:
    """The lift plot's y-range, in percentage points: what the path and its interval span once
    the first ``skip`` share of units is in, and 0. The first points' interval is the widest
    and their lift the noisiest; letting them set the range flattens the part that matters,
    so they may run off the plot instead. None: nothing finite to show.

    >>> lift = np.array([0.5, -0.4, 0.03, 0.02, 0.025, 0.02, 0.021, 0.02, 0.02, 0.02])
    >>> lo, hi = lift_ylim(lift, lift - 0.01, lift + 0.01)
    >>> round(lo, 1), round(hi, 1)
    (-0.4, 4.4)
    """
    n = len(lift)
    if not n:
        return None
    start = min(int(n * skip), n - 1)
    vals = np.concatenate([lift[start:], low[start:], high[start:]]) * 100
    vals = vals[np.isfinite(vals)]
    if not len(vals):
        return None
    lo, hi = min(float(vals.min()), 0.0), max(float(vals.max()), 0.0)
    pad = 0.1 * (hi - lo) or 1.0
    return lo - pad, hi + pad


def _plot_lift(out: Path, led: Ledger, name: str | None, settings: Settings, end: float,
               status: str) -> None:
    fig = _figure()
    ax = fig.subplots()
    times, lift, low, high = lift_over_time(led, name or "", settings, end)
    if not times:
        _empty(ax, "no finalized units yet: not enough data yet")
    else:
        ax.plot(times, lift * 100, color="C0", label="conversion lift")
        if not np.isnan(low).all():  # an all-NaN band throws the date axis' limits off
            ax.fill_between(times, low * 100, high * 100, color="C0", alpha=0.2,
                            label=f"{1 - settings.lift_alpha:.0%} always-valid interval")
        if times[-1] > times[0]:
            ax.set_xlim(times[0], times[-1])
        ylim = lift_ylim(lift, low, high)
        if ylim is not None:
            ax.set_ylim(*ylim)
        ax.axhline(0, color="0.3", lw=0.8)
        ax.set_ylabel("treatment - control (percentage points)")
        ax.set_xlabel("time a unit became final (UTC)")
        ax.legend(loc="upper right")
        fig.autofmt_xdate()
        if status == "not_enough_data":
            ax.text(0.02, 0.95, "not enough data yet", transform=ax.transAxes, va="top",
                    color="C3", fontsize=11)
    ax.set_title(f"{name or 'experiment'}: conversion lift over time ({STATUS_WORDS[status]})",
                 fontsize=10)
    fig.savefig(out / PLOTS["lift"])


def _plot_funnel(out: Path, data: ReportData, name: str | None) -> None:
    fig = _figure()
    ax = fig.subplots()
    f = exposed_funnel(data, name) if name else {}
    if not f or not (f["n:control"][0] or f["n:treatment"][0]):
        _empty(ax, "no exposed session has ended yet")
    else:
        labels = ["step 1", "step 2", "step 3", "step 4", "ordered"]
        x = np.arange(len(labels))
        for i, arm in enumerate(("control", "treatment")):
            ax.bar(x + (i - 0.5) * 0.38, np.array(f[arm]) * 100, width=0.38, color=f"C{i}",
                   label=f"{arm} ({int(f['n:' + arm][0]):,} sessions)")
        ax.set_xticks(x, labels)
        ax.set_ylabel("% of exposed sessions")
        ax.set_ylim(0, 100)
        ax.legend()
    ax.set_title("checkout funnel of exposed sessions, per arm (max step reached; ordered "
                 "after exposure)", fontsize=10)
    fig.savefig(out / PLOTS["funnel"])


def _barh(out: Path, file: str, rows: Sequence[tuple[str, float]], title: str, xlabel: str,
          empty: str) -> None:
    fig = _figure(7.5, max(3.0, 0.45 * len(rows) + 1.5))
    ax = fig.subplots()
    if not rows:
        _empty(ax, empty)
    else:
        names = [k for k, _ in rows][::-1]  # largest at the top
        ax.barh(names, [v for _, v in rows][::-1], color="C3")
        ax.set_xlabel(xlabel)
        ax.tick_params(axis="y", labelsize=8)
    ax.set_title(title, fontsize=10)
    fig.savefig(out / file)


# --- HTML ------------------------------------------------------------------------------------


def _table(head: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    e = html.escape
    th = "".join(f"<th>{e(str(h))}</th>" for h in head)
    trs = "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"


def _experiment_html(led: Ledger, name: str, settings: Settings) -> str:
    e = _estimate(led, name, settings)
    c, t = e.control, e.treatment
    exp = led.experiments[name]
    known_cost = exp.intervention in settings.intervention_costs
    unknown = "set FRICTIONWATCH_INTERVENTION_COSTS"
    pp = (lambda v: _pct(v, points=True, sign=True))  # noqa: E731
    rows = [
        ("units", f"{c.units:,}", f"{t.units:,}"),
        ("conversions", f"{c.conversions:,}", f"{t.conversions:,}"),
        ("conversion rate", _pct(c.conversion_rate), _pct(t.conversion_rate)),
        ("revenue per unit", _money(c.revenue_per_unit), _money(t.revenue_per_unit)),
        ("orders", f"{c.orders:,}", f"{t.orders:,}"),
        ("average order value", _money(c.revenue / c.orders if c.orders else math.nan),
         _money(t.revenue / t.orders if t.orders else math.nan)),
        ("interventions delivered", f"{c.delivered:,}", f"{t.delivered:,}"),
    ]
    lift = [
        ("absolute conversion lift", _interval(e.conversion, pp)),
        ("relative conversion lift",
         _interval(e.relative_conversion, lambda v: _pct(v, sign=True))),
        ("revenue per unit lift", _interval(e.revenue_per_unit, lambda v: _money(v, True))),
        ("relative revenue per unit lift",
         _interval(e.relative_revenue_per_unit, lambda v: _pct(v, sign=True))),
        ("incremental revenue", _interval(e.incremental_revenue, lambda v: _money(v, True))),
        ("cost of interventions", _money(e.cost) if known_cost else unknown),
        ("ROI", (_interval(e.roi, lambda v: _pct(v, sign=True)) if e.roi is not None
                 else "n/a (cost is 0)") if known_cost else unknown),
        ("status", STATUS_WORDS[e.status]),
    ]
    return (f"<h3>{html.escape(name)} ({html.escape(exp.intervention)} withheld from "
            f"{exp.control_share:.0%} of units)</h3>"
            + _table(("", "control", "treatment"), rows)
            + _table(("lift", f"estimate ({1 - settings.lift_alpha:.0%} always-valid "
                      "interval)"), lift).replace("<table>", '<table class="lift">', 1))


_MODEL_WORDS = {"last_click": "last click", "linear": "linear", "time_decay": "time decay",
                "position": "position 40/20/40",
                "markov": "Markov removal effect (biased to frequent closing channels)",
                "counterfactual": "data-driven (touch-effect counterfactual)"}


def _attribution_html(credits: Mapping[str, Mapping[str, Credit]], lift: Sequence[str],
                      truth: Mapping[str, float] | None = None) -> str:
    channels = sorted(credits["counterfactual"],
                      key=lambda ch: -credits["counterfactual"][ch].conversions)
    warn = ("<p class='note'><b>Attribution is correlational.</b> It shares out the "
            "conversions that happened among the channels on the paths to them. The "
            "rule-based and Markov models do not ask what would be lost without a channel: "
            "one that closes journeys people had already decided on (often direct) gets "
            "credit it did not cause. The data-driven model asks it, but answers from the "
            "observed paths, so whatever drives both visits and orders (intent) inflates "
            "it. Only the "
            "randomized holdout shows cause: " + "; ".join(html.escape(x) for x in lift)
            + ".</p>")
    if not channels:
        return "<p>No journeys with a traffic channel.</p>" + warn
    head = ["channel"] + [f"{_MODEL_WORDS[m]}: {what}" for m in MODELS
                          for what in ("conversions", "revenue")]
    rows = [[ch] + [v for m in MODELS for v in (f"{credits[m][ch].conversions:,.1f}",
                                                _money(credits[m][ch].revenue))]
            for ch in channels]
    if truth is not None:  # simulated: what each channel truly caused
        head.append("true incremental conversions (simulation)")
        for row, ch in zip(rows, channels, strict=True):
            row.append(f"{truth.get(ch, 0.0):,.1f}")
    return _table(head, rows) + warn


def _kpi_rows(rows: Iterable[SegmentKpis]) -> list[tuple[str, ...]]:
    return [(s.key, f"{s.sessions:,}", _pct(s.conversion_rate), f"{s.orders:,}",
             _money(s.average_order_value), _money(s.revenue)) for s in rows]


def customer_segments(data: ReportData, settings: Settings) -> list[SegmentRow]:
    """The customer segments of the outcomes, learned by the worker's own code
    (``models.segments``) over the outcomes in the order they ended; [] when switched off."""
    outcomes = sorted(data.outcomes, key=lambda o: float(o.get("end") or 0.0))
    if data.segmenter is not None and settings.customer_segments:
        return segment_rows(copy.deepcopy(data.segmenter), outcomes, learn=False)
    seg = detection.segments(settings)
    if seg is None:
        return []
    return segment_rows(seg, outcomes)


def _segments_html(rows: Sequence[SegmentRow]) -> str:
    if not rows:
        return "<p>Customer segments are switched off (FRICTIONWATCH_CUSTOMER_SEGMENTS).</p>"
    return _table(("segment", "in words", "customers", "sessions", "conversion",
                   "average order value", "friction rate", "revenue"),
                  [(r.segment, r.words, "" if r.customers is None else f"{r.customers:,}",
                    f"{r.kpis.sessions:,}", _pct(r.kpis.conversion_rate),
                    _money(r.kpis.average_order_value), _pct(r.friction_rate),
                    _money(r.kpis.revenue)) for r in rows])


def _customers_html(k: CustomerKpis) -> str:
    days = k.period / 86_400
    how = (f"inactive for more than {days:g} days before the end of the data"
           if k.derived_churn else "as reported")
    clv = (_money(k.clv) if k.clv is not None
           else "unknown: no customer churned in the data" if k.orders else "n/a (no orders)")
    return _table(("customers", "churned", "churn rate", "average order value",
                   f"orders per customer per {days:g} days", "lifetime value (CLV)"),
                  [(f"{k.customers:,}", f"{k.churned:,} ({how})", _pct(k.churn_rate),
                    _money(k.average_order_value), f"{k.purchase_frequency:.3f}"
                    if k.customers else "n/a", clv)])


def _incidents_html(docs: Sequence[Mapping[str, Any]]) -> str:
    rows = []
    for d in docs:
        data = d.get("data") or {}
        if data.get("status") == "updated":
            continue  # opened and resolved tell the story; updates repeat it
        rows.append((d.get("time", ""), data.get("status", ""),
                     f"{data.get('journey', '')}/{data.get('step', '')}",
                     data.get("element") or "", _money(data.get("revenue_lost_per_hour")),
                     data.get("summary", "")))
    if not rows:
        return "<p>No journey incidents.</p>"
    return _table(("time", "status", "journey/step", "element", "revenue lost per hour",
                   "summary"), rows)


#: What "this week" means for rising support topics: before the latest record's time.
WEEK = 7 * 86_400.0


def uncovered_trends(data: ReportData, articles: Sequence[str]) -> list[dict[str, Any]]:
    """The topics reported rising in the week up to the latest report that no knowledge-base
    article covers (judged against ``articles`` now, not when the worker wrote them): each
    topic once, its largest report (most tickets in its window), most tickets first."""
    if not data.trends:
        return []
    end = max(float(t.get("time") or 0.0) for t in data.trends)
    best: dict[str, dict[str, Any]] = {}
    for t in data.trends:
        if float(t.get("time") or 0.0) < end - WEEK or not t.get("phrases"):
            continue
        first = best.get(t["topic"], {}).get("_first", t.get("since", t.get("time")))
        if t["topic"] not in best or t.get("tickets", 0) > best[t["topic"]].get("tickets", 0):
            best[t["topic"]] = {**t}
        best[t["topic"]]["_first"] = first
    rows = [dict(t) for t in uncovered(list(best.values()), articles)]
    return sorted(rows, key=lambda t: (-int(t.get("tickets", 0)), t["topic"]))


def _trends_html(rows: Sequence[Mapping[str, Any]], articles: int) -> str:
    if not rows:
        return (f"<p>No support topic rose this week that the {articles:,} knowledge-base "
                "articles (FRICTIONWATCH_KB_ARTICLES) leave uncovered.</p>")

    def when(t: Any) -> str:
        return f"{datetime.fromtimestamp(float(t or 0.0), UTC):%Y-%m-%d %H:%M}"

    return _table(("topic", "key phrases", "rising since (UTC)", "tickets in an hour",
                   "growth vs baseline", "same customers' friction", "examples"),
                  [(t["topic"], ", ".join(t.get("phrases", [])[:5]), when(t.get("_first")),
                    f"{t.get('tickets', 0):,}", f"{float(t.get('growth', 0.0)):,.1f}x",
                    ", ".join(f"{k} {v}" for k, v in (t.get("friction") or {}).items())
                    or "none seen",
                    " | ".join(f"#{x.get('ticket_id')}: {x.get('snippet')}"
                               for x in (t.get("examples") or [])[:2]))
                   for t in rows])


def _elements_html(rows: Sequence[ElementRow]) -> str:
    if not rows:
        return "<p>No dead, rage or error clicks on named elements.</p>"
    return _table(("journey step or page", "element", "sessions", "dead clicks", "rage clicks",
                   "error clicks"),
                  [(r.place, r.element, f"{r.sessions:,}",
                    *(f"{r.counts.get(k, 0):,}" for k in CLICK_FRICTION)) for r in rows])


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:70em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.25em .6em;
text-align:right}td:first-child,th:first-child{text-align:left}img{max-width:100%;
border:1px solid #eee;margin:.5em 0 1.5em}.note{color:#666;font-size:.9em}"""


def render(out_dir: Path, data: ReportData, settings: Settings) -> Path:
    """Write ``index.html`` and the PNGs of ``PLOTS`` into ``out_dir``; the page's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    led = ledger(data, settings)
    names = list(led.experiments)
    main = next((n for n in names if led.totals[n]["control"].units
                 or led.totals[n]["treatment"].units), names[0] if names else None)
    status = _estimate(led, main, settings).status if main else "not_enough_data"
    end = _data_end(data)
    _plot_lift(out_dir, led, main, settings, end, status)
    _plot_funnel(out_dir, data, main)
    risk = revenue_at_risk(data)
    _barh(out_dir, PLOTS["risk"], sorted(risk.items(), key=lambda kv: -kv[1]),
          "revenue at risk by friction type (sum over session alerts)", "revenue at risk",
          "no session alerts")
    _barh(out_dir, PLOTS["friction"], friction_points(data),
          "top friction points by money lost (abandoned carts, journey step / friction)",
          "cart value of abandoned sessions", "no abandoned session with friction")
    e = html.escape
    span = ""
    if data.outcomes:
        last = max(float(o.get("end") or 0.0) for o in data.outcomes)
        span = f", sessions up to {datetime.fromtimestamp(last, UTC):%Y-%m-%d %H:%M:%S} UTC"
    n_alerts = sum(a.get("type", SESSION_ALERT) == SESSION_ALERT for a in data.alerts)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>frictionwatch report</title>"
        f"<style>{_CSS}</style></head><body>",
        "<h1>frictionwatch report</h1>",
        f"<p class='note'>{e(data.source)}{e(span)}; generated "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC. {len(data.outcomes):,} sessions ended, "
        f"{n_alerts:,} session alerts, {len(data.experiments):,} holdout records.</p>",
        "<h2>Experiment</h2>",
        "".join(_experiment_html(led, n, settings) for n in names)
        or "<p>No holdout experiment configured (FRICTIONWATCH_HOLDOUT).</p>",
        f"<img src='{PLOTS['lift']}' alt='conversion lift over time'>",
        "<p class='note'>Each point is what someone looking after that unit became final "
        "would have seen; the band holds at every look at once, so stopping when it clears "
        "zero is valid. Customer units whose attribution window was still open when the data "
        "ended are shown at its end.</p>",
        f"<img src='{PLOTS['funnel']}' alt='funnel of exposed sessions per arm'>",
        "<h2>Attribution: which channels get credit</h2>",
        _attribution_html(attribution(data), headline(data, settings), data.true_incremental),
        "<p class='note'>A journey is one customer's sessions up to an order (or to the end "
        "of the data), each session a touch of its traffic channel; time decay halves a "
        "touch's weight every 7 days before the order. The data-driven model fits each "
        "channel's per-touch chance of turning a journey into an order (every touch an "
        "independent chance) and credits the conversions it predicts would be lost without "
        "the channel's touches; rows are in its order. The Markov removal effect (a "
        "first-order chain of the journeys) is shown for comparison: it credits being on "
        "converting paths, so frequent channels that close journeys (often direct) get "
        "more than they cause.</p>",
        "<h2>KPIs</h2><h3>By journey</h3>",
        _table(("journey", "sessions", "conversion", "orders", "average order value",
                "revenue"), _kpi_rows([*by_segment(data.outcomes, "journey"),
                                       total(data.outcomes)])),
        "<h3>By device</h3>",
        _table(("device", "sessions", "conversion", "orders", "average order value",
                "revenue"), _kpi_rows(by_segment(data.outcomes, "device"))),
        "<h3>By customer segment</h3>",
        _segments_html(customer_segments(data, settings)),
        "<p class='note'>A session counts under the segment its customer was in when it "
        "began (unknown: no customer id); customers: known customers in each segment at the "
        "end of the data. "
        + ("The segments are the workers' as last published (their ids are the "
           "dashboards'), assigned from the outcomes without support tickets (their load "
           "counts zero).</p>" if data.segmenter is not None else
           "The segments are learned here from the outcomes by the worker's code, without "
           "support tickets (their load counts zero), so their ids can differ from the "
           "dashboards'.</p>"),
        "<h3>Customers</h3>",
        _customers_html(customer_kpis(data.outcomes, data.churn,
                                      period=settings.churn_window_days * 86_400.0)),
        "<p class='note'>CLV = average order value &times; orders per customer per period "
        "&divide; churn rate per period.</p>",
        "<h2>Friction</h2>",
        f"<img src='{PLOTS['risk']}' alt='revenue at risk by friction type'>",
        f"<img src='{PLOTS['friction']}' alt='top friction points by money lost'>",
        "<p class='note'>A session with several friction types counts under each.</p>",
        "<h3>Elements with most dead, rage and error clicks</h3>",
        _elements_html(top_elements(data)),
        "<p class='note'>Sessions that met each kind of click friction on the element, by the "
        "journey step they were in (a page's path outside any journey); a session counts "
        "once per element and kind.</p>",
        "<h2>Journey incidents</h2>", _incidents_html(data.incidents),
        "<h2>Support trends: topics rising this week that no knowledge-base article covers"
        "</h2>",
        _trends_html(uncovered_trends(data, settings.kb_articles), len(settings.kb_articles)),
        "<p class='note'>Ticket topics (key phrases) whose tickets in an hour rose far above "
        "their own baseline (models.trends), in the week up to the latest; covered: an "
        "article title shares two words with the topic's key phrases.</p>",
        "</body></html>",
    ]
    page = out_dir / "index.html"
    page.write_text("\n".join(parts), encoding="utf-8")
    return page
