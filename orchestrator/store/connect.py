"""The one way a process opens its Redis: a single Redis or a Redis Cluster, said by ``REDIS_URL``.

``redis://…`` (or ``rediss://``, ``unix://``) is one Redis; ``redis+cluster://host:port`` (or
``rediss+cluster://``) is a Redis Cluster reached through any one of its nodes, with redis-py's
``RedisCluster`` (it follows ``MOVED`` and ``ASK`` and learns the slot map itself).  A plain URL that
turns out to point at a cluster node is refused at once with what to set (``INFO cluster`` says
``cluster_enabled:1``): a plain client there fails at the first key of another node with ``MOVED``.

Connecting also applies the settings' key layout (:mod:`orchestrator.store.layout`), so every
process names its keys under its namespace before it names the first one.
"""

from __future__ import annotations

from typing import Any

import redis

from orchestrator.errors import ConfigurationError
from orchestrator.settings import Settings, is_cluster_url, without_password
from orchestrator.store import layout
from orchestrator.store.cluster import ScriptingCluster

DEFAULT_URL = "redis://127.0.0.1:6379/0"


def open_redis(settings: Settings, *, url: str | None = None, check: bool = True, **options: Any) -> Any:
    """A client on the settings' ``REDIS_URL`` (or ``url``), ``decode_responses=True`` unless given.

    ``check`` asks the server whether it is a cluster node (one round trip): refused when the URL
    does not say so.  Callers that cannot reach Redis get redis-py's ``ConnectionError``.
    """
    layout.use(layout.Layout.from_settings(settings))
    target = url or settings.redis_url or DEFAULT_URL
    options.setdefault("decode_responses", True)
    if is_cluster_url(target):
        return cluster_client(target, **options)
    client = redis.Redis.from_url(target, **options)
    if check:
        refuse_cluster_node(client, target)
    return client


def cluster_client(url: str, **options: Any) -> ScriptingCluster:
    """A ``RedisCluster`` on ``redis+cluster://host:port`` (TLS for ``rediss+cluster://``) whose
    pipelines load scripts where they are missing (:mod:`orchestrator.store.cluster`)."""
    scheme, rest = url.split("://", 1)
    plain = ("rediss" if scheme.lower().startswith("rediss") else "redis") + "://" + rest
    client: Any = ScriptingCluster.from_url(plain, **options)
    return client  # type: ignore[no-any-return]


def refuse_cluster_node(client: redis.Redis, url: str) -> None:
    """Raise :class:`ConfigurationError` when ``client``'s server is a cluster node."""
    info: dict[str, Any] = client.info("cluster")
    if int(info.get("cluster_enabled", 0)):
        client.close()
        host = url.split("://", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1]
        raise ConfigurationError(
            f"REDIS_URL={without_password(url)!r} points at a Redis Cluster node; "
            f"set REDIS_URL=redis+cluster://{host} (and LOYALOOP_BROKER_URL for the queue)"
        )
