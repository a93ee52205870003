"""Noise controls: ignore lists per detector, text selection and steppers are not rage."""

from __future__ import annotations

import json

import pytest

from detectors.clicks import DeadClickDetector, ErrorClickDetector, RageClickDetector
from detectors.events import (
    ApiError,
    CheckoutStarted,
    Click,
    DeadClick,
    JsError,
    PagePerformance,
    PageView,
)
from detectors.noise import IgnoreList, click_kind, parse_selector
from detectors.pages import ApiErrorDetector, ErrorPageDetector, SlowPageDetector
from detectors.session import SessionProcessor
from streams import detection
from streams.adapters import ga4, segment
from streams.settings import Settings


def _burst(target: str, n: int, t0: float = 10.0, text: str | None = None,
           url: str | None = None) -> list[Click]:
    return [Click(id=f"{target}{t0}{i}", time=t0 + i * 0.15, session_id="s", x=100 + i,
                  y=200, target=target, text=text, url=url) for i in range(n)]


def _rage(det: RageClickDetector, clicks: list[Click]) -> list[str]:
    _, out = SessionProcessor([det]).apply(None, clicks)
    return [s.evidence["target"] for s in out]


# --- the selector subset -----------------------------------------------------------------------


@pytest.mark.parametrize(("pattern", "target", "hit"), [
    ("button", "button#pay", True),
    ("a", "button#pay", False),
    ("#pay", "button#pay.primary", True),
    (".primary", "button#pay.primary.big", True),
    (".primary.big", "button.primary", False),
    ("[data-noise]", 'div[data-noise="1"]', True),
    ("[type=number]", 'input[type="number"]', True),
    ("[aria-label*=increase i]", 'button[aria-label="Increase quantity"]', True),
    ("[aria-label*=increase]", 'button[aria-label="Increase quantity"]', False),
    ("[href^=/help]", "a[href='/help/sizes']", True),
    ("[href$=.pdf]", "a[href=/terms.pdf]", True),
    ("[class~=qty]", "button.qty.plus", True),
    ("[id=pay]", "button#pay", True),
    (".carousel", "div.carousel > button.next", True),  # an ancestor the target names
    ("*", "anything", True),
])
def test_selector_subset(pattern: str, target: str, hit: bool) -> None:
    assert IgnoreList(selectors=[pattern]).matches_target(target) is hit


@pytest.mark.parametrize("bad", ["div a", "div > a", "a:hover", "a,b", "[x", "#"])
def test_unsupported_selectors_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="unsupported selector"):
        parse_selector(bad)


def test_paths_prefix_and_glob_and_ids() -> None:
    ig = IgnoreList(paths=["/admin", "/p/*/reviews"], ids=["promo-banner"])
    assert ig.matches_path("/admin") and ig.matches_path("/admin/x")
    assert ig.matches_path("https://shop.example.com/admin/x?y=1")
    assert not ig.matches_path("/administer")
    assert ig.matches_path("/p/sku-1/reviews") and not ig.matches_path("/p/sku-1")
    assert ig.matches_target("div#promo-banner") and ig.matches_target("promo-banner")
    assert not ig.matches_target("div#promo")
    assert IgnoreList.from_spec({}) is None and IgnoreList.from_spec(None) is None
    with pytest.raises(ValueError, match="unknown ignore-list keys"):
        IgnoreList.from_spec({"selector": ["a"]})


# --- ignore lists per detector -------------------------------------------------------------------


def test_rage_click_ignore_list_selector_path_and_id() -> None:
    assert _rage(RageClickDetector(), _burst("div.carousel-next", 4)) == ["div.carousel-next"]
    assert _rage(RageClickDetector(ignore={"selectors": [".carousel-next"]}),
                 _burst("div.carousel-next", 4)) == []
    assert _rage(RageClickDetector(ignore={"ids": ["pay"]}), _burst("button#pay", 4)) == []
    det = RageClickDetector(ignore={"paths": ["/games/*"]})
    assert _rage(det, _burst("button#go", 4, url="https://x.example/games/tap")) == []
    assert _rage(det, _burst("button#go", 4, url="/checkout")) == ["button#go"]


def test_dead_click_ignore_list() -> None:
    ignored = DeadClickDetector(expect_response=["button#pay"], ignore={"ids": ["pay"]})
    plain = DeadClickDetector(expect_response=["button#pay"])
    for det, want in ((plain, 2), (ignored, 0)):
        proc = SessionProcessor([det])
        s, out = proc.apply(None, [
            Click(id="1", time=10.0, session_id="s", x=5, y=5, target="button#pay"),
            DeadClick(id="2", time=11.2, session_id="s", x=5, y=5, target="button#pay"),
            Click(id="3", time=30.0, session_id="s", x=5, y=5, target="button#pay")])
        out += proc.advance(s, 40.0)
        assert len(out) == want


def test_error_click_ignore_list() -> None:
    events = [Click(id="1", time=5.0, session_id="s", x=1, y=1, target="a.chat-widget"),
              JsError(id="2", time=5.3, session_id="s", message="third-party")]
    assert len(SessionProcessor([ErrorClickDetector()]).apply(None, events)[1]) == 1
    det = ErrorClickDetector(ignore={"selectors": [".chat-widget"]})
    assert SessionProcessor([det]).apply(None, events)[1] == []


