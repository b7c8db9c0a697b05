"""The Dramatiq broker and actors on ``REDIS_URL``, for workers and for clients that feed them.

``setup`` is what :mod:`orchestrator.worker` runs at import (it is a worker) and what
:func:`orchestrator.workers.client.connect` runs to send events to workers (it is a client).

Its tuning comes from :class:`~orchestrator.settings.Settings` (read and checked once by
``load_settings``): ``heartbeat_ms`` (``LOYALOOP_HEARTBEAT_MS``) sets Dramatiq's dead-worker
detection (default here 15 s, Dramatiq's own is 60 s: a redelivered message is harmless, every
transition being a compare-and-set and every send idempotent) and ``maintenance_chance``
(``LOYALOOP_MAINTENANCE_CHANCE``, per million commands) how often a worker's own broker looks for
dead workers.  Schedulers do not leave that to chance: every few seconds they sweep every queue
(:func:`dead_worker_sweeper`), so a SIGKILLed worker's prefetched messages come back within the
heartbeat time plus one sweep; Loyaloop's own leases (``LOYALOOP_TIMER_LEASE``,
``LOYALOOP_SEND_LEASE``, seconds) re-drive journey work sooner than that anyway.
``LOYALOOP_METRICS=1`` adds Dramatiq's Prometheus middleware.
"""

from __future__ import annotations

from collections.abc import Callable

import dramatiq
import redis
from dramatiq.brokers.redis import MAINTENANCE_SCALE, RedisBroker
from dramatiq.brokers.stub import StubBroker

from orchestrator.language.journey import Journey
from orchestrator.runtime.compose import build_runtime, freeze_startup_objects
from orchestrator.runtime.runtime import Runtime
from orchestrator.settings import Settings, load_settings
from orchestrator.workers.actors import ActorDispatcher, Actors
from orchestrator.workers.closing_broker import ClosingRedisBroker


def build_broker(settings: Settings) -> dramatiq.Broker:
    """A RedisBroker on ``REDIS_URL``, or a StubBroker for the embedded default."""
    if settings.redis_url:
        broker: dramatiq.Broker = ClosingRedisBroker(
            url=settings.redis_url,
            namespace="loyaloop",
            heartbeat_timeout=settings.heartbeat_ms,
            maintenance_chance=settings.maintenance_chance,
        )
        return broker
    return StubBroker()


def dead_worker_sweeper(settings: Settings, broker: dramatiq.Broker) -> Callable[[], None] | None:
    """A function that requeues, on every queue, the messages held by workers whose heartbeat stopped.

    Dramatiq does this as a side effect of one command in a thousand, on that command's queue only,
    so after a SIGKILL an idle queue may keep a dead worker's messages for many minutes.  The sweep
    runs the same maintenance script deliberately, through a broker of its own whose every command
    does maintenance.  None for the embedded (stub) broker, which has no workers to lose.
    """
    if not isinstance(broker, RedisBroker) or not settings.redis_url:
        return None
    sweeper = ClosingRedisBroker(
        url=settings.redis_url,
        namespace="loyaloop",
        heartbeat_timeout=settings.heartbeat_ms,
        maintenance_chance=MAINTENANCE_SCALE,
        middleware=[],
    )
    queues = sorted(broker.get_declared_queues() | broker.get_declared_delay_queues())

    def sweep() -> None:
        for queue in queues:
            sweeper.do_qsize(queue)

    return sweep


class RuntimeCloser(dramatiq.Middleware):
    """Closes the runtime a worker process built (its sender threads) once the worker has stopped:
    the runtime is built lazily, on the first message, so only this hook knows it exists."""

    def __init__(self) -> None:
        self.runtime: Runtime | None = None

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        runtime, self.runtime = self.runtime, None
        if runtime is not None:
            runtime.close()


def setup(
    settings: Settings | None = None, *, journeys: dict[str, Journey] | None = None
) -> tuple[dramatiq.Broker, Actors]:
    """Set the global broker and declare the actors on it.

    ``journeys``: the journeys this process checked at start-up (:mod:`orchestrator.worker`); its
    runtime serves exactly those, never a later edit of the folder.  None: loaded with the runtime.
    """
    settings = settings or load_settings()
    broker = build_broker(settings)
    if settings.metrics:
        from dramatiq.middleware.prometheus import Prometheus

        broker.add_middleware(Prometheus())
    closer = RuntimeCloser()
    broker.add_middleware(closer)
    dramatiq.set_broker(broker)
    client_url = settings.redis_url

    def build(actors: Actors) -> Runtime:
        client = redis.Redis.from_url(client_url or "redis://127.0.0.1:6379/0", decode_responses=True)
        runtime = closer.runtime = build_runtime(
            settings, client, journeys=journeys, dispatcher=ActorDispatcher(actors)
        )
        freeze_startup_objects()
        return runtime

    return broker, Actors(broker, build)
