"""Input bounds: how long, how large and how far in time each field of an event may be.

Declared once, here, as ``msgspec`` constrained types that ``detectors.events`` puts on the
canonical structs. Every decode of canonical events (the normalize agent's fast path, the
session and customer agents' ``decode_batch``, ``from_builtins``) therefore enforces them in C
at no extra cost, and ``streams.normalize`` checks what the adapters build (they construct
structs directly, which msgspec does not validate) with the same decoder. A value out of
bounds is a dead letter ``invalid_field`` naming the field, an excerpt of the value and the
limit; it never reaches state, a model or a timer.

Why bounds at all: one unbounded string (a 400,000-character click target) grew a session's
state past the producer's largest request and stopped the worker; one unbounded number
(``step: 1e308``) overflowed a model's scaler; one time past 9999-12-31 made ``datetime``
raise in a timer; two ``revenue: 1e308`` summed to ``inf``, which JSON state cannot store.

=========================================================  ================================
field(s)                                                   limit
=========================================================  ================================
ids: ``id``, ``session_id``, ``customer_id``, ``order_id``,  <= 256 characters
``product_id``, ``ticket_id``
``url``, ``path``, ``referrer``, JS error ``source``         <= 4,096 characters
``target`` (selector), ``title``, ``message``, ``subject``,  <= 2,048 characters
``endpoint``
``field``, ``form``                                          <= 1,024 characters
labels: ``step_name``, ``code``, ``reason``, ``method``,     <= 256 characters
``provider``, ``plan``, ``channel``, ``priority``, ...;
``currency``, ``device``                                     <= 16 characters
ticket ``text``                                              <= 32 KiB
``tags``                                                     <= 100 of <= 256 characters
``traits``                                                   <= 100 keys of <= 256 characters
                                                             (values below)
money: ``revenue``, ``price``, ``amount``, ``cart_value``,   finite, 0 .. 1e9
``mrr``
``quantity``                                                 0 .. 1,000,000
checkout ``step``                                            0 .. 100
``x``, ``y`` (pixels)                                        -1e6 .. 1e6
``lcp_ms``, ``inp_ms``, ``ttfb_ms``                          0 .. 3,600,000 (an hour)
``cls`` (unitless)                                           0 .. 1,000
``status_code``                                              0 .. 999
``time`` (Unix seconds)                                      0 .. 253,370,764,800
                                                             (9999-01-01T00:00:00Z)
session summary: ``seconds``; ``revenue``                    0 .. 1e8 (3 years); 0 .. 1e15
session summary ``friction``                                 <= 64 types of <= 64 chars
=========================================================  ================================

Why these numbers: ids (UUIDs, hashes, numbers) are well under 100 characters; browsers send
URLs of up to a few KB; a selector or an error message is not a document; no single order is
worth a billion; journeys have fewer than ten steps; Web Vitals past an hour are not a page
load. A trait's value is a scalar (strings <= 2,048 characters), or one level of a list or an
object of <= 100 scalars: Segment's spec nests one level (``address``, ``company``). A session
summary's revenue is a sum (up to a million orders of the largest amount).

``time`` stops a year short of ``datetime``'s last second (9999-12-31T23:59:59Z): deadlines
and expiries (at most hours after an event) then still convert to a ``datetime`` everywhere.
At the edge (``streams.normalize``) a window around the wall clock applies too
(``FRICTIONWATCH_MAX_EVENT_AGE`` / ``FRICTIONWATCH_MAX_EVENT_LEAD``).

>>> import msgspec
>>> from detectors.events import decode_event
>>> try:
...     decode_event(b'{"type":"checkout_step_viewed","id":"e","time":1,"session_id":"s",'
...                  b'"step":1e308}')
... except msgspec.ValidationError as exc:
...     print(exc)
Expected `int`, got `float` - at `$.step`
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec

__all__ = [
    "MAX_DEPTH",
    "MAX_MONEY",
    "MAX_MONEY_SUM",
    "MAX_SECONDS",
    "MAX_TIME",
    "Coord",
    "Count",
    "Field",
    "Id",
    "Label",
    "Money",
    "Millis",
    "Scalar",
    "Status",
    "Step",
    "Tags",
    "Text",
    "TicketText",
    "Time",
    "Traits",
    "Url",
    "iso",
    "trait_number_problem",
]

#: Last accepted event time: 9999-01-01T00:00:00Z, a year inside ``datetime``'s range.
MAX_TIME = datetime(9999, 1, 1, tzinfo=UTC).timestamp()
#: Deepest JSON nesting accepted at the edge. Real payloads nest 4-6 deep (a GA4 item in its
#: items array in its event's params); msgspec and Python's own recursion give up near 1,000.
MAX_DEPTH = 64

ID_CHARS = 256
URL_CHARS = 4096
TEXT_CHARS = 2048
FIELD_CHARS = 1024
LABEL_CHARS = 256
TICKET_TEXT_CHARS = 32 * 1024
MAX_MONEY = 1e9

Id = Annotated[str, msgspec.Meta(max_length=ID_CHARS)]
Url = Annotated[str, msgspec.Meta(max_length=URL_CHARS)]
Text = Annotated[str, msgspec.Meta(max_length=TEXT_CHARS)]
Field = Annotated[str, msgspec.Meta(max_length=FIELD_CHARS)]
Label = Annotated[str, msgspec.Meta(max_length=LABEL_CHARS)]
Currency = Annotated[str, msgspec.Meta(max_length=16)]
Device = Annotated[str, msgspec.Meta(max_length=16)]
TicketText = Annotated[str, msgspec.Meta(max_length=TICKET_TEXT_CHARS)]
Time = Annotated[float, msgspec.Meta(ge=0, le=MAX_TIME)]
Money = Annotated[float, msgspec.Meta(ge=0, le=MAX_MONEY)]
#: A session's summed revenue: up to a million orders of the largest amount.
MAX_MONEY_SUM = 1e15
MoneySum = Annotated[float, msgspec.Meta(ge=0, le=MAX_MONEY_SUM)]
Quantity = Annotated[int, msgspec.Meta(ge=0, le=1_000_000)]
Step = Annotated[int, msgspec.Meta(ge=0, le=100)]
Coord = Annotated[float, msgspec.Meta(ge=-1e6, le=1e6)]
Millis = Annotated[float, msgspec.Meta(ge=0, le=3_600_000)]
Cls = Annotated[float, msgspec.Meta(ge=0, le=1000)]
Status = Annotated[int, msgspec.Meta(ge=0, le=999)]
#: A session's length in seconds (about three years).
MAX_SECONDS = 1e8
Seconds = Annotated[float, msgspec.Meta(ge=0, le=MAX_SECONDS)]
Count = Annotated[int, msgspec.Meta(ge=0, le=1_000_000_000)]
Tags = Annotated[tuple[Label, ...], msgspec.Meta(max_length=100)]
Friction = Annotated[dict[Annotated[str, msgspec.Meta(max_length=64)], Count],
                     msgspec.Meta(max_length=64)]

#: Largest magnitude of a number in traits: an integer beyond it (JSON allows 400 digits) or
#: a float beyond it is no count, price or seat number anyone sends, and past 2**53 a float
#: cannot even tell neighbouring integers apart.
MAX_TRAIT_NUMBER = 2**53
_TraitInt = Annotated[int, msgspec.Meta(ge=-MAX_TRAIT_NUMBER, le=MAX_TRAIT_NUMBER)]
_TraitFloat = Annotated[float, msgspec.Meta(ge=-MAX_TRAIT_NUMBER, le=MAX_TRAIT_NUMBER)]
#: A trait's scalar value.
Scalar = Text | _TraitInt | _TraitFloat | bool | None
_TraitKey = Annotated[str, msgspec.Meta(max_length=LABEL_CHARS)]
Traits = Annotated[
    dict[
        _TraitKey,
        Scalar
        | Annotated[list[Scalar], msgspec.Meta(max_length=100)]
        | Annotated[dict[_TraitKey, Scalar], msgspec.Meta(max_length=100)],
    ],
    msgspec.Meta(max_length=100),
]


def trait_number_problem(traits: dict[str, Any]) -> str | None:
    """Why a number in ``traits`` (or one level down) is out of bounds, or None.

    The encode-and-decode check of ``detectors.events.check_batch`` cannot see a non-finite
    float: JSON has no spelling for it, so it is written as ``null`` and reads back valid.

    >>> trait_number_problem({"seats": 12, "score": {"nps": 9.5}}) is None
    True
    >>> trait_number_problem({"seats": float("inf")})
    'traits.seats: inf is not a finite number within 9,007,199,254,740,992'
    """
    for key, value in traits.items():
        inner = value.items() if type(value) is dict else (
            enumerate(value) if type(value) is list else ((None, value),))
        for sub, v in inner:
            # Compared as they are: a 400-digit int does not convert to float.
            if (type(v) is int and not -MAX_TRAIT_NUMBER <= v <= MAX_TRAIT_NUMBER) or (
                    type(v) is float and not (math.isfinite(v) and abs(v) <= MAX_TRAIT_NUMBER)):
                where = f"traits.{key}" if sub is None else f"traits.{key}.{sub}"
                shown = repr(v) if len(str(abs(v))) <= 40 else f"a number of {len(str(v))} chars"
                return (f"{where}: {shown} is not a finite number within "
                        f"{MAX_TRAIT_NUMBER:,}")
    return None


#: Last second ``datetime`` can show: 9999-12-31T23:59:59Z.
_LAST_SECOND = 253_402_300_799.0


def iso(t: float) -> str:
    """``t`` (Unix seconds) as ISO 8601 in UTC, for the times documents carry. Times are
    bounded at the edge, but a deadline or window added to one, or state made before the
    bounds, may still pass datetime's range: it is shown clamped into it, never raised on.

    >>> iso(1767225600.5), iso(1e20), iso(float("nan"))
    ('2026-01-01T00:00:00.500000Z', '9999-12-31T23:59:59Z', '1970-01-01T00:00:00Z')
    """
    t = min(max(t, 0.0), _LAST_SECOND) if t == t else 0.0
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")
