"""Customer segments wired in: the customers agent's steps label and count the sessions by
segment on /metrics, the offline code gives the same numbers, the dashboards query the label,
the report shows the table, and the segmenter survives a restart."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any, cast

import pytest
from deployfiles import DASHBOARD_FILES, panels_of, promql_names, recorded_series
from prometheus_client import CollectorRegistry, generate_latest
from rich.console import Console

from detectors.customer import CustomerState, apply_customer, session_summary
from models.segments import UNKNOWN, Segmenter, label_outcomes, segment_rows
from streams import checkpoints
from streams.commands.backtest import segments_table
from streams.metrics import Metrics
from streams.report import ReportData, customer_segments, render
from streams.segments import CustomerSegments, SegmentInfo, SegmentKpis
from streams.settings import Settings

DAY = 86400.0


def _outcomes(seed: int = 5, days: int = 120) -> list[dict[str, Any]]:
    """Two customer groups and anonymous traffic, in the order sessions end. Loyal
    customers shop every few days, mostly buy, and spend much; occasional ones come about
    monthly, rarely buy, and spend little. Anonymous sessions convert like neither."""
    rng = random.Random(seed)
    rows: list[tuple[float, str | None, str]] = []
    for i in range(40):
        t = rng.uniform(0, 3) * DAY
        while t < days * DAY:
            rows.append((t, f"loyal{i}", "loyal"))
            t += rng.uniform(2, 4) * DAY
    for i in range(40):
        t = rng.uniform(0, 30) * DAY
        while t < days * DAY:
            rows.append((t, f"occasional{i}", "occasional"))
            t += rng.uniform(25, 40) * DAY
    rows += [(rng.uniform(0, days) * DAY, None, "anonymous") for _ in range(300)]
    rows.sort(key=lambda r: r[0])
    out = []
    for n, (t, cid, group) in enumerate(rows):
        p, amount = {"loyal": (0.8, 150.0), "occasional": (0.1, 20.0),
                     "anonymous": (0.05, 50.0)}[group]
        converted = rng.random() < p
        friction = {"dead_click": 1} if rng.random() < (0.5 if group == "occasional" else
                                                        0.1) else {}
        out.append({"session_id": f"x{n}", "customer_id": cid, "group": group, "start": t,
                    "end": t + 600, "converted": converted, "orders": int(converted),
                    "revenue": round(rng.gauss(amount, amount / 10), 2) if converted else 0.0,
                    "cart_value": amount, "abandoned_step": None if converted else 0,
                    "friction": friction})
    return out


class _Window:
    """Counts into the whole run's metrics and, from ``since`` on, a window's: what a rate
    over a range on the dashboard sees once the segments have warmed up."""

    def __init__(self, whole: SegmentKpis, window: SegmentKpis, since: float) -> None:
        self.whole, self.window, self.since, self.now = whole, window, since, 0.0

    def count(self, segment: str, **kw: Any) -> None:
        self.whole.count(segment, **kw)
        if self.now >= self.since:
            self.window.count(segment, **kw)


def _worker_run(outcomes: list[dict[str, Any]], k: int, since: float = 0.0
                ) -> tuple[Metrics, Metrics, Segmenter]:
    """What the worker does with these sessions: the sessions agent counts the anonymous
    ones under ``unknown`` and sends known customers' summaries on; the customers agent
    folds each into its customer's state between ``before`` and ``after``. Returns the
    metrics of the whole run and of the sessions from ``since`` on."""
    metrics, window = Metrics(CollectorRegistry()), Metrics(CollectorRegistry())
    kpis = _Window(SegmentKpis(metrics, k), SegmentKpis(window, k), since)
    seg = Segmenter(k=k, seed=3)
    step = CustomerSegments(seg, cast(SegmentKpis, kpis))
    states: dict[str, CustomerState] = {}
    for o in outcomes:
        kpis.now = o["start"]
        summary = session_summary(o)
        if summary is None:
            kpis.count(UNKNOWN, converted=o["converted"], abandoned=not o["converted"],
                       orders=o["orders"], revenue=o["revenue"],
                       friction=sum(o["friction"].values()))
            continue
        state = states.get(o["customer_id"])
        ended = step.before(state, [summary])
        states[o["customer_id"]] = state = apply_customer(state, [summary])
        step.after(state, ended)
    return metrics, window, seg


def _sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def _dominant(outcomes: list[dict[str, Any]], labels: list[str], group: str,
              after: float) -> str:
    got = [s for o, s in zip(outcomes, labels, strict=True)
           if o["group"] == group and o["start"] > after]
    return max(set(got), key=got.count)


def test_two_groups_land_in_different_segments_and_their_kpis_differ() -> None:
    outcomes = _outcomes()
    labels = label_outcomes(Segmenter(k=2, seed=3), outcomes)
    # Past the first month (everyone starts as a new customer), each group has its segment.
    loyal = _dominant(outcomes, labels, "loyal", 30 * DAY)
    occasional = _dominant(outcomes, labels, "occasional", 30 * DAY)
    assert loyal != occasional
    assert {s for o, s in zip(outcomes, labels, strict=True) if not o["customer_id"]} \
        == {UNKNOWN}

    # A brand-new customer of either group looks occasional (no orders yet): a session
    # counts under its customer's segment before it. Once customers have a history, a
    # window of the counters (as a rate on the dashboard) shows each group's own KPIs.
    metrics, window, seg = _worker_run(outcomes, k=2, since=30 * DAY)
    assert "frequent" in seg.describe(loyal) and "high spenders" in seg.describe(loyal)
    assert "infrequent" in seg.describe(occasional)

    def kpis(s: str) -> tuple[float, float, float]:
        sessions = sum(_sample(window, "frictionwatch_segment_sessions_total", segment=s,
                               outcome=x) for x in ("converted", "abandoned", "browsed"))
        conv = _sample(window, "frictionwatch_segment_sessions_total", segment=s,
                       outcome="converted")
        aov = (_sample(window, "frictionwatch_segment_revenue_total", segment=s)
               / _sample(window, "frictionwatch_segment_orders_total", segment=s))
        friction = _sample(window, "frictionwatch_segment_friction_sessions_total",
                           segment=s)
        return conv / sessions, aov, friction / sessions

    (c_l, aov_l, f_l), (c_o, aov_o, f_o) = kpis(loyal), kpis(occasional)
    assert c_l > 0.6 > 0.2 > c_o
    assert aov_l > 100 > 40 > aov_o
    assert f_o > 2 * f_l

    # The offline code (report, backtest) counts exactly what the worker's metrics say.
    rows = {r.segment: r for r in segment_rows(Segmenter(k=2, seed=3), outcomes)}
    for s in ("s0", "s1", UNKNOWN):
        total = sum(_sample(metrics, "frictionwatch_segment_sessions_total", segment=s,
                            outcome=x) for x in ("converted", "abandoned", "browsed"))
        assert rows[s].kpis.sessions == total
        assert rows[s].kpis.revenue == pytest.approx(
            _sample(metrics, "frictionwatch_segment_revenue_total", segment=s))
    assert rows[loyal].customers == 40 and rows[occasional].customers == 40
    assert rows[UNKNOWN].customers is None


def test_the_exposition_carries_the_segment_label_with_bounded_values() -> None:
    metrics, _, seg = _worker_run(_outcomes(days=60), k=3)
    kpis = SegmentKpis(metrics, 3)
    # An id outside the bounded set (a checkpoint of another k) never makes a new series.
    kpis.count("s7", converted=True, abandoned=False, orders=1, revenue=5.0, friction=0)
    SegmentInfo(metrics, seg).update()
    text = generate_latest(metrics.registry).decode()
    values = set(re.findall(r'^frictionwatch_segment_\w+\{[^}]*segment="([^"]*)"', text,
                            re.MULTILINE))
    assert values == {"s0", "s1", "s2", UNKNOWN}
    assert not re.search(r'segment="[^"]*(loyal|occasional)', text)  # never a customer id
    info = re.findall(r'^frictionwatch_segment_info\{([^}]*)\} 1\.0$', text, re.MULTILINE)
    assert len(info) == 3 and all('description="' in line for line in info)


def test_a_changed_description_replaces_its_series() -> None:
    metrics = Metrics(CollectorRegistry())
    seg = Segmenter(k=2, seed=3)
    info = SegmentInfo(metrics, seg)
    info.update()
    before = dict(info.shown)
    _worker_run_into(seg)
    info.update()
    assert info.shown != before
    series = [m for f in metrics.segment_info.collect() for m in f.samples]
    assert sorted(s.labels["segment"] for s in series) == ["s0", "s1"]
    assert {s.labels["description"] for s in series} == set(info.shown.values())


def _worker_run_into(seg: Segmenter) -> None:
    states: dict[str, CustomerState] = {}
    step = CustomerSegments(seg, SegmentKpis(Metrics(CollectorRegistry()), seg.k))
    for o in _outcomes(days=60):
        summary = session_summary(o)
        if summary is not None:
            ended = step.before(states.get(o["customer_id"]), [summary])
            states[o["customer_id"]] = st = apply_customer(states.get(o["customer_id"]),
                                                           [summary])
            step.after(st, ended)


def test_a_session_summary_sent_again_is_counted_once() -> None:
    o = _outcomes(days=10)[0] | {"customer_id": "c1"}
    metrics = Metrics(CollectorRegistry())
    step = CustomerSegments(Segmenter(k=2), SegmentKpis(metrics, 2))
    state = None
    for _ in range(2):  # a crash between the send and the commit: the summary comes again
        summary = session_summary(o)
        assert summary is not None and summary.orders == o["orders"]
        ended = step.before(state, [summary])
        state = apply_customer(state, [summary])
        step.after(state, ended)
    counted = sum(_sample(metrics, "frictionwatch_segment_sessions_total", segment=s,
                          outcome=x) for s in ("s0", "s1")
                  for x in ("converted", "abandoned", "browsed"))
    assert counted == 1 and step.seg.learned == 1


def test_the_segmenter_survives_a_restart(tmp_path: Path) -> None:
    _, _, seg = _worker_run(_outcomes(days=60), k=3)
    probes = [{"recency": r, "frequency": f, "spend": s, "friction": 0.1, "support": 0.0}
              for r in (0.5, 3.0) for f in (0.5, 2.5) for s in (0.0, 5.0)]
    path = tmp_path / "segments.ckpt"
    assert checkpoints.save(seg, path)
    again = Segmenter(k=3, seed=3)
    assert checkpoints.restore(again, path)
    assert again.learned == seg.learned > 0
    assert [again.predict_one(x) for x in probes] == [seg.predict_one(x) for x in probes]
    assert again.segments() == seg.segments()
    # A broken model is not checkpointed: the last good one stays.
    seg.scaler.means["spend"] = float("nan")
    assert not checkpoints.save(seg, path)
    assert checkpoints.restore(Segmenter(k=3), path)


def test_the_dashboard_shows_the_kpis_by_segment() -> None:
    recorded = recorded_series()
    panels = {p["title"]: p for path in DASHBOARD_FILES
              for p in panels_of(json.loads(path.read_text()))}
    for title, rule in (("Conversion rate by segment", "segment:frictionwatch_conversion"),
                        ("Average order value by segment",
                         "segment:frictionwatch_average_order_value"),
                        ("Friction rate by segment", "segment:frictionwatch_friction")):
        target = panels[title]["targets"][0]
        names, _, _, _ = promql_names(target["expr"])
        assert names == {f"{rule}:ratio_rate1h"}
        assert recorded[f"{rule}:ratio_rate1h"] == {"segment"}
        assert target["legendFormat"] == "{{segment}}"
    words = panels["Segments in words"]["targets"][0]
    _, grouping, _, _ = promql_names(words["expr"])
    assert grouping == {"segment", "description"} and words["format"] == "table"


def test_the_report_has_the_segment_table(tmp_path: Path) -> None:
    outcomes = _outcomes(days=60)
    page = render(tmp_path, ReportData("two groups", outcomes=outcomes), Settings(
        segments_k=2)).read_text()
    table = page.split("<h3>By customer segment</h3>", 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr><td>(s\d|unknown)</td><td>([^<]*)</td><td>([^<]*)</td>", table)
    assert [r[0] for r in rows] == ["s0", "s1", UNKNOWN]
    words = {r[0]: r[1] for r in rows}
    assert any("high spenders" in w for w in words.values())
    assert words[UNKNOWN] == "anonymous sessions"
    assert sum(int(r[2]) for r in rows if r[2]) == 80  # every known customer, once
    off = render(tmp_path / "off", ReportData("x", outcomes=outcomes),
                 Settings(customer_segments=False)).read_text()
    assert "Customer segments are switched off" in off


def test_the_report_names_segments_with_the_workers_published_segmenter(
        tmp_path: Path) -> None:
    """From Kafka the report takes the workers' segmenter (ids as on the dashboards) and
    only assigns with it: it learns nothing more."""
    _, _, worker = _worker_run(_outcomes(days=60), k=2)
    learned, words = worker.learned, worker.segments()
    data = ReportData("kafka", outcomes=_outcomes(days=30, seed=6), segmenter=worker)
    rows = customer_segments(data, Settings(segments_k=2))
    assert worker.learned == learned and worker.segments() == words
    assert {r.segment: r.words for r in rows if r.segment != UNKNOWN} == words
    assert sum(r.customers or 0 for r in rows) == 80
    page = render(tmp_path, data, Settings(segments_k=2)).read_text()
    assert "workers&#x27; as last published" in page or "workers' as last published" in page


def test_the_backtest_prints_kpis_by_segment() -> None:
    console = Console(record=True, width=100)
    console.print(segments_table(Segmenter(k=2, seed=3), _outcomes(days=60)))
    text = console.export_text()
    rows = {line.split()[0]: line for line in text.splitlines()
            if line.strip().startswith(("s0", "s1", "unknown"))}
    assert set(rows) == {"s0", "s1", UNKNOWN}
    assert "anonymous sessions" in rows[UNKNOWN] and "segments learned in" in text
