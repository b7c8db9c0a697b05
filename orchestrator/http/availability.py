"""Serving while Redis is slow, hung or gone: bounded waits, ``503`` with ``Retry-After``, ``/readyz``.

A Redis that stops answering (SIGSTOP, a network partition, a failover) used to hold each request
for its 5 s socket timeout on the event loop, one after the other: three parallel tracks took 5, 10
and 15 s and ``/healthz`` 14.7 s.  Now the event loop talks to Redis only through an asyncio client
whose every wait is bounded by ``LOYALOOP_REDIS_TIMEOUT`` (connect, read, write, and waiting for one
of its pooled connections), and blocking calls run in the bounded
:class:`~orchestrator.http.offload.Offload`.  Whatever Redis does, ``/healthz`` answers from the
process alone, and a request that needed Redis gets ``503`` with ``Retry-After`` -- never a 500 --
through one exception handler every route shares (:func:`unavailable`), the webhooks included.

``GET /readyz`` is for load balancers: 200 while Redis answers a PING in time, 503 with a JSON
reason otherwise, so traffic moves to processes that can serve it.
"""

from __future__ import annotations

import logging
import time
from typing import Any, cast

import redis
import redis.asyncio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from orchestrator.errors import ConfigurationError, ServiceUnavailable
from orchestrator.http.observability import UNAVAILABLE, route_of
from orchestrator.http.responses import error
from orchestrator.settings import is_cluster_url
from orchestrator.store.batch import AsyncBatch

#: Connections the asyncio client keeps per server process; a request waits at most the Redis
#: timeout for one, then gets 503 (a hung Redis must not let requests pile up without end).
MAX_CONNECTIONS = 64
#: ``Retry-After`` seconds when Redis did not answer.
RETRY_AFTER = 1
#: Seconds between two "Redis is not answering" warnings (a hang must not flood the log).
LOG_EVERY = 10.0

#: The errors that mean "Redis cannot serve this now" rather than "this request is wrong": no
#: connection (refused, reset, still loading its data, no pooled connection free), a timeout, or a
#: replica that became read-only in a failover.
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ReadOnlyError,
    ServiceUnavailable,
)

log = logging.getLogger("loyaloop.http")


def async_redis(url: str, *, timeout: float) -> redis.asyncio.Redis:
    """The front door's asyncio client on ``url``: every wait bounded by ``timeout`` seconds.  On a
    ``redis+cluster://`` URL, redis-py's asyncio ``RedisCluster`` (typed as the plain client: the
    front door uses it only through :class:`~orchestrator.store.batch.AsyncBatch`)."""
    if is_cluster_url(url):
        scheme, rest = url.split("://", 1)
        plain = ("rediss" if scheme.lower().startswith("rediss") else "redis") + "://" + rest
        cluster: Any = redis.asyncio.RedisCluster.from_url(
            plain,
            max_connections=MAX_CONNECTIONS,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            decode_responses=True,
        )
        return cast(redis.asyncio.Redis, cluster)
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=timeout,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        decode_responses=True,
    )
    return redis.asyncio.Redis(connection_pool=pool)


def async_redis_like(client: redis.Redis, *, timeout: float) -> redis.asyncio.Redis:
    """An asyncio client on the same server and database as ``client`` (TCP or Unix socket), with
    the bounded waits of :func:`async_redis`.  TLS and other connection kinds need
    :func:`async_redis` on their URL."""
    if isinstance(client, redis.RedisCluster):  # (a cluster client has no pool of its own)
        node = client.get_default_node()
        return async_redis(f"redis+cluster://{node.host}:{node.port}", timeout=timeout)
    pool = client.connection_pool
    given: dict[str, Any] = pool.connection_kwargs
    options: dict[str, Any] = {
        name: given[name] for name in ("db", "username", "password", "client_name") if given.get(name) is not None
    }
    connection_class: type[redis.asyncio.connection.AbstractConnection]
    if pool.connection_class is redis.connection.Connection:
        connection_class = redis.asyncio.connection.Connection
        options.update(host=given.get("host", "localhost"), port=given.get("port", 6379))
    elif pool.connection_class is redis.connection.UnixDomainSocketConnection:
        connection_class = redis.asyncio.connection.UnixDomainSocketConnection
        options.update(path=given["path"])
    else:
        raise ConfigurationError(
            f"cannot build an asyncio Redis client like a {pool.connection_class.__name__!r} one; pass "
            "create_app(..., aredis=orchestrator.http.availability.async_redis(url, timeout=...))"
        )
    return redis.asyncio.Redis(
        connection_pool=redis.asyncio.BlockingConnectionPool(
            connection_class=connection_class,
            max_connections=MAX_CONNECTIONS,
            timeout=timeout,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            decode_responses=True,
            **options,
        )
    )


async def close_async_redis(aredis: redis.asyncio.Redis) -> None:
    """Close every connection of the client's pool (the app's shutdown)."""
    await aredis.aclose()
    if not isinstance(aredis, redis.asyncio.RedisCluster):  # a cluster client closes its nodes itself
        await aredis.connection_pool.disconnect()


def reason_of(exc: BaseException) -> str:
    """A short label of why Redis could not serve (metrics and logs; never an address)."""
    if isinstance(exc, ServiceUnavailable):
        return "busy"
    if isinstance(exc, redis.exceptions.TimeoutError):
        return "redis_timeout"
    if isinstance(exc, redis.exceptions.ReadOnlyError):
        return "redis_read_only"
    return "redis_unreachable"


class _Warnings:
    """One warning per ``LOG_EVERY`` seconds, saying how many were held back since the last."""

    def __init__(self) -> None:
        self._next = 0.0
        self._held = 0

    def warn(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now < self._next:
            self._held += 1
            return
        held, self._held, self._next = self._held, 0, now + LOG_EVERY
        log.warning(message + " (%d more like it not logged)", *args, held)


_warnings = _Warnings()


def warn_limited(message: str, *args: object) -> None:
    """Log a warning about answering 503, at most one per ``LOG_EVERY`` seconds in the process."""
    _warnings.warn(message, *args)


async def unavailable(request: Request, exc: Exception) -> Response:
    """The exception handler for :data:`UNAVAILABLE_ERRORS`: ``503`` with ``Retry-After``.

    Nothing was accepted (the request failed before or while talking to Redis), so a client retries
    it as it is -- with the same ``event_id`` for a track.  The error text names no host or port.
    """
    reason = reason_of(exc)
    UNAVAILABLE.labels(reason=reason).inc()
    retry = exc.retry_after if isinstance(exc, ServiceUnavailable) else RETRY_AFTER
    _warnings.warn("answering 503 on %s %s: %s", request.method, route_of(request.scope), reason)
    return error(
        503,
        "the service cannot reach its data store right now; nothing was accepted, retry after Retry-After seconds",
        headers={"Retry-After": str(retry)},
    )


class Readiness:
    """``GET /readyz``: whether this process can serve requests that need Redis."""

    def __init__(self, aredis: redis.asyncio.Redis) -> None:
        self._redis = aredis

    async def check(self, request: Request) -> Response:
        batch = AsyncBatch(self._redis)
        batch.execute_command("PING")
        started = time.perf_counter()
        try:
            await batch.execute()
        except UNAVAILABLE_ERRORS as exc:
            return JSONResponse({"status": "unavailable", "reason": reason_of(exc)}, status_code=503)
        return JSONResponse({"status": "ready", "redis_ms": round((time.perf_counter() - started) * 1000, 1)})
