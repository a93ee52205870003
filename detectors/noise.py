"""Noise controls: what a detector should not count.

**Ignore lists** (``IgnoreList``): per detector, CSS selectors, URL paths and element ids whose
events the detector skips, as posthog-js's ``css_selector_ignorelist`` does for its rage and
dead clicks (``rageclick.css_selector_ignorelist``,
``capture_dead_clicks.css_selector_ignorelist``).

**Intentional repeated clicks** (``click_kind``): what posthog-js (1.382 and later, with the
``2026-05-30`` config defaults: ``rageclick.ignore_text_selection`` and ``+``/``-`` in
``rageclick.content_ignorelist``) does not call a rage click: double and triple clicks that
select text, and +/- quantity steppers, which are built to be clicked over and over.

Selectors are matched against the ``target`` string of a click, which sources write as a CSS
selector of the clicked element (``button#pay.primary``), sometimes with its ancestors
(``div.cart > button.qty-plus``). The supported subset, one compound selector per entry:

- a tag (``button``, ``*``), ``#id``, ``.class`` (several), and attribute tests ``[attr]``,
  ``[attr=v]``, ``[attr*=v]``, ``[attr^=v]``, ``[attr$=v]``, ``[attr~=v]``, with the value
  bare or quoted and an optional ``i`` flag (case-insensitive value);
- ``[id=...]`` and ``[class...]`` test the ``#id`` and the ``.class`` list of the target;
- no combinators, pseudo-classes or selector lists in an entry (give several entries): they
  raise ``ValueError``. An entry matches when it matches any compound of the target: the
  element or an ancestor the target names (posthog-js also tests the element's parents).

>>> ig = IgnoreList(selectors=[".carousel-next", "[data-noise]"], paths=["/admin/"],
...                 ids=["promo"])
>>> ig.matches("div.carousel-next"), ig.matches("a#promo"), ig.matches("button#pay")
(True, True, False)
>>> ig.matches("button#pay", path="/admin/users"), ig.matches("button#pay", path="/administer")
(True, False)
>>> click_kind("button.qty-plus"), click_kind("p.description"), click_kind("textarea#note")
('stepper', 'text', 'editable')
>>> click_kind("button", text="+"), click_kind("button#pay"), click_kind("div.carousel-next")
('stepper', None, None)
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any, NamedTuple
from urllib.parse import urlsplit

__all__ = ["DEFAULT_STEPPERS", "IgnoreList", "Selector", "click_kind", "compounds",
           "parse_selector", "url_path"]


class Selector(NamedTuple):
    """One compound selector: tag (None: any), id, classes and attribute tests
    ``(name, op, value, case_insensitive)`` (op "" and value None: the attribute exists)."""

    tag: str | None
    id: str | None
    classes: frozenset[str]
    attrs: tuple[tuple[str, str, str | None, bool], ...]


_TOKEN = re.compile(r"""
    (?P<tag>\A(?:[A-Za-z][\w-]*|\*))
  | \#(?P<id>[\w-]+)
  | \.(?P<cls>[\w-]+)
  | \[\s*(?P<attr>[\w:-]+)\s*
      (?:(?P<op>[*^$~|]?=)\s*(?:"(?P<dq>[^"]*)"|'(?P<sq>[^']*)'|(?P<bare>[^\]\s]+))
         \s*(?P<flag>[iIsS])?\s*)?\]
  | (?P<pseudo>::?[\w-]+(?:\([^)]*\))?)
