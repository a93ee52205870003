"""A backoff for aiokafka's metadata retries while no broker answers.

When every broker is unreachable, aiokafka (0.14, the version requirements.lock pins) fails a
metadata update at once (connection refused) and its producer's sender and consumer's fetcher
force the next one as soon as they hear of the failure: a busy loop. Measured on the worker
under load with its Apache Kafka broker stopped: about 2,000 connection attempts a second and
40 % of a core, against 24 % for processing the load itself. The Java client and kafka-python
wait ``retry.backoff.ms`` between failed metadata updates (kafka-python PR #733, "Avoid busy
poll during metadata refresh failure"); this adds that wait to aiokafka: a failed update
returns only after the client's own ``retry_backoff_ms`` (100 ms by default). A successful
update is not delayed, so recovery after the broker returns is as quick as before.

Applied once by ``frictionwatch worker``; a no-op if aiokafka's internals change shape.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["backoff_failed_metadata_updates"]

_PATCHED = "_frictionwatch_backoff"


def backoff_failed_metadata_updates() -> bool:
    """Make ``AIOKafkaClient._metadata_update`` wait ``retry_backoff`` after a failure.
    True if applied (or already), False if aiokafka does not look as expected."""
    try:
        from aiokafka.client import AIOKafkaClient
    except ImportError:
        return False
    original = getattr(AIOKafkaClient, "_metadata_update", None)
    if original is None or not inspect.iscoroutinefunction(original):
        log.warning("aiokafka changed: metadata retries are not backed off")
        return False
    if getattr(original, _PATCHED, False):
        return True

    @functools.wraps(original)
    async def _metadata_update(self: Any, cluster_metadata: Any, topics: Any) -> bool:
        ok = await original(self, cluster_metadata, topics)
        if not ok:
            await asyncio.sleep(getattr(self, "_retry_backoff", 0.1))
        return bool(ok)

    setattr(_metadata_update, _PATCHED, True)
    AIOKafkaClient._metadata_update = _metadata_update  # type: ignore[method-assign]
    return True
