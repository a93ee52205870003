"""One shopper's visit as the generator keeps it (``Session``), and the actions a visit yields
(``Act``): what the behaviour writes and the payload formats and the run loop read."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import Any

from streams.sim.truth import FrictionTruth, SessionOutcome

__all__ = ["END", "TICKET", "Act", "Part", "Session"]

END = "_end"  # action kind: the web part of a session is over (not a message)
TICKET = "ticket"
#: Action: (time ms, kind, properties, truth record or None). Kind is the Segment event name,
#: "page", "identify", "ticket" or END.
Act = tuple[int, str, Any, "FrictionTruth | None"]
#: A part of a session that tells its caller whether the shopper left (True) during it.
Part = Generator[Act, None, bool]


class Session:
    """One shopper's visit: ids, where they are, and what the generator remembers."""

    __slots__ = (
        "sid", "key", "fmt", "device", "anon", "client_id", "customer_id", "t", "n", "ctx",
        "url", "path", "patience", "flags", "pay_style", "cart", "cart_value", "outcome",
        "registered", "last_step", "last_t", "frictions", "ga4_device",
        "dead_sdk", "gen", "prev_path", "prev_title", "hesitancy", "source", "landing",
        "chat_offered", "beacons", "heartbeats", "page_t", "ping_t",
    )
    sid: str
    key: bytes
    #: "segment", "ga4", "snowplow" or "posthog"
    fmt: str
    device: str
    anon: str
    client_id: str
    customer_id: str | None
    #: The session's clock (ms): time of the action being generated.
    t: int
    #: Messages emitted (for message ids).
    n: int
    #: The Segment context of the current page (built on first use, then shared).
    ctx: dict[str, Any] | None
    url: str
    path: str
    #: Multiplies every "go on" chance; friction lowers it.
    patience: float
    #: How unsure the shopper is at checkout (0: set on buying; see ``CHECKOUT_INTENT``).
    hesitancy: float
    #: Channel the shopper came from (``TRAFFIC_SOURCES``), and the landing page's URL query
    #: and referrer until the landing page is sent.
    source: str
    landing: tuple[str, str | None] | None
    #: Per-session friction still to show.
    flags: set[str]
    #: True: payments as "Payment Attempted"; False: "Payment Succeeded" / "Payment Declined".
    pay_style: bool
    cart: list[dict[str, Any]]
    cart_value: float
    outcome: SessionOutcome | None
    registered: bool
    last_step: int
    last_t: int
    frictions: list[str]
    ga4_device: dict[str, str]
    #: The client SDK reports dead clicks itself (else a dead click is a click and silence).
    dead_sdk: bool
    gen: Iterator[Act]
    prev_path: str
    prev_title: str
    #: The source sends a leave beacon as each page goes away (``SimConfig.segment_beacons``).
    beacons: bool
    #: The source sends heartbeats while a page is in use (Snowplow's ``page_ping``), and
    #: when the next is due (ms; None: no page in use).
    heartbeats: bool
    ping_t: int | None
    #: When the page on show was viewed (ms); None before the first page and after it left.
    page_t: int | None

    def __init__(self) -> None:
        self.n = 0
        self.patience = 1.0
        self.hesitancy = 1.0
        self.source = "direct"
        self.landing = None
        self.cart = []
        self.cart_value = 0.0
        self.registered = False
        self.last_step = 0
        self.frictions = []
        self.outcome = None
        self.prev_path = "/"
        self.prev_title = "Home"
        self.chat_offered = False
        self.beacons = False
        self.heartbeats = False
        self.ping_t = None
        self.page_t = None
