"""The record of recent deliveries, kept on disk so that it outlives a crash.

A delivery is written here (appended and fsynced) before its Kafka offset is committed, so a
``deliver`` killed between the two re-reads the document after its restart, finds it here and
does not send it again. A kill between the API's answer and this write is the one window left:
there the idempotency key (Zendesk, the webhook) or nothing (Slack, Intercom: they have no such
mechanism) stands between the customer and a second message.

The file holds one key a line; it is rewritten with the newest ``capacity`` keys when it
reaches twice that, so it stays bounded.
"""

from __future__ import annotations

import os
from pathlib import Path

from streams.deliver.policy import RecentIds

__all__ = ["Journal"]


class Journal:
    """``RecentIds`` backed by an append-only file (None: memory only).

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "delivered.log"
    >>> j = Journal(path, capacity=2); j.add("slack:a"); j.add("slack:b"); j.add("slack:c")
    >>> again = Journal(path, capacity=2)
    >>> "slack:a" in again, "slack:c" in again
    (False, True)
    """

    def __init__(self, path: Path | None, capacity: int) -> None:
        self.path = path
        self.recent = RecentIds(capacity)
        self._lines = 0
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists():
                for line in path.read_text(errors="replace").splitlines():
                    if line:
                        self.recent.add(line)
                        self._lines += 1

    def __contains__(self, key: object) -> bool:
        return key in self.recent

    def add(self, key: str) -> None:
        # Keys are ours ("<destination>:<document id>"), but an id comes from a topic: no
        # newline may split one key into two.
        key = key.replace("\n", " ").replace("\r", " ")
        self.recent.add(key)
        if self.path is None:
            return
        if self._lines >= 2 * self.recent.capacity:
            self._rewrite()
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(key + "\n")
            f.flush()
            os.fsync(f.fileno())
        self._lines += 1

    def _rewrite(self) -> None:
        assert self.path is not None
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("".join(k + "\n" for k in self.recent))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        self._lines = len(self.recent)
