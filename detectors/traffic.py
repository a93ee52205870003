"""Where a session came from, from its landing page: a bounded set of channels, as web analytics
groups them (GA4's default channel grouping, simplified).

``utm_medium`` (and click ids) on the landing URL win; else the referrer's domain; else direct.

>>> traffic_source("https://shop.example/?utm_source=newsletter&utm_medium=email", None)
'email'
>>> traffic_source("https://shop.example/p/1?gclid=abc", None)
'paid_search'
>>> traffic_source("https://shop.example/", "https://www.google.com/")
'organic_search'
>>> traffic_source("/", None)
'direct'
>>> traffic_source("http://[::1/?utm_medium=email", "http://[bad")
'direct'
"""

from __future__ import annotations

from urllib.parse import SplitResult, parse_qs, urlsplit

__all__ = ["SOURCES", "traffic_source"]

#: Every value ``traffic_source`` returns.
SOURCES = ("direct", "organic_search", "paid_search", "social", "paid_social", "email",
           "referral")

_SEARCH = ("google.", "bing.", "duckduckgo.", "yahoo.", "ecosia.", "baidu.", "yandex.")
_SOCIAL = ("facebook.", "instagram.", "t.co", "twitter.", "x.com", "tiktok.", "pinterest.",
           "linkedin.", "reddit.", "youtube.")
_PAID = ("cpc", "ppc", "paid", "paidsearch", "paid_search", "paid-social", "paid_social",
         "display", "cpm")


def _split(url: str) -> SplitResult | None:
    # urlsplit raises ValueError on a malformed host ("http://[::1/"): such a URL tells us
    # nothing, and must not cost the event it came with.
    try:
        return urlsplit(url)
    except ValueError:
        return None


def _host(url: str) -> str:
    parts = _split(url)
    return ((parts.hostname if parts else None) or "").lower()


def traffic_source(url: str | None, referrer: str | None) -> str:
    """The channel of a session whose landing page is ``url``, reached from ``referrer``."""
    parts = _split(url) if url and "?" in url else None
    if parts is not None:
        query = parse_qs(parts.query)
        medium = (query.get("utm_medium") or [""])[0].lower()
        source = (query.get("utm_source") or [""])[0].lower()
        social = any(source.startswith(s.rstrip(".")) for s in _SOCIAL) or "social" in medium
        if medium in _PAID:
            return "paid_social" if social else "paid_search"
        if "gclid" in query or "msclkid" in query:  # ad click ids: paid search
            return "paid_search"
        if medium == "email" or source == "newsletter":
            return "email"
        if social or "fbclid" in query:  # Facebook tags every outbound link, paid or not
            return "social"
    if referrer:
        host = _host(referrer)
        if host and host != _host(url or ""):
            if any(s in host for s in _SEARCH):
                return "organic_search"
            if any(s in host for s in _SOCIAL):
                return "social"
            if host.startswith("mail.") or "mail." in host:
                return "email"
            return "referral"
    return "direct"
