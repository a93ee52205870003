"""Privacy at the edge: personal data is redacted before anything reaches a Kafka topic.

Pure (no I/O). The normalize stage (``streams.normalize``, which the collector, the bulk ingest
stage and the backtest share) applies a ``Privacy`` to every canonical event the adapters
build and to every dead letter it writes (its detail and its original bytes), so every
source is covered once, in one place.

What is replaced, in any string (free text, URLs, ids, traits, tags):

- email addresses (also percent-encoded, ``a%40b.com``): ``[email]``;
- card numbers: 13 to 19 digits, single spaces or dashes between groups, replaced only when
  the Luhn check passes (so most order ids and timestamps survive): ``[card]``;
- phone numbers: ``+`` and 8 to 15 digits (E.164, separators allowed), or 10 to 13 digits in
  three or more groups of at most 5 (``(555) 123-4567``, ``020 7946 0958``, ``06 12 34 56
  78``), never a date, an IPv4 address or a decimal pair such as coordinates: ``[phone]``;
- in URL query strings and fragments (and ``key=value`` text): the value of a sensitive key
  (``token``, ``password``, ``api_key``, ``session``, ``email``, ``code``...:
  ``SENSITIVE_URL_KEYS``) and any value that holds one of the above once percent-decoded:
  ``[redacted]``;
- bearer tokens and JWTs in free text (``Bearer ...``, ``eyJ...``): ``[redacted]``.

Ids (``id``, ``session_id``, ``customer_id``, ``ticket_id``...) holding one of these are not
masked but replaced with a keyed hash (``pii:`` and 16 hex digits), so a customer whose id is
an email address stays one customer. Trait and JSON keys named like secrets (``password``,
``api_key``, ``*token``, ``writeKey``...; ``SENSITIVE_KEYS``) have their values replaced
whatever they are. Numbers (JSON numbers, not strings) are never touched: they are prices,
times and counts.

``allow`` names properties never touched (a canonical field, a trait key, a JSON key or a URL
query key); ``deny`` names properties always dropped (an optional field becomes empty, a
required text field ``[redacted]``, a key is removed, a query value ``[redacted]``). Names
match case-insensitively, ignoring ``_`` and ``-``. The core ids and times (``id``, ``time``,
``session_id``, ``customer_id``) cannot be denied: every stage keys on them.

>>> p = Privacy()
>>> p.text("mail jo.doe+x@example.com or call +44 20 7946 0958, card 4111 1111 1111 1111")
'mail [email] or call [phone], card [card]'
>>> p.text("/reset?token=abc123&utm_source=news")
'/reset?token=[redacted]&utm_source=news'
>>> p.text("order 1234567890123 on 2026-01-01 at 12.99 EUR")  # Luhn fails: not a card
'order 1234567890123 on 2026-01-01 at 12.99 EUR'
"""

from __future__ import annotations

import functools
import hashlib
import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import unquote_plus

import msgspec

from detectors import events as ev

__all__ = ["CARD", "EMAIL", "PHONE", "REDACTED", "SENSITIVE_KEYS", "SENSITIVE_URL_KEYS",
           "Privacy", "luhn_ok"]

EMAIL: Final = "[email]"
CARD: Final = "[card]"
PHONE: Final = "[phone]"
REDACTED: Final = "[redacted]"

#: Keys whose value is a secret wherever they appear (traits, JSON objects, URL queries),
#: normalized (lower case, no ``_`` or ``-``); keys ending in ``token``, ``secret`` or
#: ``password`` are sensitive too. ``writekey``: Segment's credential in its payloads.
SENSITIVE_KEYS: Final = frozenset({
    "password", "passwd", "pwd", "secret", "clientsecret", "token", "accesstoken",
    "refreshtoken", "idtoken", "authtoken", "apikey", "apisecret", "authorization", "writekey",
    "cardnumber", "ccnumber", "cvv", "cvc", "ssn", "otp", "jwt",
})
#: Keys sensitive in URL query strings only, where they carry session tokens, one-time codes,
#: signatures and contact details (``code``: OAuth's authorization code; ``key``: API keys
#: such as Google's). In JSON they are ordinary (a coupon's ``code``, an envelope's ``key``).
SENSITIVE_URL_KEYS: Final = SENSITIVE_KEYS | frozenset({
    "key", "auth", "session", "sessionid", "sid", "code", "email", "mail", "phone", "tel",
    "mobile", "sig", "signature", "card", "cc", "pass",
})
_SENSITIVE_SUFFIXES = ("token", "secret", "password")

