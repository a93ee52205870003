"""What every agent module needs from the worker, built once by ``streams.app``.

Each agent lives in its own module (``streams.ingest``, ``streams.sessions``,
``streams.customers``, ``streams.learning``, ``streams.incidents``, ``streams.experiments``,
``streams.feedback``, ``streams.collector``) and registers itself on the app from a
``Context``: the settings, the topics, the metrics, the guard that sends (size-checked) and
dead-letters, the detectors, and the two state tables. The helpers here are the ones more than
one agent uses: reading canonical messages, their ingest origin, and reading and writing
stored state so that a state that cannot be read or written starts fresh instead of failing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import faust
import msgspec
from faust.types import EventT

from detectors.alerting import Alerting
from detectors.customer import CustomerState
from detectors.session import SessionProcessor, SessionState
from streams.acks import TakenAcks
from streams.bundle import Entry, decode_bundle, parse_origin
from streams.deadletter import DeadLetter, decode_reason, make_dead_letter
from streams.guard import EXCERPT_BYTES, Guard
from streams.metrics import Metrics
from streams.settings import Settings
from streams.tables import Changelogs, del_in_partition, set_in_partition
from streams.topics import ORIGIN_HEADER

__all__ = ["Context", "dead_letter", "decode_entries", "entry_origin", "failed",
           "header", "origin"]


@dataclass
class Context:
    """The worker's shared parts, handed to each agent module's ``register_*``."""

    app: faust.App
    settings: Settings
    metrics: Metrics
    guard: Guard
    topics: dict[str, faust.TopicT]
    processor: SessionProcessor
    alerting: Alerting
    sessions: Any  # the sessions table: session id -> encoded SessionState
    customers: Any  # the customers table: customer id -> encoded CustomerState
    dump_session: Callable[[SessionState], bytes]
    dump_customer: Callable[[CustomerState], bytes]
    #: what the stateful agents took into their batches (``streams.acks``)
    acks: TakenAcks
    #: the sessions and customers tables' changelog records, until delivered
    changelogs: Changelogs
    #: (max messages, seconds) of a ``take_events`` batch.
    take: tuple[int, float] = field(init=False)

    def __post_init__(self) -> None:
        self.take = (self.settings.batch_max_messages, self.settings.batch_within)

    def bug(self, stage: str) -> None:
        """Log the exception being handled (with its traceback, rate limited): a bug to fix."""
        self.guard.errors.exception(f"agent:{stage}", "%s: a message failed; dead-lettered",
                                    stage)

    def observe_latency(self, histogram: Any, batch: Sequence[EventT]) -> None:
        """Kafka timestamp to now, for each message of a processed batch."""
        now, observe = time.time(), histogram.observe
        for event in batch:
            observe(max(0.0, now - event.message.timestamp))

    def stored(self, table: Any, key: bytes, load: Callable[[bytes], Any], stage: str, at: Any,
               dead: list[DeadLetter]) -> Any:
        """The state stored under ``key``, or None: none stored, or unreadable (a value
        poisoned before it could be refused, e.g. ``null`` where a float belongs). An
        unreadable one is dead-lettered and the key starts fresh, instead of failing every
        later message of that key, restarts included."""
        raw = table.get(key)
        if not raw:
            return None
        try:
            return load(raw)
        except Exception as exc:  # noqa: BLE001 - whatever is wrong with it, start fresh
            dead.append(self.guard.letter("processing_error", f"stored {stage} state "
                                          f"unreadable, the key starts fresh: {failed(exc)}",
                                          stage, raw, at))
            return None

    def write(self, table: Any, key: bytes, state: Any, dump: Callable[[Any], bytes],
              stage: str, at: Any, dead: list[DeadLetter]) -> bool:
        """Write ``state`` to ``table``, unless it cannot be encoded or is too large for its
        changelog record (Faust's producer buffer would end the app): then the key is
        deleted, starts fresh, and a dead letter says why. False: not written."""
        guard = self.guard
        try:
            value = dump(state)
        except Exception as exc:  # noqa: BLE001 - a state we cannot write: start fresh
            value, detail = b"", f"{stage} state not encodable: {failed(exc)}"
            reason = "processing_error"
        else:
            if guard.fits(key, value):
                if not self.changelogs.put(table, at.message.partition, key, value):
                    set_in_partition(table, key, value, at)
                return True
            detail = (f"{stage} state of {len(value)} bytes is over the producer's limit "
                      f"{guard.limit}: the key starts fresh")
            reason = "too_large"
        dead.append(guard.letter(reason, detail, stage, value, at))
        if key in table:
            del_in_partition(table, key, at)
        return False


def header(headers: Any, name: str) -> str | None:
    """A message header's value as text, or None."""
    if not headers:
        return None
    items = headers.items() if isinstance(headers, dict) else headers
    for k, v in items:
        if k == name:
            return v.decode() if isinstance(v, bytes | bytearray) else str(v)
    return None


def origin(msg: Any, own: str) -> tuple[str, int]:
    """Where a canonical message's events came from: the ingest position in its header when
    the ingest stage sent it, else this message's own partition and offset."""
    raw = header(msg.headers, ORIGIN_HEADER)
    if raw:
        name, _, offset = raw.rpartition(":")
        if name and offset.isdigit():
            return name, int(offset)
    return f"{own}{msg.partition}", msg.offset


def dead_letter(event: EventT, reason: Any, detail: str, stage: str) -> DeadLetter:
    """A dead letter for ``event``'s message, with an excerpt of it, not the whole message: a
    dead letter must never be too large to send."""
    msg = event.message
    return make_dead_letter(reason, detail, stage, event.value or b"", time.time(),
                            msg.topic, msg.partition, msg.offset, keep=EXCERPT_BYTES)


def failed(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


# --- bundles (streams.bundle): what the sessions and customers agents read --------------------
def decode_entries(event: EventT, stage: str, dead: list[DeadLetter]) -> list[Entry] | None:
    """A canonical message's entries (a bundle, or an older one-key array), or None after
    adding its dead letter to ``dead``."""
    try:
        return decode_bundle(event.value, event.message.key)
    except (msgspec.DecodeError, UnicodeDecodeError, ValueError) as exc:
        dead.append(dead_letter(event, decode_reason(exc), str(exc), stage))
        return None
    except Exception as exc:  # noqa: BLE001 - e.g. RecursionError: the message, not the agent
        dead.append(dead_letter(event, "processing_error", failed(exc), stage))
        return None


def entry_origin(entry: Entry, msg: Any, own: str) -> tuple[str, int]:
    """Where an entry's events came from: its ingest position, else its message's
    (``origin``)."""
    at = parse_origin(entry.origin)
    return at if at is not None else origin(msg, own)
