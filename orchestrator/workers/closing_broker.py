"""Dramatiq's RedisBroker with a ``close()`` that really closes the sockets it opened.

Dramatiq's RedisBroker builds its own connection pool from ``url`` but inherits the base
``Broker.close()``, a no-op: every connection the broker and its worker threads opened stays open
until the pool is garbage-collected.  A broker sits in reference cycles (actors point back at the
runtime that points at them), so that happens in a cycle collection, where a socket may be
finalised before the connection that owns it gets to close it -- an unclosed socket, reported as a
``ResourceWarning`` at some random later moment (and a failure under ``filterwarnings = error``).
Anything that starts and stops brokers repeatedly (the embedded runtime, test harnesses) should
build this one.
"""

from __future__ import annotations

from typing import Any

import redis
from dramatiq.brokers.redis import RedisBroker


class ClosingRedisBroker(RedisBroker):
    """A RedisBroker whose ``close()`` disconnects the pool it created (not a pool handed to it).

    After ``close()`` the broker still works: redis-py reconnects on the next command, so closing
    early (e.g. a worker stopping while a producer still enqueues) costs a reconnect, not an error.
    """

    def __init__(self, *, client: redis.Redis | None = None, **options: Any) -> None:
        super().__init__(client=client, **options)  # type: ignore[no-untyped-call]
        # A client passed in belongs to the caller, who closes it; only our own pool is ours to close.
        self._owns_pool = client is None

    def close(self) -> None:
        super().close()
        if self._owns_pool:
            self.client.connection_pool.disconnect()