#: Most texts one ``Privacy`` remembers as clean (then it forgets them all and starts over):
#: a site's distinct page URLs, titles and selectors in a busy hour fit, and the set stays a
#: few MiB at most (texts are bounded at 4 KiB, most are under 100 bytes).
_CLEAN_MAX = 50_000

#: Canonical fields that are ids: replaced by a keyed hash, not masked (joins must hold).
_ID_FIELDS = frozenset({"id", "session_id", "customer_id", "ticket_id", "order_id",
                        "product_id"})
#: Fields no list may drop: every stage keys or orders on them.
_CORE_FIELDS = frozenset({"id", "time", "session_id", "customer_id"})

# Whether a string needs the passes below at all; nearly every string does not (titles,
# selectors, paths without a query). Substring tests run at memchr speed; one regex with an
# alternation cost 4 us a 76-character URL (measured), one led by a character class 1.6 us.
# The digit test is implied by every card and phone: a digit, then 7 more characters that are
# digits or separators.
_DIGIT_RUN = re.compile(r"[0-9][0-9 .()+-]{7}")
#: Every byte but the ASCII digits: ``bytes.translate`` deletes them at C speed.
_NON_DIGITS = bytes(c for c in range(256) if not 0x30 <= c <= 0x39)


def _maybe(text: str) -> bool:
    """Whether ``text`` may hold anything to redact (False: it certainly does not). Even a
    regex scan costs microseconds a string on the measuring machine: digits are counted
    first (a card or phone has at least 8), in C."""
    if ("@" in text or "=" in text or "%" in text or "earer" in text or "EARER" in text
            or "eyJ" in text):
        return True
    digits = text.encode("utf-8", "surrogatepass").translate(None, _NON_DIGITS)
    return len(digits) >= 8 and _DIGIT_RUN.search(text) is not None


# An event's own id is new with every event (the other ids repeat and are remembered once
# scanned): scanning each for numbers cost more than all the free text (measured). It is
# scanned when it holds a character ids do not (an email's "@", a phone's "+" or "(", a space,
# a query's "=" or "?", percent-encoding) or when it begins with a digit (an id that is a
# phone or card number). Not found there, by design: a number glued inside it with none of
# these ("msg-4111111111111111"), a JWT.
def _id_maybe(value: str) -> bool:
    """Whether an id needs scanning (``events`` has these tests inline: its hot path)."""
    return ("@" in value or "%" in value or "+" in value or " " in value or "(" in value
            or "=" in value or "?" in value or "#" in value or "0" <= value[:1] <= "9")


# The local part starts where a run of its characters starts (and is at most 64 of them, RFC
# 5321): a regex free to start anywhere in a long run is quadratic in it.
_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+'!#$*^`{|}~-])[A-Za-z0-9._%+'!#$*^`{|}~-]{1,64}(?:@|%40)"
    r"(?![0-9]+x\.)"  # not a retina image name: logo@2x.png
    r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,63}(?![A-Za-z0-9-])")
# A run of digit groups with short separators between them, not part of a word (hex ids such
# as "5494007560675c4e" hold Luhn-valid runs): each run is split into its groups and the
# windows of groups checked for a card, then a phone (``_number``).
_NUMBER = re.compile(r"(?<![A-Za-z0-9_])\+?\(?[0-9](?:[ .()-]{0,2}[0-9])+(?![A-Za-z0-9_])")
_GROUP = re.compile(r"[0-9]+")
_DATE = re.compile(r"(?:19|20)[0-9]{2}[-/.][0-9]{1,2}[-/.][0-9]{1,2}"
                   r"|[0-9]{1,2}[-/.][0-9]{1,2}[-/.](?:19|20)[0-9]{2}")
