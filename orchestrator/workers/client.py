"""A Python client on ``REDIS_URL`` (one Redis or a cluster) whose events reach the workers started with
``dramatiq orchestrator.worker``: the intake API bound to the same broker and actors."""

from __future__ import annotations

from datetime import timedelta

import redis

from orchestrator import plugins
from orchestrator.errors import ConfigurationError
from orchestrator.language.inputs import MAX_FUTURE
from orchestrator.runtime.intake import Loyaloop
from orchestrator.settings import Settings, load_settings
from orchestrator.store.connect import open_redis
from orchestrator.store.replication import ReplicaWait
from orchestrator.workers.broker import setup


def connect(
    settings: Settings | None = None, *, client: redis.Redis | None = None, max_future: timedelta = MAX_FUTURE
) -> Loyaloop:
    """A client sending to the workers; ``client`` is the Redis it writes to (one on ``REDIS_URL``
    when not given), ``max_future`` how far ahead an event's timestamp may be.  Every event it
    accepts has reached ``LOYALOOP_INTAKE_REPLICAS`` replicas first (0: no wait)."""
    settings = settings or load_settings()
    if not settings.redis_url:
        raise ConfigurationError(
            "REDIS_URL is not set; export REDIS_URL=redis://host:6379/0 to reach the workers' Redis "
            "(without it, Loyaloop runs embedded only inside `loyaloop demo`)"
        )
    _broker, actors = setup(settings)
    redis_client = client if client is not None else open_redis(settings)
    known = plugins.consent_channels(plugins.build_channels(settings))
    replicas = ReplicaWait.from_settings(settings)
    return Loyaloop(actors, redis_client, max_future=max_future, consent_channels=known, replicas=replicas)
