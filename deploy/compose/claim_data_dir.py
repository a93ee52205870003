"""Give each scaled worker a data dir of its own inside the one volume mounted at
``$FRICTIONWATCH_DATA_DIR``, then become the command given ("frictionwatch worker").

    python /opt/frictionwatch/claim_data_dir.py frictionwatch worker

``docker compose up --scale worker=N`` cannot give each replica a named volume of its own, and
a data dir shared by two workers would mix their RocksDB tables and model checkpoints. So
each worker takes the first slot, ``worker-1``, ``worker-2``, ..., whose lock no live process
holds. The lock is taken on a file descriptor that stays open through ``exec``, so it lasts
exactly as long as the worker and is released when it exits or is killed (SIGKILL too).
A slot keeps what its last worker wrote, so ``up --build``, restarts and ``down``/``up``
start from it; only ``down --volumes`` empties it. Whichever partitions a worker is then
given, Faust brings their tables up to date from the changelog topics, from the offsets
kept in the slot.

Python (which the image has) rather than a shell and ``flock(1)``, which slim images need
not ship. Run by ``docker-compose.yml``; tested by ``tests/unit/test_compose_scale.py``.
"""

from __future__ import annotations

import fcntl
import os
import sys
from pathlib import Path

ENV = "FRICTIONWATCH_DATA_DIR"
#: Far more than partitions: a worker beyond the partition count gets none to work on.
SLOTS = 64


def claim(root: Path, slots: int = SLOTS) -> tuple[Path, int]:
    """The first free slot under ``root`` and the descriptor holding its lock."""
    for i in range(1, slots + 1):
        slot = root / f"worker-{i}"
        slot.mkdir(parents=True, exist_ok=True)
        fd = os.open(slot / ".lock", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # a live worker holds it
            os.close(fd)
            continue
        return slot, fd
    raise SystemExit(f"claim_data_dir: all {slots} data dirs under {root} are in use")


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit("usage: claim_data_dir.py COMMAND [ARG...]")
    root = os.environ.get(ENV)
    if not root:
        raise SystemExit(f"claim_data_dir: {ENV} must name the volume to take a slot in")
    slot, fd = claim(Path(root))
    os.set_inheritable(fd, True)  # held by the command from here on
    os.environ[ENV] = str(slot)
    print(f"claim_data_dir: using {slot}", file=sys.stderr, flush=True)
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main(sys.argv[1:])
