"""Checkpoints of learned state (River models, learned detector statistics), so that a restart
or a rebalance does not forget what was learned.

A checkpoint is the object pickled, behind a small JSON header naming the River version it was
made with. River does not promise that a model pickled by one version loads in another, which
is why the version is pinned (``pyproject.toml``) and checked on load: a mismatch raises
``CheckpointError`` and the caller starts fresh rather than run a model that is silently wrong.

Only load checkpoints you wrote: unpickling runs code (they live on the worker's own
compacted topic or disk, never user input).

>>> from models.abandonment import abandonment_model
>>> m = abandonment_model()
>>> m.learn_one({"x": 1.0}, True)
>>> again = loads(dumps(m))
>>> again.predict_proba_one({"x": 1.0}) == m.predict_proba_one({"x": 1.0})
True
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import river

from models.finite import finite

__all__ = ["CheckpointError", "Learned", "dump_fields", "dumps", "load_fields", "loads"]

_MAGIC = b"FWCK1"
#: Key of the learned state's form (``Learned.FORM``) in a checkpoint of fields.
_FORM = "__form__"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used here (not one, or from another River version)."""


def dumps(obj: Any) -> bytes:
    header = json.dumps({"river": river.__version__}).encode()
    return _MAGIC + len(header).to_bytes(4, "big") + header + pickle.dumps(
        obj, protocol=pickle.HIGHEST_PROTOCOL)


def loads(data: bytes) -> Any:
    if not data.startswith(_MAGIC):
        raise CheckpointError("not a frictionwatch checkpoint")
    n = int.from_bytes(data[len(_MAGIC):len(_MAGIC) + 4], "big")
    start = len(_MAGIC) + 4
    try:
        header = json.loads(data[start:start + n])
    except ValueError as exc:
        raise CheckpointError(f"unreadable checkpoint header: {exc}") from None
    if header.get("river") != river.__version__:
        raise CheckpointError(f"checkpoint made with River {header.get('river')}, "
                              f"this is River {river.__version__}")
    return pickle.loads(data[start + n:])  # noqa: S301 - our own checkpoints only


def dump_fields(obj: Any, names: Sequence[str]) -> bytes:
    """A checkpoint of some of ``obj``'s attributes (what it learned, not its settings)."""
    return dumps({name: getattr(obj, name) for name in names})


def load_fields(obj: Any, data: bytes, names: Sequence[str]) -> None:
    """Set ``obj``'s attributes back from ``dump_fields``; all or none (checked first)."""
    _set_fields(obj, loads(data), names)


def _set_fields(obj: Any, saved: Any, names: Sequence[str]) -> None:
    if not isinstance(saved, dict):
        raise CheckpointError("not a checkpoint of fields")
    missing = [name for name in names if name not in saved]
    if missing:
        raise CheckpointError(f"checkpoint without {missing}")
    for name in names:
        setattr(obj, name, saved[name])


class Learned:
    """``checkpoint`` and ``restore`` for an online model whose learned state is the
    attributes named in ``LEARNED`` (what it learned, not its settings). The attributes named
    in ``FINITE`` (the River model's weights and statistics) must hold only finite numbers:
    a model with a NaN or infinite one is never checkpointed (the last good checkpoint stays)
    nor restored (it starts fresh), since it would score NaN from then on.

    >>> from models.abandonment import AbandonmentScorer
    >>> m = AbandonmentScorer()
    >>> m.model["LogisticRegression"].intercept = float("nan")
    >>> m.checkpoint()
    Traceback (most recent call last):
      ...
    models.checkpoint.CheckpointError: model holds a non-finite number: not checkpointed
    """

    LEARNED: ClassVar[tuple[str, ...]] = ()
    FINITE: ClassVar[tuple[str, ...]] = ("model",)
    #: Attributes of ``LEARNED`` added in a later version, each with a factory of its fresh
    #: value: a checkpoint written before may lack them, and the rest of it is still taken.
    ADDED: ClassVar[dict[str, Callable[[], Any]]] = {}
    #: The form of the learned state: raised when the model changes so that what an older
    #: version learned would keep running the old model (its pipeline, its features). A
    #: checkpoint of another form is refused and the model starts fresh.
    FORM: ClassVar[int] = 1

    def checkpoint(self) -> bytes:
        """What it has learned, for ``restore`` after a restart."""
        self._check_finite(self, "not checkpointed")
        fields = {name: getattr(self, name) for name in self.LEARNED}
        return dumps({**fields, _FORM: self.FORM} if self.FORM != 1 else fields)

    def restore(self, data: bytes) -> None:
        """Take back a ``checkpoint`` (``CheckpointError`` if unusable: then unchanged)."""
        saved = loads(data)
        if isinstance(saved, dict):
            form = saved.get(_FORM, 1)  # checkpoints before forms were form 1
            if form != self.FORM:
                raise CheckpointError(f"checkpoint of an older form of the model ({form}, "
                                      f"this is {self.FORM}): not restored")
            self._check_finite(saved, "not restored")
            saved = {**{name: make() for name, make in self.ADDED.items()}, **saved}
        _set_fields(self, saved, self.LEARNED)

    def _check_finite(self, obj: Any, what: str) -> None:
        get = obj.get if isinstance(obj, dict) else lambda name: getattr(obj, name, None)
        for name in self.FINITE:
            if not finite(get(name)):
                raise CheckpointError(f"{name} holds a non-finite number: {what}")