""", re.X)


def _parse(text: str, strict: bool) -> Selector | None:
    tag = sel_id = None
    classes: set[str] = set()
    attrs: list[tuple[str, str, str | None, bool]] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos or (m.group("tag") and pos):
            if strict:
                raise ValueError(f"unsupported selector {text!r} at {text[pos:]!r}")
            return None
        if m.group("pseudo") and strict:
            raise ValueError(f"unsupported selector {text!r}: no pseudo-classes")
        if m.group("tag"):
            tag = None if m.group("tag") == "*" else m.group("tag").lower()
        elif m.group("id"):
            sel_id = m.group("id")
        elif m.group("cls"):
            classes.add(m.group("cls"))
        elif m.group("attr"):
            value = next((v for v in m.group("dq", "sq", "bare") if v is not None), None)
            attrs.append((m.group("attr").lower(), m.group("op") or "", value,
                          (m.group("flag") or "").lower() == "i"))
        pos = m.end()
    return Selector(tag, sel_id, frozenset(classes), tuple(attrs))


def parse_selector(text: str) -> Selector:
    """One compound selector of the supported subset (module docstring); ``ValueError`` for
    anything else.

    >>> parse_selector("button.qty-plus[aria-label*=increase i]")
    Selector(tag='button', id=None, classes=frozenset({'qty-plus'}), \
attrs=(('aria-label', '*=', 'increase', True),))
    >>> parse_selector("div > a")
    Traceback (most recent call last):
    ValueError: unsupported selector 'div > a' at ' > a'
    """
    found = _parse(text.strip(), strict=True)
    assert found is not None
    return found


def _split(target: str) -> list[str]:
    """The compounds of a target, split at combinators outside brackets and quotes."""
    parts: list[str] = []
    cur: list[str] = []
    depth, quote = 0, ""
    for ch in target:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'" and depth:
            quote = ch
        elif ch == "[":
            depth += 1
        elif ch == "]":
            depth = max(0, depth - 1)
        elif not depth and (ch.isspace() or ch in ">+~"):
            if cur:
                parts.append("".join(cur))
                cur = []
            continue
        cur.append(ch)
    if cur:
        parts.append("".join(cur))
    return parts


@lru_cache(maxsize=4096)
def compounds(target: str) -> tuple[Selector, ...]:
    """The compounds a target string names, the clicked element last; parts that are not
    selectors (free text) are left out. Cached: a shop has a few hundred distinct targets.

    >>> [c.tag for c in compounds("div.cart > button#plus.qty")]
    ['div', 'button']
    """
    found = (_parse(part, strict=False) for part in _split(target))
    return tuple(c for c in found if c is not None)


def _attr(c: Selector, name: str) -> str | None:
    if name == "id":
        return c.id if c.id is not None else _plain_attr(c, name)
    if name == "class":
        return " ".join(sorted(c.classes)) if c.classes else _plain_attr(c, name)
    return _plain_attr(c, name)


def _plain_attr(c: Selector, name: str) -> str | None:
    for n, _, value, _ in c.attrs:
        if n == name:
            return "" if value is None else value
    return None


def _test(have: str, op: str, want: str, fold: bool) -> bool:
    if fold:
        have, want = have.lower(), want.lower()
    if op == "=":
        return have == want
    if op == "*=":
        return want != "" and want in have
    if op == "^=":
        return want != "" and have.startswith(want)
    if op == "$=":
        return want != "" and have.endswith(want)
    if op == "~=":
        return want in have.split()
    if op == "|=":
        return have == want or have.startswith(want + "-")
    return False


def _matches(pattern: Selector, c: Selector) -> bool:
    if pattern.tag is not None and pattern.tag != c.tag:
        return False
    if pattern.id is not None and pattern.id != c.id:
        return False
    if not pattern.classes <= c.classes:
        return False
    for name, op, value, fold in pattern.attrs:
        have = _attr(c, name)
        if have is None or (op and not _test(have, op, value or "", fold)):
            return False
    return True


def selector_matches(patterns: Iterable[Selector], target: str | None) -> bool:
    """Whether any pattern matches any compound of ``target``.

    >>> selector_matches([parse_selector("[class*=qty]")], "button.qty-minus")
    True
    """
    if not target:
        return False
    parts = compounds(target)
    return any(_matches(p, c) for p in patterns for c in parts)


def url_path(url: str | None) -> str | None:
    """The path of a URL or path (``None`` stays ``None``).

    >>> url_path("https://shop.example.com/cart?x=1"), url_path("/p/1")
    ('/cart', '/p/1')
    """
    if not url:
        return None
    if url.startswith("/"):
        return url.split("?", 1)[0].split("#", 1)[0]
    return urlsplit(url).path or "/"


class IgnoreList:
    """What one detector skips (see the module). Empty lists ignore nothing.

    Parameters
    ----------
    selectors
        Compound CSS selectors matched against an event's target element (the subset in the
        module docstring); ``ValueError`` at construction for anything else.
    paths
        Page paths: with ``*``, ``?`` or ``[`` a glob over the whole path (``*`` crosses
        ``/``: ``/p/*/reviews``), else a prefix at a ``/`` boundary (``/admin`` is
        ``/admin`` and ``/admin/...``, not ``/administer``). Query and fragment are left out.
    ids
        Element ids: a target whose ``#id`` (or ``[id=...]``) is one of them, or a target
        that is the bare id itself (some sources send the id alone).
    """

    def __init__(self, selectors: Iterable[str] = (), paths: Iterable[str] = (),
                 ids: Iterable[str] = ()) -> None:
        self.selectors = tuple(selectors)
        self.paths = tuple(paths)
        self.ids = frozenset(ids)
        self._patterns = tuple(parse_selector(s) for s in self.selectors)
        globs = [p for p in self.paths if any(ch in p for ch in "*?[")]
        self._globs = tuple(re.compile(fnmatch.translate(g)) for g in globs)
        self._prefixes = tuple(p.rstrip("/") for p in self.paths if p not in globs)

    @classmethod
    def from_spec(cls, spec: IgnoreList | Mapping[str, Any] | None) -> IgnoreList | None:
        """An ignore list from ``{"selectors": [...], "paths": [...], "ids": [...]}`` (the
        settings' form); None or an empty one: None (nothing to check)."""
        if spec is None or isinstance(spec, IgnoreList):
            return spec if spec else None
        unknown = set(spec) - {"selectors", "paths", "ids"}
        if unknown:
            raise ValueError(f"unknown ignore-list keys {sorted(unknown)}; "
                             "one of ['ids', 'paths', 'selectors']")
        found = cls(spec.get("selectors", ()), spec.get("paths", ()), spec.get("ids", ()))
        return found if found else None

    def __bool__(self) -> bool:
        return bool(self.selectors or self.paths or self.ids)

    def __repr__(self) -> str:
        return (f"IgnoreList(selectors={list(self.selectors)}, paths={list(self.paths)}, "
                f"ids={sorted(self.ids)})")

    def matches_target(self, target: str | None) -> bool:
        """Whether the element ``target`` is ignored."""
        if not target:
            return False
        if self.ids:
            if target in self.ids:
                return True
            if any(_attr(c, "id") in self.ids for c in compounds(target)):
                return True
        return bool(self._patterns) and selector_matches(self._patterns, target)

    def matches_path(self, url: str | None) -> bool:
        """Whether the page at ``url`` (a URL or a path) is ignored."""
        if not self.paths:
            return False
        path = url_path(url)
        if path is None:
            return False
        if any(g.match(path) for g in self._globs):
            return True
        return any(path == p or path.startswith(p + "/") or (p == "" and path.startswith("/"))
                   for p in self._prefixes)

    def matches(self, target: str | None = None, path: str | None = None) -> bool:
        """Whether an event on ``target`` at ``path`` is ignored."""
        return self.matches_target(target) or self.matches_path(path)


#: Targets that are +/- quantity steppers, built to be clicked repeatedly: posthog-js ignores
#: rage clicks on elements whose text or aria-label is exactly "+", "-", "−" or "–"
#: (``DEFAULT_CONTENT_IGNORELIST_WITH_STEPPERS``); selectors, which our targets are, say it
#: by the names shops give them: classes like ``qty-plus``, ``quantity-minus``, ``stepper``,
#: aria-labels like "Increase quantity", and number inputs' spin buttons.
DEFAULT_STEPPERS: tuple[str, ...] = (
    "input[type=number i]", "[class*=qty]", "[class*=quantity]", "[class*=stepper]",
    "[class*=increment]", "[class*=decrement]", "[aria-label*=increase i]",
    "[aria-label*=decrease i]", "[aria-label*=increment i]", "[aria-label*=decrement i]",
)
_STEPPER_PATTERNS = tuple(parse_selector(s) for s in DEFAULT_STEPPERS)
#: posthog-js's stepper keywords, matched against the element's text exactly (so "sign-up"
#: and "C++" are not steppers).
_STEPPER_TEXT = frozenset({"+", "-", "−", "–"})
#: A stepper's accessible name as some sources send it for the text (a Snowplow button label
#: set to the aria-label): the words the aria-label selectors above look for.
_STEPPER_NAME = re.compile(r"\b(increase|decrease|increment|decrement)\b", re.IGNORECASE)
#: Input types on which rapid clicks select text (posthog-js ``TEXT_SELECTION_INPUT_TYPES``).
_TEXT_INPUT_TYPES = frozenset({"", "text", "search", "email", "password", "url", "tel",
                               "number"})
#: Elements that hold text and do nothing when clicked: a double click there selects a word, a
#: triple click the paragraph. Not ``div`` (shops make clickable divs) nor ``label``.
_TEXT_TAGS = frozenset({"p", "span", "h1", "h2", "h3", "h4", "h5", "h6", "li", "td", "th",
                        "dd", "dt", "blockquote", "pre", "code", "em", "strong", "b", "i",
                        "small", "figcaption", "caption", "article", "section"})


@lru_cache(maxsize=4096)
def _target_kind(target: str) -> str | None:
    parts = compounds(target)
    if not parts:
        return None
    if selector_matches(_STEPPER_PATTERNS, target):
        return "stepper"
    el = parts[-1]
    editable = _plain_attr(el, "contenteditable")
    if el.tag == "textarea" or editable in ("", "true"):
        return "editable"
    if el.tag == "input":
        if (_plain_attr(el, "type") or "").lower() in _TEXT_INPUT_TYPES:
            return "editable"
        return None
    if el.tag in _TEXT_TAGS and _plain_attr(el, "role") is None \
            and _plain_attr(el, "onclick") is None:
        return "text"
    return None


def click_kind(target: str | None, text: str | None = None) -> str | None:
    """What a click's element is for repeated clicks: "stepper" (a +/- quantity stepper),
    "editable" (a text-editing surface: textarea, text-like input, contenteditable, where
    posthog-js's ``ignore_text_selection`` applies), "text" (an element holding text that
    does nothing when clicked), or None (anything else). ``text``: the element's text or
    aria-label, when the source sends it."""
    if text is not None and (text.strip() in _STEPPER_TEXT or _STEPPER_NAME.search(text)):
        return "stepper"
    return _target_kind(target) if target else None
