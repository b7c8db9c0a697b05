"""The module ops point Dramatiq at: ``dramatiq orchestrator.worker -p N -t M``.

Importing it sets the global broker from ``REDIS_URL`` (a RedisBroker) and declares the actors on
it; each worker process then builds its Runtime (journeys, channels, gate) on the first message.
A worker without ``REDIS_URL`` would wait forever on an in-memory broker nobody feeds, so it
refuses to start; the in-process default is :mod:`orchestrator.workers.embedded` (``loyaloop demo``).
Nor does a worker start without ``LOYALOOP_SECRET_KEY``: the links it signs must survive a restart.

Environment: see :mod:`orchestrator.workers.broker`.  With ``LOYALOOP_METRICS=1`` every worker process's
metrics (Dramatiq's and :mod:`orchestrator.metrics`) are served on port ``dramatiq_prom_port``
(9191).
"""

from __future__ import annotations

from orchestrator.errors import ConfigurationError
from orchestrator.runtime.delivery import signing_secret
from orchestrator.settings import load_settings
from orchestrator.workers.broker import build_broker, setup

__all__ = ["actors", "broker", "build_broker", "setup"]

_settings = load_settings()
if not _settings.redis_url:
    raise ConfigurationError(
        "REDIS_URL is not set, so a worker has no queue to read; export REDIS_URL=redis://host:6379/0 "
        "(to try Loyaloop without a Redis server, run `loyaloop demo`)"
    )
# A worker builds its runtime on its first message; a missing or weak signing secret is refused
# here, at start-up, rather than by every message after it.
signing_secret(_settings)
broker, actors = setup(_settings)
