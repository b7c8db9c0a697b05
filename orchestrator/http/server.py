"""The app as ``loyaloop serve`` runs it: settings and Redis from the environment, events onto the
same Dramatiq broker the workers read.

uvicorn imports :func:`build_app` in every worker process (``factory=True``), so each process has
its own Redis connection pool and broker connection; nothing is shared but Redis itself.
"""

from __future__ import annotations

import redis
from starlette.applications import Starlette

from orchestrator.errors import ConfigurationError
from orchestrator.http.app import create_app
from orchestrator.settings import Settings, load_settings

#: The import string uvicorn is given.
FACTORY = "orchestrator.http.server:build_app"


def require_redis(settings: Settings) -> str:
    """The Redis URL; the HTTP front door cannot run on the in-process embedded default."""
    if not settings.redis_url:
        raise ConfigurationError(
            "loyaloop serve needs REDIS_URL: events must reach the workers and rate limits must be shared "
            "(export REDIS_URL=redis://127.0.0.1:6379/0)"
        )
    return settings.redis_url


def build_app() -> Starlette:
    """Build the production app (called by uvicorn in each worker process)."""
    settings = load_settings()
    client = redis.Redis.from_url(require_redis(settings), decode_responses=True)
    from orchestrator.intake import Loyaloop
    from orchestrator.worker import actors  # binds the actors to the RedisBroker on REDIS_URL

    return create_app(settings, Loyaloop(actors, client), client)
