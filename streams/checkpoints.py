"""Model checkpoints on the worker's disk: restored when it starts, written on a timer, so a
restart does not forget what the online models learned (``models.checkpoint`` is the format).

>>> import tempfile
>>> from pathlib import Path
>>> from models.abandonment import AbandonmentScorer
>>> path = Path(tempfile.mkdtemp()) / "abandonment.ckpt"
>>> restore(AbandonmentScorer(), path)  # nothing saved yet: starts fresh
False
>>> save(AbandonmentScorer(), path), restore(AbandonmentScorer(), path)
(True, True)
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from models.checkpoint import CheckpointError

__all__ = ["restore", "save"]

log = logging.getLogger(__name__)


def save(model: Any, path: Path) -> bool:
    """Write ``model.checkpoint()`` to ``path`` atomically (a crash leaves the old one).

    A model that refuses to checkpoint (``CheckpointError``: a non-finite weight) is not
    written: the last good checkpoint stays, and the refusal is logged. False: not written.
    """
    try:
        data = model.checkpoint()
    except CheckpointError as exc:
        log.error("not checkpointing %s (%s): the last good checkpoint stays", path, exc)
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return True


def restore(model: Any, path: Path) -> bool:
    """Load ``path`` into ``model`` if it holds a usable checkpoint; False: starting fresh."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return False
    try:
        model.restore(data)
    except CheckpointError as exc:
        log.warning("not restoring %s (%s): the model starts fresh", path, exc)
        return False
    except Exception as exc:  # noqa: BLE001 - a damaged file must not keep the worker down
        log.warning("not restoring %s (%s: %s): the model starts fresh", path,
                    type(exc).__name__, exc)
        return False
    return True