def test_page_detectors_ignore_paths() -> None:
    events = [CheckoutStarted(id="0", time=0.0, session_id="s"),
              PageView(id="1", time=1.0, session_id="s", path="/internal/status",
                       status_code=503),
              PagePerformance(id="2", time=8.0, session_id="s", lcp_ms=9000.0),
              ApiError(id="3", time=9.0, session_id="s", endpoint="/api/telemetry",
                       status_code=503)]
    dets = [SlowPageDetector(), ErrorPageDetector(), ApiErrorDetector()]
    assert len(SessionProcessor(dets).apply(None, events)[1]) == 3
    spec = {"paths": ["/internal"]}
    dets = [SlowPageDetector(ignore=spec), ErrorPageDetector(ignore=spec),
            ApiErrorDetector(ignore={"paths": ["/api/telemetry"]})]
    assert SessionProcessor(dets).apply(None, events)[1] == []


def test_settings_ignore_lists_reach_the_detectors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRICTIONWATCH_DETECTOR_IGNORE", json.dumps(
        {"rage_click": {"selectors": [".carousel-next"]}, "api_error": {"paths": ["/api/t"]}}))
    settings = Settings(_env_file=None)
    found = {d.name: d for d in detection.processor(settings).detectors}
    assert found["rage_click"].ignore.selectors == (".carousel-next",)  # type: ignore[attr-defined]
    assert found["api_error"].ignore.paths == ("/api/t",)  # type: ignore[attr-defined]
    assert found["dead_click"].ignore is None  # type: ignore[attr-defined]
    monkeypatch.setenv("FRICTIONWATCH_DETECTOR_IGNORE", '{"rage_clicks": {}}')
    with pytest.raises(ValueError, match="unknown detectors"):
        Settings(_env_file=None)
    monkeypatch.setenv("FRICTIONWATCH_DETECTOR_IGNORE", '{"rage_click": {"selectors": ["a b"]}}')
    with pytest.raises(ValueError, match="unsupported selector"):
        Settings(_env_file=None)


# --- intentional repeated clicks -------------------------------------------------------------


@pytest.mark.parametrize(("target", "text", "kind"), [
    ("button.qty-plus", None, "stepper"),
    ("button.quantity-minus", None, "stepper"),
    ('button[aria-label="Increase quantity"]', None, "stepper"),
    ('input[type="number"]', None, "stepper"),
    ("button", "+", "stepper"),
    ("button", "−", "stepper"),
    ("button.signup", "sign-up", None),
    ("p.description", None, "text"),
    ("h1", None, "text"),
    ("textarea#note", None, "editable"),
    ("input#postal_code", None, "editable"),
    ('div[contenteditable="true"]', None, "editable"),
    ('input[type="checkbox"]', None, None),
    ("span[role=button]", None, None),
    ("div.carousel-next", None, None),
    ("button#pay", None, None),
])
def test_click_kind(target: str, text: str | None, kind: str | None) -> None:
    assert click_kind(target, text) == kind


def test_double_and_triple_clicks_on_text_are_not_rage() -> None:
    det = RageClickDetector()
    assert _rage(det, _burst("p.description", 2)) == []
    assert _rage(det, _burst("p.description", 3)) == []
    assert _rage(det, _burst("textarea#note", 3)) == []
    # a fourth click selects nothing more: that is rage, wherever it lands
    assert _rage(det, _burst("p.description", 5)) == ["p.description"]
    # off: a triple click counts, as before
    assert _rage(RageClickDetector(selection_clicks=0),
                 _burst("p.description", 3)) == ["p.description"]


def test_steppers_are_not_rage() -> None:
    det = RageClickDetector()
    assert _rage(det, _burst("button.qty-plus", 8)) == []
    assert _rage(det, _burst("button", 6, text="-")) == []
    assert _rage(det, _burst("button.add-to-cart", 3)) == ["button.add-to-cart"]
    assert _rage(RageClickDetector(ignore_steppers=False),
                 _burst("button.qty-plus", 3)) == ["button.qty-plus"]


def test_adapters_carry_the_element_text() -> None:
    out = segment.adapt({"type": "track", "event": "Element Clicked", "messageId": "m1",
                         "anonymousId": "a", "timestamp": "2026-01-01T00:00:00Z",
                         "properties": {"x": 1, "y": 2, "target": "button", "$el_text": "+"}})
    [click] = out.events
    assert click.text == "+" and click_kind(click.target, click.text) == "stepper"
    out = ga4.adapt({"client_id": "1.2", "timestamp_micros": 1714564800000000,
                     "events": [{"name": "click", "params": {"x": 1, "y": 2, "target": "a",
                                                              "link_text": "x" * 900}}]})
    [click] = out.events
    assert click.text == "x" * 256


def test_clicks_without_a_position_get_the_same_exceptions() -> None:
    """Snowplow and PostHog clicks name the element, not the pointer: steppers and text
    selection are still not rage clicks, and a fourth click on text is."""
    from detectors import events as ev
    from detectors.clicks import RageClickDetector
    from detectors.session import SessionProcessor

    def burst(target: str, n: int, text: str | None = None) -> list[str]:
        proc = SessionProcessor([RageClickDetector()])
        clicks = [ev.Click(id=str(i), time=0.1 * i, session_id="s", target=target, text=text)
                  for i in range(n)]
        return [s.type for s in proc.apply(None, clicks)[1]]

    assert burst("button.buy", 3) == ["rage_click"]
    assert burst("button.qty-plus", 6) == []
    assert burst("button", 6, text="Increase quantity") == []
    assert burst("p.product-description", 3) == []
    assert burst("p.product-description", 4) == ["rage_click"]
