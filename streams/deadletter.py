"""Dead-letter records: input frictionwatch could not use, with why, where from, and its bytes.

A record keeps at most ``MAX_ORIGINAL_BYTES`` of the original (the whole message, or the one
rejected item of a batch), with the original's size and whether it was cut: a hostile payload
must not be copied onto the dead-letter topic many times over (``streams.normalize`` also
bounds the total per input message).
"""

from __future__ import annotations

import base64

import msgspec

from streams.topics import DeadLetterReason

__all__ = ["MAX_ORIGINAL_BYTES", "STAGES", "DeadLetter", "decode_dead_letter", "decode_reason",
           "encode_dead_letter", "make_dead_letter"]


#: Most bytes of the original one record keeps: a whole ordinary message or call (Segment's
#: limit for one call is 32 KB), and well under the producer's 1 MiB request.
MAX_ORIGINAL_BYTES = 64 * 1024
#: Longest detail kept (details can quote attacker-sized input).
MAX_DETAIL_CHARS = 500

#: Where in the pipeline input can be rejected: a bounded Prometheus label.
STAGES = ("collector", "normalize", "sessions", "customers", "feedback", "incidents",
          "experiments", "deliver")


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    reason: DeadLetterReason
    detail: str
    #: Pipeline stage that rejected it (one of ``STAGES``).
    stage: str
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    #: Wall-clock time it was rejected (Unix seconds).
    time: float
    #: The original bytes (the whole message, or the one rejected item of a batch), base64;
    #: at most ``MAX_ORIGINAL_BYTES`` of them (``truncated`` says when they were cut).
    original: str
    #: Size of the whole original in bytes (None in records written before sizes were kept).
    original_size: int | None = None
    #: Whether ``original`` holds only the first part of it.
    truncated: bool = False

    @property
    def original_bytes(self) -> bytes:
        return base64.b64decode(self.original)


def decode_reason(exc: Exception) -> DeadLetterReason:
    """Dead-letter reason for one of our own JSON messages that failed to decode."""
    if isinstance(exc, msgspec.DecodeError | UnicodeDecodeError) and not isinstance(
            exc, msgspec.ValidationError):
        return "not_json"
    return "invalid_field"


def make_dead_letter(
    reason: DeadLetterReason,
    detail: str,
    stage: str,
    original: bytes,
    time: float,
    topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
    *,
    keep: int = MAX_ORIGINAL_BYTES,
    size: int | None = None,
) -> DeadLetter:
    """A record of ``original`` with its first ``keep`` bytes at most (``MAX_ORIGINAL_BYTES``
    or less); ``size`` is the whole original's size when ``original`` is already a prefix."""
    full = len(original) if size is None else size
    kept = original[:max(0, min(keep, MAX_ORIGINAL_BYTES))]
    return DeadLetter(
        reason=reason,
        # Details can quote attacker-sized input; keep the record (and the topic) small.
        detail=detail[:MAX_DETAIL_CHARS],
        stage=stage,
        topic=topic,
        partition=partition,
        offset=offset,
        time=time,
        original=base64.b64encode(kept).decode("ascii"),
        original_size=full,
        truncated=len(kept) < full,
    )


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(DeadLetter)


def encode_dead_letter(d: DeadLetter) -> bytes:
    return _encoder.encode(d)


def decode_dead_letter(data: bytes) -> DeadLetter:
    return _decoder.decode(data)
