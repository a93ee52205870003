"""``frictionwatch report``: the numbers behind the plots, the files it writes, and the command."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from streams.cli import app
from streams.report import (
    PLOTS,
    ReportData,
    exposed_funnel,
    friction_points,
    gather_file,
    gather_simulated,
    headline,
    ledger,
    lift_over_time,
    render,
    revenue_at_risk,
)
from streams.settings import Settings, load

PNG = b"\x89PNG\r\n\x1a\n"
runner = CliRunner()


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load(holdout_control_share=0.5)


@pytest.fixture(scope="module")
def data(settings: Settings) -> ReportData:
    # Ten shop minutes: about six seconds, and enough exposed sessions to draw every plot.
    return gather_simulated(settings, seconds=600, rate=100, seed=3, chat_effect=0.5)


@pytest.fixture(scope="module")
def rendered(data: ReportData, settings: Settings, tmp_path_factory: pytest.TempPathFactory
             ) -> Path:
    out = tmp_path_factory.mktemp("report")
    assert render(out, data, settings) == out / "index.html"
    return out


def _check_pngs(out: Path) -> None:
    for name in PLOTS.values():
        raw = (out / name).read_bytes()
        assert raw.startswith(PNG), name
        assert len(raw) > 5_000, name  # a drawn figure, not an empty canvas


def test_simulated_run_has_what_the_plots_need(data: ReportData) -> None:
    assert len(data.outcomes) > 1000
    kinds = {r["type"] for r in data.experiments}
    assert kinds == {"exposure", "result"}
    assert data.alerts
    times = [r["time"] if r["type"] == "exposure" else r["end"] for r in data.experiments]
    assert times == sorted(times)


def test_lift_over_time_ends_at_the_ledgers_estimate(data: ReportData,
                                                     settings: Settings) -> None:
    led = ledger(data, settings)
    times, lift, low, high = lift_over_time(led, "chat_offer", settings, end=math.inf)
    c, t = led.totals["chat_offer"]["control"], led.totals["chat_offer"]["treatment"]
    assert len(times) == len(lift) == c.units + t.units > 20
    assert times == sorted(times)
    est = led.lift("chat_offer", alpha=settings.lift_alpha, horizon=settings.lift_horizon)
    assert lift[-1] == pytest.approx(est.conversion.lift)
    # The interval is there exactly when the estimate says there is enough data.
    assert math.isnan(low[-1]) == (est.status == "not_enough_data") == math.isnan(high[-1])


def test_units_final_only_at_the_end_are_drawn_at_the_end(data: ReportData,
                                                         settings: Settings) -> None:
    led = ledger(data, settings)
    end = max(o["end"] for o in data.outcomes)
    times, *_ = lift_over_time(led, "chat_offer", settings, end=end)
    assert max(times).timestamp() == pytest.approx(end)


def test_funnel_per_arm(data: ReportData) -> None:
    f = exposed_funnel(data, "chat_offer")
    results = [r for r in data.experiments if r["type"] == "result"]
    assert f["n:control"][0] + f["n:treatment"][0] == len(results)
    for arm in ("control", "treatment"):
        steps = f[arm][:4]
        assert steps == sorted(steps, reverse=True)  # reaching step k means passing k - 1
        assert all(0.0 <= x <= 1.0 for x in f[arm])
    ordered = [r["converted"] for r in results if r["arm"] == "treatment"]
    assert f["treatment"][4] == pytest.approx(sum(ordered) / len(ordered))


def test_revenue_at_risk_and_friction_points(data: ReportData) -> None:
    risk = revenue_at_risk(data)
    assert sum(risk.values()) == pytest.approx(
        sum(a["data"]["revenue_at_risk"] for a in data.alerts))
    points = friction_points(data)
    assert 0 < len(points) <= 10
    values = [v for _, v in points]
    assert values == sorted(values, reverse=True)
    step, kind = points[0][0].split(" / ")
    lost = sum(o["cart_value"] for o in data.outcomes
               if not o["converted"] and o["abandoned_step"] is not None
               and kind in o["friction"]
               and (o["journey_step"] or "") in (step, ""))
    assert 0 < points[0][1] <= lost + 1e-6


def test_render_writes_pngs_and_page(rendered: Path) -> None:
    _check_pngs(rendered)
    page = (rendered / "index.html").read_text()
    for name in PLOTS.values():
        assert f"src='{name}'" in page
    assert 'class="lift"' in page and "absolute conversion lift" in page
    assert "incremental revenue" in page and "By journey" in page and "By device" in page
    assert "lifetime value (CLV)" in page
    # No cost configured: the page says how to set one instead of inventing an ROI.
    assert "set FRICTIONWATCH_INTERVENTION_COSTS" in page
    assert "Elements with most dead, rage and error clicks" in page


def test_top_elements_table_from_the_outcomes(data: ReportData) -> None:
    from streams.report import top_elements

    rows = top_elements(data)
    assert 0 < len(rows) <= 15
    assert [r.sessions for r in rows] == sorted((r.sessions for r in rows), reverse=True)
    # The simulator's click friction lands on its known targets, and nowhere else.
    targets = {"button.add-to-cart", "a.size-guide", "div.carousel-next", "img.product-zoom",
               "button.filter-apply", "a.nav-sale", "button#continue", "button#place-order",
               "button.apply-coupon", "input#postal_code", "label.delivery-option"}
    assert {r.element for r in rows} <= targets
    assert all(sum(r.counts.values()) == r.sessions for r in rows)  # nothing evicted here
    hits = sum(len(o.get("elements") or ()) for o in data.outcomes)
    assert hits >= sum(r.sessions for r in rows)


def test_render_with_a_known_cost(data: ReportData, tmp_path: Path) -> None:
    settings = load(holdout_control_share=0.5, intervention_costs={"chat": 1.5})
    page = render(tmp_path, data, settings).read_text()
    assert "set FRICTIONWATCH_INTERVENTION_COSTS" not in page
    delivered = sum(r["type"] == "exposure" and r["delivered"] for r in data.experiments)
    assert f"{1.5 * delivered:,.2f}" in page


def test_render_escapes_text(tmp_path: Path, settings: Settings) -> None:
    incident = {"type": "io.frictionwatch.journey.incident.opened", "time": "t",
                "data": {"status": "opened", "journey": "j", "step": "s",
                         "revenue_lost_per_hour": 1.0, "summary": "<script>x</script>"}}
    page = render(tmp_path, ReportData("<b>here</b>", incidents=[incident]),
                  settings).read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "&lt;b&gt;here&lt;/b&gt;" in page


def test_render_with_no_data(tmp_path: Path, settings: Settings) -> None:
    render(tmp_path, ReportData("nothing"), settings)
    for name in PLOTS.values():
        assert (tmp_path / name).read_bytes().startswith(PNG)
    page = (tmp_path / "index.html").read_text()
    assert "not enough data yet" in page and "No journey incidents." in page
    assert headline(ReportData("nothing"), settings)[0].endswith("not enough data yet")


def test_file_and_simulation_agree(tmp_path: Path, settings: Settings) -> None:
    from streams.sim import SimConfig, Simulator

    sim = Simulator(SimConfig(seed=5, events_per_second=50, duration=120))
    file = tmp_path / "events.jsonl"
    file.write_text("".join(json.dumps(m.envelope()) + "\n" for m in sim.messages()))
    a = gather_file(file, settings)
    b = gather_simulated(settings, seconds=120, rate=50, seed=5, chat_effect=0.0)
    assert len(a.outcomes) == len(b.outcomes) > 0
    assert a.experiments == b.experiments and len(a.alerts) == len(b.alerts)


def test_cli_simulated(tmp_path: Path) -> None:
    out = tmp_path / "rep"
    result = runner.invoke(app, ["report", "--out", str(out), "--simulate", "180", "--rate",
                                 "50", "--seed", "2", "--chat-effect", "0.5",
                                 "--control-share", "0.5", "--incident",
                                 "payment_outage@60+60"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert f"wrote {out / 'index.html'}" in result.output
    assert "chat_offer:" in result.output and "conversion lift" in result.output
    _check_pngs(out)


def test_cli_journeys_shows_the_truth_beside_the_credit(tmp_path: Path) -> None:
    out = tmp_path / "rep"
    result = runner.invoke(app, ["report", "--out", str(out), "--journeys", "300", "--seed",
                                 "1"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    page = (out / "index.html").read_text()
    assert "300 simulated customer journeys" in page
    assert "true incremental conversions (simulation)" in page and "paid_search" in page


@pytest.mark.parametrize("args", [[], ["--simulate", "60", "--from-kafka"],
                                  ["--simulate", "60", "--journeys", "10"],
                                  ["--broker", "localhost:1", "--control-share", "0.5"],
                                  ["--incident", "payment_outage@60+120", "--from-kafka"]])
def test_cli_rejects_bad_sources(tmp_path: Path, args: list[str]) -> None:
    result = runner.invoke(app, ["report", "--out", str(tmp_path), *args])
    assert result.exit_code == 2, result.output
    assert "error:" in result.output


def test_attribution_table_beside_the_lift(data: ReportData, rendered: Path) -> None:
    from streams.report import attribution

    credits = attribution(data)
    converted = sum(1 for o in data.outcomes if o.get("converted") and o.get("source"))
    # Every model shares out the same conversions (each converting session ends a journey).
    for model, by_channel in credits.items():
        assert math.isclose(sum(c.conversions for c in by_channel.values()), converted,
                            rel_tol=1e-9), model
    assert set(credits["markov"]) <= {"direct", "organic_search", "paid_search", "social",
                                      "paid_social", "email", "referral"}
    page = (rendered / "index.html").read_text()
    assert "Attribution is correlational" in page
    assert "data-driven (touch-effect counterfactual)" in page and "Markov removal" in page
    assert "Only the randomized holdout shows cause: chat_offer:" in page
