"""The Dramatiq broker and actors on ``REDIS_URL``, for workers and for clients that feed them.

``setup`` is what :mod:`orchestrator.worker` runs at import (it is a worker) and what
:func:`orchestrator.intake.connect` runs to send events to workers (it is a client).

``LOYALOOP_HEARTBEAT_MS`` shortens Dramatiq's dead-worker detection (default 60 s) and
``LOYALOOP_MAINTENANCE_CHANCE`` (per million commands) how often the broker looks for dead workers;
Loyaloop's own leases (``LOYALOOP_TIMER_LEASE``, ``LOYALOOP_SEND_LEASE``, seconds) re-drive journey
work sooner than that anyway.  ``LOYALOOP_METRICS=1`` adds Dramatiq's Prometheus middleware.
"""

from __future__ import annotations

import os

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker

from orchestrator.actors import ActorDispatcher, Actors
from orchestrator.runtime import Runtime, build_runtime
from orchestrator.settings import Settings, load_settings


def build_broker(settings: Settings) -> dramatiq.Broker:
    """A RedisBroker on ``REDIS_URL``, or a StubBroker for the embedded default."""
    if settings.redis_url:
        heartbeat = int(os.environ.get("LOYALOOP_HEARTBEAT_MS", "60000"))
        maintenance = int(os.environ.get("LOYALOOP_MAINTENANCE_CHANCE", "1000"))
        broker: dramatiq.Broker = RedisBroker(  # type: ignore[no-untyped-call]
            url=settings.redis_url, namespace="loyaloop", heartbeat_timeout=heartbeat, maintenance_chance=maintenance
        )
        return broker
    return StubBroker()


def setup(settings: Settings | None = None) -> tuple[dramatiq.Broker, Actors]:
    """Set the global broker and declare the actors on it."""
    settings = settings or load_settings()
    broker = build_broker(settings)
    if os.environ.get("LOYALOOP_METRICS") == "1":
        from dramatiq.middleware.prometheus import Prometheus

        broker.add_middleware(Prometheus())
    dramatiq.set_broker(broker)
    client_url = settings.redis_url

    def build(actors: Actors) -> Runtime:
        client = redis.Redis.from_url(client_url or "redis://127.0.0.1:6379/0", decode_responses=True)
        return build_runtime(
            settings,
            client,
            dispatcher=ActorDispatcher(actors),
            timer_lease=float(os.environ.get("LOYALOOP_TIMER_LEASE", "30")),
            send_lease=float(os.environ.get("LOYALOOP_SEND_LEASE", "60")),
        )

    return broker, Actors(broker, build)
