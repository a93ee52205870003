"""Issue 15, item 4: a backtest of a Snowplow and a PostHog file finds the same frictions as
the same sessions sent as Segment.

The simulator picks a session's format from the draw that picks GA4, and every non-GA4
session takes the same presence draw, so one seed gives the same sessions, action for action,
in each format. Presence differs by source, and presence changes what some detectors say (a
stall alerts only where presence is known), so each format is compared with Segment sending
what it sends: PostHog's ``$pageleave`` with Segment's "Page Left" on every page
(``segment_beacons=1``), Snowplow, which has no leave event (it sends heartbeats), with
Segment sending none.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from streams import detection
from streams.backtest import run
from streams.settings import Settings
from streams.sim import BLIND, SimConfig, Simulator

Found = Counter[tuple[str, str, Any]]


def _backtest(tmp_path: Path, name: str, **shares: float) -> tuple[Found, dict[Any, Any], int]:
    """Simulate to a file as ``simulate --out`` writes it, backtest the file: the frictions
    found as (type, session, step), the targets of click signals, and the dead letters."""
    sim = Simulator(SimConfig(seed=11, events_per_second=60, duration=600, ga4_share=0.0,
                              **shares))
    path = tmp_path / f"{name}.jsonl"
    path.write_text("\n".join(json.dumps(m.envelope()) for m in sim.messages()))
    sources = {m["source"] for m in map(json.loads, path.read_text().splitlines())}
    assert sources <= {name, "support"}
    with path.open("rb") as f:
        res = run(f, detection.engine(Settings(abandonment_model=False)))
    found = Counter((s.type, s.session_id, s.step) for s in res.outputs.signals)
    targets = {(s.type, s.session_id, s.step): s.evidence.get("target")
               for s in res.outputs.signals}
    return found, targets, res.dead


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sources")


def test_posthog_finds_what_segment_finds(tmp: Path) -> None:
    segment, _, dead = _backtest(tmp, "segment", segment_beacons=1.0)
    posthog, _, posthog_dead = _backtest(tmp, "posthog", posthog_share=1.0)
    assert dead == posthog_dead == 0
    # Every family the simulator injects, rage clicks from positionless $autocapture clicks
    # included (same element, not same spot), and dead clicks from $dead_click.
    assert {k[0] for k in segment} >= {"rage_click", "dead_click", "error_click", "slow_page",
                                       "payment_declined", "form_error_loop", "step_stall"}
    assert posthog == segment


#: What Snowplow has no event for (``streams.sim.formats``), so the detectors cannot see it:
#: dead clicks (no dead-click report), error pages (no page status), form field errors,
#: coupon results and failed API calls.
SNOWPLOW_BLIND = BLIND["snowplow"]


def test_snowplow_finds_what_segment_finds_where_snowplow_can_say_it(tmp: Path) -> None:
    segment, targets, dead = _backtest(tmp, "segment", segment_beacons=0.0)
    snowplow, _, snowplow_dead = _backtest(tmp, "snowplow", snowplow_share=1.0)
    assert dead == snowplow_dead == 0
    assert not {k[0] for k in snowplow} & SNOWPLOW_BLIND

    def of(found: Found, *types: str) -> Found:
        return Counter({k: n for k, n in found.items() if k[0] in types})

    # Page loads, payments and the path through checkout: the same, session for session.
    assert of(snowplow, "slow_page", "payment_declined", "backtrack") == \
        of(segment, "slow_page", "payment_declined", "backtrack")
    # Clicks: Snowplow's link and button click tracking sees clicks on links and buttons
    # only. Those it finds are Segment's; those it misses are all on other elements.
    clicks = ("rage_click", "error_click")
    assert of(snowplow, *clicks) <= of(segment, *clicks)
    missed = of(segment, *clicks) - of(snowplow, *clicks)
    assert missed and all(not str(targets[k]).startswith(("a", "button")) for k in missed)
    # Step stalls are not compared one for one: Snowplow's heartbeats tell a shopper who
    # left from one who is stuck, which Segment without beacons cannot, and the coupon
    # results Snowplow cannot send end some stalls elsewhere. Most are still the same.
    stalls_sp, stalls_seg = of(snowplow, "step_stall"), of(segment, "step_stall")
    assert len(stalls_sp & stalls_seg) >= 0.75 * len(stalls_seg)
