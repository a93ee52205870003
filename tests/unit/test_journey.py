"""Journeys: loading the packaged YAML, validation errors, and tracking a session's position."""

from __future__ import annotations

from pathlib import Path

import pytest

from detectors import events as ev
from detectors.journey import Journey, JourneyError, JourneyTracker, journey_position
from detectors.session import SessionProcessor, decode_state, encode_state
from streams.journeys import load_journeys, parse_journeys

SHOP = "https://shop.example.com"


def test_default_journeys_load_with_both_profiles() -> None:
    js = load_journeys()
    retail, b2b = js["retail_checkout"], js["b2b_quote_to_renewal"]
    assert retail.profile == "retail" and b2b.profile == "b2b"
    assert retail.step_names == ("cart", "contact", "shipping", "payment", "review", "order")
    assert b2b.step_names == ("quote_requested", "quote_viewed", "contract_sent",
                              "contract_signed", "renewal")
    # Round trip through to_dict.
    assert Journey.from_dict(retail.to_dict()) == retail


def test_packaged_yaml_is_declared_as_package_data() -> None:
    text = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    assert '[tool.setuptools.package-data]\nstreams = ["journeys.yaml"]' in text


def _j(**step: object) -> dict[str, object]:
    return {"name": "j", "profile": "retail", "steps": [{"name": "s", **step}]}


@pytest.mark.parametrize(("doc", "message"), [
    ({"name": "j", "profile": "retail", "steps": []}, "steps must be a non-empty list"),
    ({"name": "j", "profile": "shop", "steps": [{"name": "s", "url": "/x"}]}, "profile must be"),
    ({"profile": "retail", "steps": [{"name": "s", "url": "/x"}]}, "without a name"),
    ({"name": "j", "profile": "retail", "steps": [{"name": "s", "url": "/x"}], "x": 1},
     "unknown keys"),
    (_j(events=["checkout_step_viewd"]), "unknown event type 'checkout_step_viewd'"),
    (_j(), "at least one of events, step, url, url_regex"),
    (_j(url_regex="(unclosed"), "url_regex '(unclosed' is invalid"),
    (_j(step="two", events=["checkout_step_viewed"]), "step must be a checkout step number"),
    (_j(step=2), "step needs events"),
    (_j(url="/x", colour="red"), "unknown keys ['colour']"),
    ({"name": "j", "profile": "retail", "steps": [{"name": "a", "url": "/a"},
                                                   {"name": "a", "url": "/b"}]}, "used twice"),
])
def test_invalid_journeys_say_what_is_wrong(doc: dict[str, object], message: str) -> None:
    with pytest.raises(JourneyError, match=message.replace("(", r"\(").replace("[", r"\[")):
        Journey.from_dict(doc)


def test_loader_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "j.yaml"
    bad.write_text("journeys:\n  - name: x\n    profile: retail\n    steps:\n"
                   "      - name: s\n        events: [nope]\n")
    with pytest.raises(JourneyError, match=r"j\.yaml: journey 1: journey 'x' step 1"):
        load_journeys(bad)
    bad.write_text("journeys: [\n")
    with pytest.raises(JourneyError, match="not valid YAML"):
        load_journeys(bad)
    with pytest.raises(JourneyError, match="'journeys' list"):
        parse_journeys({"steps": []})
    good = tmp_path / "ok.yaml"
    good.write_text("journeys:\n  - name: only\n    profile: b2b\n    steps:\n"
                    "      - {name: quote, url: '*/quote*'}\n")
    assert list(load_journeys(good)) == ["only"]


def _page(t: float, path: str, sid: str = "s") -> ev.PageView:
    return ev.PageView(id=f"p{t}", time=t, session_id=sid, url=SHOP + path, path=path)


def _view(t: float, step: int) -> ev.CheckoutStepViewed:
    return ev.CheckoutStepViewed(id=f"v{t}", time=t, session_id="s", step=step,
                                 url=f"{SHOP}/checkout/{step}")


def test_tracker_follows_retail_checkout_with_back_and_forth() -> None:
    proc = SessionProcessor([JourneyTracker(load_journeys())])
    state, signals = proc.apply(None, [
        _page(0, "/p/sku-1"),  # no journey yet
        _page(10, "/cart"),
        ev.CheckoutStarted(id="cs", time=40, session_id="s"),
        _view(40.2, 1),  # still contact
        _view(70, 2), _view(100, 3), _view(110, 2), _view(130, 3), _view(190, 4),
        ev.Click(id="c", time=200, session_id="s", x=1, y=1),
    ])
    assert signals == []
    pos = journey_position(state)
    assert pos["journey"] == "retail_checkout"
    assert (pos["step"], pos["step_name"]) == (5, "review")
    assert pos["entered_at"] == 190 and pos["seconds_in_step"] == 10
    assert pos["time_in_steps"] == {"cart": 30, "contact": 30, "shipping": 50, "payment": 70,
                                    "review": 10}
    assert (pos["moves"], pos["back_moves"]) == (6, 1)
    # The memory is what the state checkpoint holds.
    again = decode_state(encode_state(state))
    assert journey_position(again) == pos
    state, _ = proc.apply(state, [ev.OrderCompleted(id="o", time=230, session_id="s",
                                                    revenue=10.0)])
    assert journey_position(state)["step_name"] == "order"


def test_tracker_b2b_by_url_patterns_and_no_journey() -> None:
    proc = SessionProcessor([JourneyTracker(load_journeys())])
    state, _ = proc.apply(None, [_page(0, "/quotes/new", "b"), _page(50, "/quotes/Q-17", "b"),
                                 _page(900, "/contracts/C-9", "b"),
                                 _page(1000, "/contracts/C-9/signed", "b")])
    pos = journey_position(state)
    assert pos["journey"] == "b2b_quote_to_renewal" and pos["step_name"] == "contract_signed"
    assert pos["time_in_steps"]["quote_viewed"] == 850
    # A session that never reaches a journey step has no position.
    state, _ = proc.apply(None, [_page(0, "/", "x"), _page(5, "/c/shoes", "x")])
    assert journey_position(state) == {} and "journey" not in state.detector_state


def test_step_criteria_combine_glob_regex_and_step() -> None:
    j = Journey.from_dict({"name": "j", "profile": "retail", "steps": [
        {"name": "eu_cart", "url": "*/cart*", "url_regex": r"[?&]region=eu"},
        {"name": "ship", "events": ["checkout_step_viewed", "checkout_started"], "step": 2},
    ]})
    cart, ship = j.steps
    assert cart.matches(_page(0, "/cart?region=eu"))
    assert not cart.matches(_page(0, "/cart?region=us"))
    assert ship.matches(_view(1, 2)) and not ship.matches(_view(1, 3))
    assert ship.matches(ev.CheckoutStarted(id="c", time=0, session_id="s"))  # no step number


def test_tracker_match_cache_is_bounded() -> None:
    tracker = JourneyTracker(load_journeys())
    proc = SessionProcessor([tracker])
    state = None
    for i in range(5000):
        state, _ = proc.apply(state, [_page(float(i), f"/p/sku-{i}")])
    state, _ = proc.apply(state, [_page(6000.0, "/cart")])
    assert len(tracker._cache) <= 4096
    assert journey_position(state)["step_name"] == "cart"
