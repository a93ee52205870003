"""Page friction: slow pages (Core Web Vitals "poor"), error pages and failed API calls.

Each detector is a small pure class (``detectors.base.BaseDetector``) whose ``name`` is the
friction type the simulator's truth uses. Per-session memory is a few numbers in
``state.detector_state[name]``.

==================  ===================================================================
slow_page           LCP > 4 s or INP > 500 ms on a page: one signal per page view
error_page          a page view with a 4xx/5xx status
api_error           failed API calls in checkout (5xx, 429, network error 0): one signal
                    per episode (an endpoint failing again within a minute is the same one)
==================  ===================================================================

>>> from detectors.events import PagePerformance, PageView
>>> from detectors.session import SessionProcessor
>>> proc = SessionProcessor([SlowPageDetector(), ErrorPageDetector()])
>>> _, signals = proc.apply(None, [
...     PageView(id="1", time=1.0, session_id="s", path="/cart", status_code=503),
...     PageView(id="2", time=5.0, session_id="s", path="/cart"),
...     PagePerformance(id="3", time=11.0, session_id="s", lcp_ms=5200.0, inp_ms=90.0)])
>>> [(s.type, s.start, s.time) for s in signals]
[('error_page', 1.0, 1.0), ('slow_page', 5.0, 11.0)]

Scope: given a ``PageScope``, each of these signals says whether it is the customer's friction
(evidence ``scope`` "session": in checkout, on a journey's pages or on configured paths) or
the site's health ("site": an old blog post's 404), which dashboards count but which neither
alerts nor offers chat (``detectors.alerting``).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from detectors import events as ev
from detectors.base import BaseDetector, Signal
from detectors.noise import IgnoreList

if TYPE_CHECKING:
    from detectors.session import SessionState

__all__ = ["ApiErrorDetector", "ErrorPageDetector", "PageScope", "SlowPageDetector"]


class PageScope:
    """Where a failing page is the customer's friction: while the session is in checkout, and
    on pages whose URL (or path) matches one of ``globs`` (whole, as ``fnmatch``) or
    ``regexes`` (searched): the configured journeys' step patterns and the paths a
    deployment adds. Elsewhere it is the site's health.

    >>> scope = PageScope(globs=["*/cart"], regexes=["/account/"])
    >>> from detectors.session import SessionState
    >>> s = SessionState(session_id="s")
    >>> [scope.contains(s, u) for u in ("https://shop.example/cart", "/account/orders",
    ...                                 "/blog/2019/old-post", None)]
    [True, True, False, False]
    >>> s.checkout_step = 2
    >>> scope.contains(s, "/blog/2019/old-post")
    True
    """

    def __init__(self, globs: Iterable[str] = (), regexes: Iterable[str] = ()) -> None:
        whole = [fnmatch.translate(g) for g in globs]
        self._glob = re.compile("|".join(whole)) if whole else None
        found = list(regexes)
        self._regex = re.compile("|".join(f"(?:{r})" for r in found)) if found else None

    def contains(self, state: SessionState, url: str | None) -> bool:
        if state.checkout_step:
            return True
        if url is None:
            return False
        return (self._glob is not None and self._glob.match(url) is not None
                or self._regex is not None and self._regex.search(url) is not None)

    def label(self, state: SessionState, url: str | None) -> str:
        """Evidence ``scope``: "session" or "site"."""
        return "session" if self.contains(state, url) else "site"


class SlowPageDetector(BaseDetector):
    """Slow pages: a Core Web Vital in the "poor" band, from ``PagePerformance`` events.

    Parameters
    ----------
    lcp_ms
        Largest Contentful Paint above this is poor. Default 4000: web.dev, "Largest
        Contentful Paint (LCP)": good <= 2.5 s, poor > 4 s (https://web.dev/articles/lcp).
    inp_ms
        Interaction to Next Paint above this is poor. Default 500: web.dev, "Interaction to
        Next Paint (INP)": good <= 200 ms, poor > 500 ms (https://web.dev/articles/inp).
    ignore
        Pages not watched (``detectors.noise.IgnoreList``; its ``paths``): the page of the
        session's last page view, else the report's URL.

    One signal per page view (a later report for the same page adds nothing). Evidence:
    ``url`` (of the report), ``path`` (of the last page view, else its URL), ``lcp_ms``,
    ``inp_ms`` and ``poor`` (which metrics crossed).
    ``Signal.start`` is the page view (the wait began there), ``Signal.time`` the report.

    The page is the session's last page view (``SessionState.page_at``, ``page``). Memory:
    ``f``, the page view time already flagged (None: reports before any page view).

    >>> from detectors.events import PagePerformance
    >>> from detectors.session import SessionState
    >>> det, s = SlowPageDetector(), SessionState(session_id="s")
    >>> det.update(s, PagePerformance(id="1", time=3.0, session_id="s", lcp_ms=4000.0))
    ()
    >>> [sig] = det.update(s, PagePerformance(id="2", time=9.0, session_id="s", url="/p/1",
    ...                                       lcp_ms=3100.0, inp_ms=620.0))
    >>> sig.evidence
    {'url': '/p/1', 'path': None, 'lcp_ms': 3100.0, 'inp_ms': 620.0, 'poor': ['inp']}
    """

    name = "slow_page"
    handles: ClassVar[tuple[type, ...]] = (ev.PagePerformance,)

    def __init__(self, lcp_ms: float = 4000.0, inp_ms: float = 500.0,
                 scope: PageScope | None = None,
                 ignore: IgnoreList | Mapping[str, Any] | None = None) -> None:
        if lcp_ms <= 0 or inp_ms <= 0:
            raise ValueError("lcp_ms and inp_ms must be > 0")
        self.lcp_ms = lcp_ms
        self.inp_ms = inp_ms
        self.scope = scope
        self.ignore = IgnoreList.from_spec(ignore)

    def update(self, state: SessionState, event: Any) -> Sequence[Signal]:
        lcp, inp = event.lcp_ms, event.inp_ms
        if self.ignore is not None and self.ignore.matches_path(
                state.page if state.page_at is not None else event.url):
            return ()
        poor = []
        if lcp is not None and lcp > self.lcp_ms:
            poor.append("lcp")
        if inp is not None and inp > self.inp_ms:
            poor.append("inp")
        if not poor:
            return ()
        viewed = state.page_at  # None: no page view seen, this report's page
        mem = self.memory(state)
        if "f" in mem and mem["f"] == viewed:
            return ()
        mem["f"] = viewed
        start, path = event.time, None
        if viewed is not None:
            start, path = min(viewed, event.time), state.page
        evidence = {"url": event.url, "path": path, "lcp_ms": lcp, "inp_ms": inp, "poor": poor}
        if self.scope is not None:
            evidence["scope"] = self.scope.label(state, path or event.url)
        return [Signal(type="slow_page", session_id=state.session_id, time=event.time,
                       start=start, step=state.checkout_step or None, evidence=evidence)]


class ErrorPageDetector(BaseDetector):
    """Error pages: a page view whose HTTP status is ``min_status`` or more (4xx and 5xx).

    Parameters
    ----------
    min_status
        Lowest status that is an error page. Default 400: RFC 9110 section 15, 4xx client
        errors (a 404 dead link) and 5xx server errors.
    ignore
        Pages not watched (``detectors.noise.IgnoreList``; its ``paths``): the page viewed.

    One signal per error page view. Evidence: ``path``, ``url``, ``status``.

    >>> from detectors.events import PageView
    >>> from detectors.session import SessionState
    >>> det, s = ErrorPageDetector(), SessionState(session_id="s")
    >>> det.update(s, PageView(id="1", time=1.0, session_id="s", path="/p/9", status_code=200))
    ()
    >>> [sig] = det.update(s, PageView(id="2", time=2.0, session_id="s", path="/p/9",
    ...                                status_code=404))
    >>> sig.evidence
    {'path': '/p/9', 'url': None, 'status': 404}
    """

    name = "error_page"
    handles: ClassVar[tuple[type, ...]] = (ev.PageView,)

    def __init__(self, min_status: int = 400, scope: PageScope | None = None,
                 ignore: IgnoreList | Mapping[str, Any] | None = None) -> None:
        if not 100 <= min_status <= 599:
            raise ValueError("min_status must be an HTTP status (100-599)")
        self.min_status = min_status
        self.scope = scope
        self.ignore = IgnoreList.from_spec(ignore)

    def update(self, state: SessionState, event: Any) -> Sequence[Signal]:
        status = event.status_code
        if status is None or status < self.min_status:
            return ()
        if self.ignore is not None and self.ignore.matches_path(event.path or event.url):
            return ()
        evidence: dict[str, Any] = {"path": event.path, "url": event.url, "status": status}
        if self.scope is not None:
            evidence["scope"] = self.scope.label(state, event.path or event.url)
        return [Signal(type="error_page", session_id=state.session_id, time=event.time,
                       start=event.time, step=state.checkout_step or None, evidence=evidence)]


class ApiErrorDetector(BaseDetector):
    """Failed API calls during checkout: one signal per episode, at its first failure.

    A failure is an ``ApiError`` with status 5xx, 429 (too many requests) or 0 (network
    error, no response); with ``client_errors`` also any other 4xx. Other 4xx are off by
    default: a 400/422 is how many APIs answer a form the shopper has to correct (the form
    detectors see those), a 401/403/404 is often a probe of a session or a stock check, not a
    checkout that broke. An episode is one endpoint failing again within ``episode_gap_s``
    seconds of its previous failure (retries, the shopper trying again); another endpoint, or
    the same one after a longer gap, starts a new episode.

    Parameters
    ----------
    client_errors
        Count 4xx other than 429 as failures too. Default False (see above).
    checkout_only
        Only while the session is in checkout (``state.checkout_step > 0``), as the issue
        asks. Default True. A ``scope`` given instead decides: outside it a failure is the
        site's health (evidence ``scope`` "site").
    episode_gap_s
        Seconds between failures of one endpoint that still make one episode. Default 60:
        retries with backoff and a shopper's own retries come within seconds to a minute.
    max_endpoints
        Endpoints remembered per session (the oldest dropped). Default 8.
    ignore
        Calls not watched (``detectors.noise.IgnoreList``; its ``paths``): by the endpoint's
        path (a noisy third-party or telemetry API) or the page the session is on.

    Evidence: ``endpoint``, ``status``. ``Signal.start`` and ``Signal.time`` are the first
    failure of the episode.

    Memory: ``e``, endpoint -> time of its last failure.

    >>> from detectors.events import ApiError, CheckoutStarted
    >>> from detectors.session import SessionProcessor
    >>> proc = SessionProcessor([ApiErrorDetector()])
    >>> _, out = proc.apply(None, [
    ...     CheckoutStarted(id="0", time=0.0, session_id="s"),
    ...     ApiError(id="1", time=10.0, session_id="s", endpoint="/api/rates", status_code=503),
    ...     ApiError(id="2", time=16.0, session_id="s", endpoint="/api/rates", status_code=503),
    ...     ApiError(id="3", time=20.0, session_id="s", endpoint="/api/pay", status_code=422)])
    >>> [(s.time, s.step, s.evidence) for s in out]
    [(10.0, 1, {'endpoint': '/api/rates', 'status': 503})]
    """

    name = "api_error"
    handles: ClassVar[tuple[type, ...]] = (ev.ApiError,)

    def __init__(self, client_errors: bool = False, checkout_only: bool = True,
                 episode_gap_s: float = 60.0, max_endpoints: int = 8,
                 scope: PageScope | None = None,
                 ignore: IgnoreList | Mapping[str, Any] | None = None) -> None:
        if episode_gap_s < 0 or max_endpoints < 1:
            raise ValueError("episode_gap_s must be >= 0 and max_endpoints >= 1")
        self.client_errors = client_errors
        self.checkout_only = checkout_only
        self.episode_gap_s = episode_gap_s
        self.max_endpoints = max_endpoints
        self.scope = scope
        self.ignore = IgnoreList.from_spec(ignore)

    def is_failure(self, status: int) -> bool:
        """Whether an API call with this status failed the shopper."""
        return status >= 500 or status == 429 or status == 0 or \
            (self.client_errors and 400 <= status < 500)

    def update(self, state: SessionState, event: Any) -> Sequence[Signal]:
        status = event.status_code
        if not self.is_failure(status) or (self.scope is None and self.checkout_only
                                           and not state.checkout_step):
            return ()
        ignore = self.ignore
        if ignore is not None and (ignore.matches_path(event.endpoint)
                                   or ignore.matches_path(state.page or event.url)):
            return ()
        mem = state.detector_state.get("api_error")
        if mem is None:
            mem = state.detector_state["api_error"] = {}
        seen = mem.get("e")
        if seen is None:
            seen = mem["e"] = {}
        endpoint, t = event.endpoint, event.time
        last = seen.pop(endpoint, None)  # re-inserted last: the dict stays in recency order
        seen[endpoint] = t if last is None else max(t, last)
        if last is not None and -self.episode_gap_s <= t - last <= self.episode_gap_s:
            return ()
        if len(seen) > self.max_endpoints:
            del seen[next(iter(seen))]
        evidence: dict[str, Any] = {"endpoint": endpoint, "status": status}
        if self.scope is not None:
            evidence["scope"] = self.scope.label(state, state.page or event.url)
        return [Signal(type="api_error", session_id=state.session_id, time=t, start=t,
                       step=state.checkout_step or None, evidence=evidence)]
