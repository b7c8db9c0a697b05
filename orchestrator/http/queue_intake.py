"""The intake the HTTP app awaits, so that no request blocks the event loop on Redis.

A single ``track`` is the hot path and stays on the event loop: the runtime's client validates and
encodes the event (:meth:`~orchestrator.runtime.intake.Loyaloop.prepare`, no I/O) and the record is
appended with one EVALSHA on the front door's asyncio Redis client
(:class:`~orchestrator.store.batch.AsyncBatch`), the very script ``Loyaloop.track`` runs.  Handing
every track to a thread instead cost a third of the throughput (threads fighting over the GIL, ~100
futex calls a request), and running it blocking on the loop let one hung Redis freeze the process.

What has no asyncio form goes through the bounded :class:`~orchestrator.http.offload.Offload`: an
``identify`` (a compare-and-set on the profile, consent, a Dramatiq message) and the drain nudge
(a Dramatiq message on the broker's own blocking client).  The nudge is sent only when no drain of
the shard is queued or running, so under load it is rare.  If it cannot be sent in time the event
is still durably queued and its shard marked: the scheduler re-drives a marked shard whose mark
expired (:meth:`~orchestrator.runtime.event_queue.EventQueue.stalled`), so the request is still
answered 202 and only that shard's drain waits.

With ``LOYALOOP_INTAKE_REPLICAS`` the ``WAIT`` rides in the track's own batch, on its connection
(:mod:`orchestrator.store.replication`); a track that too few replicas confirmed raises
:class:`~orchestrator.errors.NotReplicated` (the front door answers 503).  On a Redis Cluster a
waiting track goes through the thread pool instead, where the store's packer sends the ``WAIT`` to
the node that took the write (redis-py's asyncio cluster pipeline cannot put it on that connection).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

import redis
import redis.asyncio

from orchestrator import metrics
from orchestrator.errors import InputError, NotReplicated, ServiceUnavailable
from orchestrator.http.offload import Offload
from orchestrator.http.protocol import AsyncIntake, Intake
from orchestrator.runtime.event_queue import DRAIN_LEASE, PUSH_SCRIPT
from orchestrator.runtime.intake import Loyaloop
from orchestrator.store.batch import AsyncBatch, streams

log = logging.getLogger("loyaloop.http")


class QueueIntake:
    """A :class:`~orchestrator.runtime.intake.Loyaloop` for the event loop; ``aredis`` must reach the
    Redis of the client's event queue."""

    def __init__(self, client: Loyaloop, aredis: redis.asyncio.Redis, offload: Offload, *, timeout: float) -> None:
        self._client = client
        self._redis = aredis
        self._offload = offload
        self._timeout = timeout

    async def track(
        self,
        customer_id: str,
        event: str,
        properties: dict[str, Any] | None = None,
        *,
        event_id: str | None = None,
        timestamp: datetime | None = None,
    ) -> str:
        try:
            ident, record = self._client.prepare(customer_id, event, properties, event_id=event_id, timestamp=timestamp)
        except InputError as error:
            await self._count_refusal(error)
            raise
        batch = AsyncBatch(self._redis, scripts=(PUSH_SCRIPT,))
        shard = self._client.events.queue_push(batch, customer_id, record)
        try:
            [nudge] = await batch.execute(wait=self._client.replicas)
        except NotReplicated as error:
            if error.replies and error.replies[0]:
                await self._nudge(shard)
            raise self._client.unconfirmed(error, "track", [ident], []) from None
        if nudge:
            await self._nudge(shard)
        metrics.event("queued")
        return ident

    async def identify(self, customer_id: str, attributes: dict[str, Any]) -> object:
        return await self._offload.run(self._client.identify, customer_id, attributes)

    async def _count_refusal(self, error: InputError) -> None:
        """Count the refusal like ``Loyaloop.track`` does; the 400 is answered even if it cannot be."""
        try:
            await self._offload.run(self._client.count_refusal, error)
        except (ServiceUnavailable, redis.RedisError) as exc:
            log.warning("a refused event could not be counted (%s)", type(exc).__name__)

    async def _nudge(self, shard: int) -> None:
        try:
            await asyncio.wait_for(self._offload.run(self._client.nudges.nudge_drain, shard), self._timeout)
        except (ServiceUnavailable, redis.RedisError, TimeoutError) as exc:
            log.warning(
                "the drain message for event shard %d was not sent (%s); the event is queued and the "
                "scheduler re-drives the shard within %gs",
                shard,
                type(exc).__name__,
                DRAIN_LEASE,
            )


class ThreadedIntake:
    """Any other :class:`~orchestrator.http.protocol.Intake`, called in the bounded thread pool."""

    def __init__(self, intake: Intake, offload: Offload) -> None:
        self._intake = intake
        self._offload = offload

    async def track(
        self,
        customer_id: str,
        event: str,
        properties: dict[str, Any] | None = None,
        *,
        event_id: str | None = None,
        timestamp: datetime | None = None,
    ) -> str:
        return await self._offload.run(
            lambda: self._intake.track(customer_id, event, properties, event_id=event_id, timestamp=timestamp)
        )

    async def identify(self, customer_id: str, attributes: dict[str, Any]) -> object:
        return await self._offload.run(self._intake.identify, customer_id, attributes)


def async_intake(intake: Intake, aredis: redis.asyncio.Redis, offload: Offload, *, timeout: float) -> AsyncIntake:
    """The runtime's client on a real Redis queues on the event loop; anything else (an embedded
    client, a test double, a client that waits for replicas on a cluster) runs in the thread pool."""
    if isinstance(intake, Loyaloop) and (
        streams(intake.store.redis) or (isinstance(intake.store.redis, redis.RedisCluster) and intake.replicas is None)
    ):
        return QueueIntake(intake, aredis, offload, timeout=timeout)
    return ThreadedIntake(intake, offload)
