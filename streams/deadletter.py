"""Dead-letter records: input frictionwatch could not use, with why, where from, and its bytes."""

from __future__ import annotations

import base64

import msgspec

from streams.topics import DeadLetterReason

__all__ = ["STAGES", "DeadLetter", "decode_dead_letter", "decode_reason", "encode_dead_letter",
           "make_dead_letter"]


#: Where in the pipeline input can be rejected: a bounded Prometheus label.
STAGES = ("collector", "normalize", "sessions", "customers", "feedback", "incidents",
          "experiments")


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
    #: The original bytes (the whole message, or the one rejected item of a batch), base64.
    original: str

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
) -> DeadLetter:
    return DeadLetter(
        reason=reason,
        # Details can quote attacker-sized input; keep the record (and the topic) small.
        detail=detail[:500],
        stage=stage,
        topic=topic,
        partition=partition,
        offset=offset,
        time=time,
        original=base64.b64encode(original).decode("ascii"),
    )


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(DeadLetter)


def encode_dead_letter(d: DeadLetter) -> bytes:
    return _encoder.encode(d)


def decode_dead_letter(data: bytes) -> DeadLetter:
    return _decoder.decode(data)