# A key=value pair after a URL's "?", "&", ";" or "#", or at the start of a word.
_KEYS = re.compile(r"[?&;#\s]([^=&;#?\s]{1,64})=")
_LEAD_KEY = re.compile(r"([^=&;#?\s]{1,64})=")
_PARAM = re.compile(r"(^|[?&;#\s])([^=&;#?\s]{1,64})=([^&;#?\s]*)")
_TOKEN = re.compile(r"(?i:(bearer)\s+)[A-Za-z0-9._~+/-]{8,}=*"
                    r"|eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
# Ids the GA4 adapter derives (``streams.adapters.ga4``: a hash of the client id and time) hold
# nothing personal, but one in 20 or so is 16 decimal digits that pass the Luhn check.
_DERIVED_ID = re.compile(r"ga4:[0-9a-f]{16}")
_JSON_ESCAPE = re.compile(r"\\u00([0-9a-fA-F]{2})")


_TEXT, _ALLOWED, _DENIED, _SECRET = range(4)
#: JSON leaves (a dict holding only these, under text keys, is redacted in one pass).
_PLAIN = frozenset({str, int, float, bool, type(None)})


def luhn_ok(digits: str) -> bool:
    """Whether a string of digits passes the Luhn check (every card number does).

    >>> luhn_ok("4111111111111111"), luhn_ok("4111111111111112")
    (True, False)
    """
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = ord(c) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _norm_key(key: str) -> str:
    return key.lower().replace("_", "").replace("-", "")


def _sensitive(key: str, url: bool) -> bool:
    return key in (SENSITIVE_URL_KEYS if url else SENSITIVE_KEYS) or key.endswith(
        _SENSITIVE_SUFFIXES)


def _is_phone(text: str, spans: list[tuple[int, int]], seps: list[str], i: int, j: int,
              digits: int, plus: bool) -> bool:
    """Whether groups ``i..j`` are a phone number (their group sizes already fit)."""
    if not (8 <= digits <= 15 if plus else 10 <= digits <= 13):
        return False
    # Dotted phones (555.123.4567) use dots only; "37.7749 -122.4194" is a place and
    # "192.168.100.200" an address.
    between = seps[i:j]
    if any("." in s for s in between) and (any(s != "." for s in between) or (
            j - i == 3 and all(b - a <= 3 for a, b in spans[i:j + 1]))):
        return False
    return _DATE.search(text, spans[i][0], spans[j][1]) is None


def _reach(sizes: list[int], seps: list[str], lo: int, hi: int, card: bool) -> list[int]:
    """For each group, the last group of the longest run from it whose groups all have
    ``lo..hi`` digits (and, for cards, single spaces or dashes between them)."""
    n = len(sizes)
    reach = list(range(n))
    for k in range(n - 2, -1, -1):
        if lo <= sizes[k] <= hi and lo <= sizes[k + 1] <= hi and (
                not card or seps[k] in (" ", "-")):
            reach[k] = reach[k + 1]
    return reach


def _number(m: re.Match[str]) -> str:
    """The digit run with its cards and phones replaced (left to right, longest first).

    Every window of groups is a candidate, but the group-size rules are known per group in
    one pass first (``_reach``), so a hostile run ("1 1 1 ...") costs a few steps per group.
    Cards are printed in groups of 3 to 6 digits (4-4-4-4, Amex 4-6-5, 4-4-4-4-3) or in one;
    national phones in groups of 2 to 5 after the first (of up to 5).
    """
    text = m.group()
    spans = [g.span() for g in _GROUP.finditer(text)]
    sizes = [b - a for a, b in spans]
    seps = [text[spans[k][1]:spans[k + 1][0]] for k in range(len(spans) - 1)]
    card_reach = _reach(sizes, seps, 3, 6, card=True)
    phone_reach = _reach(sizes, seps, 2, 5, card=False)
    out: list[str] = []
    done = 0  # text[:done] is in ``out``
    i = 0
    while i < len(spans):
        start = spans[i][0]
        plus = text[max(0, start - 2):start].endswith(("+", "+("))
        # The first group of a national phone may be short ("1-800-..."); the rest may not.
        phone_to = i if i + 1 >= len(spans) else phone_reach[i + 1]
        if not (plus or sizes[i] >= 13 or card_reach[i] > i
                or (sizes[i] <= 5 and phone_to >= i + 2)):
            i += 1
            continue
        ends: list[tuple[int, int]] = []  # (last group, digits) of the windows from i
        digits = 0
        for j in range(i, len(spans)):
            digits += sizes[j]
            if digits > 19:  # longer than any card or phone: stop (bounded work)
                break
            ends.append((j, digits))
        found = None
        for j, n in reversed(ends):
            if n >= 13 and (j == i or j <= card_reach[i]) and luhn_ok(
                    "".join(text[a:b] for a, b in spans[i:j + 1])):
                found = (CARD, j)
                break
        if found is None:
            for j, n in reversed(ends):
                if (plus or (sizes[i] <= 5 and j - i >= 2 and j <= phone_to)) and _is_phone(
                        text, spans, seps, i, j, n, plus):
                    found = (PHONE, j)
                    # The "+" and an area code's "(" belong to the number.
                    if plus:
                        start = text.rindex("+", 0, start)
                    elif text[start - 1:start] == "(":
                        start -= 1
                    break
        if found is None:
            i += 1
            continue
        mark, j = found
        out.append(text[done:start])
        out.append(mark)
        done = spans[j][1]
        i = j + 1
    if not out:
        return text
    out.append(text[done:])
    return "".join(out)


def _plain(text: str) -> str:
    """``text`` with its emails, cards, phones and bearer tokens replaced (not URL params)."""
    if "earer" in text or "EARER" in text or "eyJ" in text:
        text = _TOKEN.sub(lambda m: f"{m.group(1)} {REDACTED}" if m.group(1) else REDACTED,
                          text)
    if "@" in text or "%40" in text:
        text = _EMAIL.sub(EMAIL, text)
    return _NUMBER.sub(_number, text)


@dataclass(frozen=True, slots=True)
class _Plan:
    #: the values of an event's ids but its own, as a tuple
    ids: Callable[[Any], tuple[Any, ...]]
    #: the values of its text fields, as a tuple
    texts: Callable[[Any], tuple[Any, ...]]
    #: the fields ``ids`` fetches
    id_names: tuple[str, ...]
    #: the fields ``texts`` fetches
    text_names: tuple[str, ...]
    #: (field, "drop", "mask", "dict" or "tuple"): denied fields, traits, tags
    other: tuple[tuple[str, str], ...]
    #: ids and texts in one call (the common path: all of them seen clean before)
    both: Callable[[Any], tuple[Any, ...]]


def _getter(names: list[str]) -> Callable[[Any], tuple[Any, ...]]:
    if len(names) > 1:
        return operator.attrgetter(*names)
    if names:
        one = operator.attrgetter(names[0])
        return lambda e: (one(e),)
    return _nothing


def _nothing(event: Any) -> tuple[Any, ...]:
    return ()


@functools.cache
def _fields(cls: type) -> tuple[tuple[str, str, bool], ...]:
    """(name, "text", "dict" or "tuple", required) of every field of ``cls`` that can hold
    text: strings, dicts (traits) and tuples (tags); numbers, booleans and literals can not."""
    out = []
    for f in msgspec.inspect.type_info(cls).fields:  # type: ignore[attr-defined]
        types = f.type.types if isinstance(f.type, msgspec.inspect.UnionType) else (f.type,)
        for kind, t in (("text", msgspec.inspect.StrType), ("dict", msgspec.inspect.DictType),
                        ("tuple", msgspec.inspect.VarTupleType)):
            if any(isinstance(x, t) for x in types):
                out.append((f.name, kind, f.required))
                break
    return tuple(out)


@dataclass(frozen=True)
class Privacy:
    """How personal data is redacted (see the module docstring).

    Parameters
    ----------
    enabled
        False: nothing is changed (``FRICTIONWATCH_PRIVACY_REDACT=false``).
    allow
        Property names never touched (``FRICTIONWATCH_PRIVACY_ALLOW``).
    deny
        Property names always dropped (``FRICTIONWATCH_PRIVACY_DENY``).
    salt
        Key of the hash that replaces ids holding personal data
        (``FRICTIONWATCH_CUSTOMER_SALT``: set it so the hashes cannot be recomputed).

    >>> from detectors.events import Identify
    >>> p = Privacy(deny=("plan",))
    >>> e = Identify(id="e1", time=1.0, session_id="s", customer_id="c1",
    ...              traits={"email": "a@b.io", "plan": "pro", "api_key": 42})
    >>> p.event(e).traits
    {'email': '[email]', 'api_key': '[redacted]'}
    >>> Privacy(allow=("email",)).event(e).traits["email"]
    'a@b.io'
    """

    enabled: bool = True
    allow: Iterable[str] = ()
    deny: Iterable[str] = ()
    salt: str = ""
    _allow: frozenset[str] = field(init=False, repr=False)
    _deny: frozenset[str] = field(init=False, repr=False)
    _plans: dict[type, _Plan] = field(init=False, repr=False)
    _verdicts: dict[str, bool] = field(init=False, repr=False)
    _key_kinds: dict[str, int] = field(init=False, repr=False)
    _clean: set[str | None] = field(init=False, repr=False)
    _clean_ids: set[str | None] = field(init=False, repr=False)
    _fast: dict[type, Callable[[Any], tuple[Any, ...]]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        allow = frozenset(_norm_key(k) for k in self.allow)
        deny = frozenset(_norm_key(k) for k in self.deny) - allow
        object.__setattr__(self, "allow", tuple(self.allow))
        object.__setattr__(self, "deny", tuple(self.deny))
        object.__setattr__(self, "_allow", allow)
        object.__setattr__(self, "_deny", deny)
        object.__setattr__(self, "_verdicts", {})
        object.__setattr__(self, "_key_kinds", {})
        object.__setattr__(self, "_clean", {None})
        object.__setattr__(self, "_clean_ids", {None})
        object.__setattr__(self, "_plans", {cls: self._plan(cls)
                                            for cls in ev.EVENT_TYPES.values()})
        object.__setattr__(self, "_fast", {cls: plan.both for cls, plan in self._plans.items()
                                           if not plan.other})

    # --- strings ----------------------------------------------------------------------------

    def text(self, text: str) -> str:
        """``text`` with personal data replaced; the very same object when there is none."""
        if not self.enabled or not _maybe(text):
            return text
        if "=" in text:
            if not ("@" in text or "%" in text or "earer" in text or "EARER" in text
                    or "eyJ" in text or _DIGIT_RUN.search(text)):
                # Only the keys can matter (a fifth of page URLs carry utm or click ids):
                # read them in one C call before any per-parameter work.
                keys = _KEYS.findall(text)
                lead = _LEAD_KEY.match(text)
                if lead is not None:
                    keys.append(lead.group(1))
                if not any(map(self._secret_key, keys)):
                    return text
            out = _PARAM.sub(self._param, text)
        else:
            out = text
        out = _plain(out)
        return out if out != text else text

    def _secret_key(self, key: str) -> bool:
        """Whether a URL query key's value is redacted whatever it is (memoized: a site's
        URLs use a few dozen keys; bounded, as keys come from senders)."""
        hit = self._verdicts.get(key)
        if hit is None:
            name = _norm_key(key)
            hit = name not in self._allow and (name in self._deny or _sensitive(name, True))
            if len(self._verdicts) < 4096:
                self._verdicts[key] = hit
        return hit

    def _param(self, m: re.Match[str]) -> str:
        lead, key, value = m.groups()
        name = _norm_key(key)
        if name in self._allow or not value:
            return m.group()
        if name in self._deny or _sensitive(name, url=True):
            return f"{lead}{key}={REDACTED}"
        decoded = unquote_plus(value) if "%" in value or "+" in value else value
        if _maybe(decoded) and _plain(decoded) != decoded:
            return f"{lead}{key}={REDACTED}"
        return m.group()

    def ident(self, value: str, quick: bool = False) -> str:
        """An id as it is, or a keyed hash of it when it holds personal data. ``quick``: only
        when ``_id_maybe`` finds a reason to look (an event's own id, new with every event);
        other ids are scanned whole, once per distinct value (``event`` remembers them).

        >>> Privacy().ident("s1"), Privacy().ident("jo@example.com")[:4]
        ('s1', 'pii:')
        >>> Privacy().ident("ticket:4111111111111111")[:4]
        'pii:'
        """
        if (not self.enabled or (quick and not _id_maybe(value)) or self.text(value) is value
                or _DERIVED_ID.fullmatch(value)):
            return value
        digest = hashlib.blake2b(value.encode(errors="surrogatepass"), digest_size=8,
                                 key=self.salt.encode()[:64]).hexdigest()
        return "pii:" + digest

    # --- canonical events ---------------------------------------------------------------------

    def _plan(self, cls: type) -> _Plan:
        """How each field of ``cls`` that can hold text is redacted (allowed ones are not)."""
        strings, other = [], []
        for name, kind, required in _fields(cls):
            if name in _CORE_FIELDS:
                strings.append((name, "id"))
            elif _norm_key(name) in self._allow:
                continue
            elif _norm_key(name) in self._deny:
                other.append((name, "mask" if required else "drop"))
            elif kind == "text":
                strings.append((name, "id" if name in _ID_FIELDS else "text"))
            else:
                other.append((name, kind))
        # The event's own id is tested apart (``event``); the other ids, then the texts, are
        # fetched together, one C call each (a tuple even for one name or none).
        strings.sort(key=lambda item: (item[0] != "id", item[1] != "id"))
        ids = [name for name, how in strings[1:] if how == "id"]
        texts = [name for name, how in strings if how == "text"]
        return _Plan(_getter(ids), _getter(texts), tuple(ids), tuple(texts), tuple(other),
                     _getter([*ids, *texts]))

    def event(self, event: Any) -> Any:
        """The event with personal data replaced (the same object when there is none)."""
        return self.events([event])[0]

    def events(self, events: list[Any]) -> list[Any]:
        """Each event with personal data replaced; the same list when nothing changed."""
        if not self.enabled:
            return events
        # The common case is tested here, inline, not in a method per event: in the backtest
        # each Python call on this path cost ~0.3 us of ~2.3 us an event (caches cold between
        # messages, measured), and most messages hold one event. An event passes when its
        # own id needs no look (``_id_maybe``'s tests) and, in one getter and one set test,
        # every other id and text was seen clean before (``_clean`` holds the ids found clean
        # as texts too). Events with traits, tags or denied fields (``_Plan.other``) never do.
        fast = self._fast
        clean = self._clean
        out = None
        for i, e in enumerate(events):
            both = fast.get(type(e))
            if both is not None:
                first = e.id
                if type(first) is not str or not (
                        "@" in first or "%" in first or "+" in first or " " in first
                        or "(" in first or "=" in first or "?" in first or "#" in first
                        or "0" <= first[:1] <= "9"):
                    try:
                        if clean.issuperset(both(e)):
                            continue
                    except TypeError:
                        pass
            new = self._redact(e)
            if new is not e:
                if out is None:
                    out = list(events)
                out[i] = new
        return events if out is None else out

    def _redact(self, event: Any) -> Any:
        """``event`` redacted, the long way (``events`` tried the common case)."""
        plan = self._plans[type(event)]
        first = event.id
        first_ok = type(first) is not str or not _id_maybe(first)
        ids = plan.ids(event)
        texts = plan.texts(event)
        # Texts and most ids repeat (a site has so many pages, titles and referrers, a
        # session many events): those seen clean are remembered, and one C call tests them
        # all. The event's own id is new each time: a few substring tests.
        clean = self._clean
        clean_ids = self._clean_ids
        try:
            texts_seen = clean.issuperset(texts)
            ids_seen = clean_ids.issuperset(ids)
        except TypeError:  # an adapter put something unhashable in a text field
            texts_seen = ids_seen = False
        if texts_seen and ids_seen and first_ok and not plan.other:
            return event
        # Only what the tests above did not clear is looked at.
        changes: dict[str, Any] = {}
        if not first_ok:
            new = self.ident(first, quick=True)
            if new is not first:
                changes["id"] = new
        for names, values, known, seen in ((plan.id_names, ids, clean_ids, ids_seen),
                                           (plan.text_names, texts, clean, texts_seen)):
            if seen:
                continue
            for name, value in zip(names, values, strict=True):
                if type(value) is not str or value in known:
                    continue
                new = self.ident(value) if known is clean_ids else self.text(value)
                if new is not value:
                    changes[name] = new
                else:
                    if len(known) >= _CLEAN_MAX:
                        known.clear()
                        known.add(None)
                    known.add(value)
                    if known is clean_ids and _DERIVED_ID.fullmatch(value) is None:
                        # Clean as an id and not by its derived form: clean as a text too,
                        # so the one-test path above knows it.
                        if len(clean) >= _CLEAN_MAX:
                            clean.clear()
                            clean.add(None)
                        clean.add(value)
        for name, how in plan.other:
            value = getattr(event, name)
            if value is None:
                continue
            repl: Any
            if how == "drop":
                repl = None
            elif how == "mask":
                repl = REDACTED
            elif how == "dict":
                repl = self.json(value) if type(value) is dict else value
            elif type(value) is not tuple:
                repl = value
            else:  # a tuple of labels
                repl = tuple(self.text(t) if type(t) is str else t for t in value)
                repl = value if repl == value else repl
            if repl is not value:
                changes[name] = repl
        return msgspec.structs.replace(event, **changes) if changes else event

    # --- JSON and raw bytes (dead letters) ------------------------------------------------

    def json(self, value: Any) -> Any:
        """A decoded JSON value with personal data replaced (sensitive and denied keys
        too); the same object when nothing changed. Iterative: no depth is too deep.

        >>> Privacy().json({"user": {"email": "a@b.io", "password": "hunter2"}, "n": 5})
        {'user': {'email': '[email]', 'password': '[redacted]'}, 'n': 5}
        """
        if not self.enabled:
            return value
        if type(value) is str:
            return self.text(value)
        if type(value) is dict:
            flat = self._flat(value)
            if flat is not None:
                return flat
        if type(value) not in (dict, list) or not self._json_maybe(value):
            return value
        # Copy-on-write would need parents' bookkeeping; a changed document is rare (dead
        # letters and traits), so the copy is made first and thrown away when unchanged.
        root = msgspec.json.decode(msgspec.json.encode(value))
        changed = False
        stack = [root]
        while stack:
            node = stack.pop()
            if type(node) is dict:
                for key in list(node):
                    name = _norm_key(key) if type(key) is str else ""
                    if name in self._allow:
                        continue
                    if name in self._deny:
                        del node[key]
                        changed = True
                        continue
                    v = node[key]
                    if _sensitive(name, url=False) and v not in (None, "", REDACTED):
                        node[key] = REDACTED
                        changed = True
                    elif type(v) is str:
                        new = self.text(v)
                        if new is not v:
                            node[key] = new
                            changed = True
                    elif type(v) in (dict, list):
                        stack.append(v)
            else:
                for i, v in enumerate(node):
                    if type(v) is str:
                        new = self.text(v)
                        if new is not v:
                            node[i] = new
                            changed = True
                    elif type(v) in (dict, list):
                        stack.append(v)
        return root if changed else value

    def _flat(self, value: dict[Any, Any]) -> dict[Any, Any] | None:
        """``json`` of a dict of text keys and plain values (traits nearly always are), in one
        pass: only a changed dict is copied, and shallowly (the general path walks it twice
        and copies it through JSON: 16 us an Identify, measured). None: not such a dict."""
        changes: list[tuple[str, str | None]] = []
        kinds = self._key_kinds
        # Texts known clean (``event`` remembers them: a tier or plan name repeats).
        clean = self._clean
        for key, v in value.items():
            t = type(v)
            if type(key) is not str or t not in _PLAIN:
                return None
            kind = kinds.get(key)
            if kind is None:
                kind = self._key_kind(key)
            if kind == _ALLOWED:
                continue
            if kind == _DENIED:
                changes.append((key, None))
            elif kind == _SECRET and v not in (None, "", REDACTED):
                changes.append((key, REDACTED))
            elif t is str and v not in clean:
                text = self.text(v)
                if text is not v:
                    changes.append((key, text))
                else:
                    if len(clean) >= _CLEAN_MAX:
                        clean.clear()
                        clean.add(None)
                    clean.add(v)
        if not changes:
            return value
        out = dict(value)
        for key, new in changes:
            if new is None:
                del out[key]
            else:
                out[key] = new
        return out

    def _key_kind(self, key: str) -> int:
        """What a JSON key's value gets: ``_ALLOWED``, ``_DENIED``, ``_SECRET`` or ``_TEXT``
        (memoized: traits use a few dozen keys, each normalized and tested 1 us a time;
        bounded, as keys come from senders)."""
        name = _norm_key(key)
        kind = (_ALLOWED if name in self._allow else _DENIED if name in self._deny
                else _SECRET if _sensitive(name, url=False) else _TEXT)
        if len(self._key_kinds) < 4096:
            self._key_kinds[key] = kind
        return kind

    def _json_maybe(self, value: Any) -> bool:
        """Whether ``json`` may change ``value`` (a walk, no copy: traits rarely change)."""
        stack = [value]
        while stack:
            node = stack.pop()
            items = node.items() if type(node) is dict else ((None, v) for v in node)
            for key, v in items:
                if type(key) is str:
                    name = _norm_key(key)
                    if name in self._allow:
                        continue
                    if name in self._deny or _sensitive(name, url=False):
                        return True
                if type(v) is str:
                    if _maybe(v):
                        return True
                elif type(v) in (dict, list):
                    stack.append(v)
        return False

    def original(self, data: bytes) -> bytes:
        """Bytes kept in a dead letter, with personal data replaced. JSON is decoded, redacted
        and re-encoded (only when something changed: else the exact bytes stay); anything
        else is redacted as text (JSON's ``\\u00XX`` escapes undone first, invalid UTF-8
        kept as it was).

        >>> Privacy().original(b'{"email":"a@b.io","n":1}')
        b'{"email":"[email]","n":1}'
        >>> Privacy().original(b'{"msg": "call +1 415 555 2671"')  # truncated JSON
        b'{"msg": "call [phone]"'
        """
        if not self.enabled or not data:
            return data
        try:
            doc = msgspec.json.decode(data)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            pass
        else:
            new = self.json(doc)
            return data if new is doc else msgspec.json.encode(new)
        text = data.decode("utf-8", errors="surrogateescape")
        if "\\u00" in text:
            text = _JSON_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)
        out = self.text(text)
        return data if out is text else out.encode("utf-8", errors="surrogateescape")


#: No redaction at all (offline tools over data that never reaches Kafka, and the benches'
#: comparison).
OFF: Final = Privacy(enabled=False)
#: The built-in lists, nothing allowed or denied beyond them.
DEFAULT: Final = Privacy()
