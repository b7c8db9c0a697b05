"""The app as ``loyaloop serve`` runs it: settings and Redis from the environment, events onto the
same Dramatiq broker the workers read.

uvicorn imports :func:`build_app` in every worker process (``factory=True``), so each process has
its own Redis connection pools (a blocking one for the threads, an asyncio one for the event loop)
and broker connection; nothing is shared but Redis itself.  Every Redis wait of both pools is
bounded by ``LOYALOOP_REDIS_TIMEOUT`` (:mod:`orchestrator.http.availability`).

:func:`run_uvicorn` is ``uvicorn.run`` with one fix that matters for latency: with ``--workers``
above 1 uvicorn hands its workers a listening socket created without ``IPPROTO_TCP``, so asyncio
never sets ``TCP_NODELAY`` on the connections and Nagle's algorithm meets the client's delayed ACK:
every keep-alive response waits ~40 ms (measured: 700 instead of 6,000 requests/s for a
hello-world).  Setting ``TCP_NODELAY`` on the listening socket fixes it, because Linux copies it to
every accepted connection.
"""

from __future__ import annotations

import contextlib
import inspect
import socket
import sys
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode

import uvicorn
from starlette.applications import Starlette

from orchestrator.errors import ConfigurationError
from orchestrator.http.app import create_app
from orchestrator.http.availability import async_redis
from orchestrator.http.config import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    HttpConfig,
    load_http_config,
)
from orchestrator.http.console.startup import console_from_environment, console_users
from orchestrator.runtime.compose import build_runtime
from orchestrator.settings import Settings, load_settings
from orchestrator.store.connect import open_redis
from orchestrator.workers.client import connect
from orchestrator.workers.queue_broker import is_amqp

#: The import string uvicorn is given.
FACTORY = "orchestrator.http.server:build_app"
#: uvicorn's exit code when the server could not start.
STARTUP_FAILURE = 3


def require_redis(settings: Settings) -> str:
    """The Redis URL; the HTTP front door cannot run on the in-process embedded default."""
    if not settings.redis_url:
        raise ConfigurationError(
            "loyaloop serve needs REDIS_URL: events must reach the workers and rate limits must be shared "
            "(export REDIS_URL=redis://127.0.0.1:6379/0)"
        )
    return settings.redis_url


#: Milliseconds of ``LOYALOOP_REDIS_TIMEOUT`` a track's round trip needs besides its ``WAIT``.
ROUND_TRIP_MS = 50


def check_replica_timeout(settings: Settings, config: HttpConfig) -> None:
    """Refuse a replica wait the front door's Redis timeout would cut short: the socket would give
    up first and the request get the 503 for an unreachable Redis, not the one that names its ids."""
    if not settings.intake_replicas:
        return
    room = int(config.redis_timeout * 1000) - ROUND_TRIP_MS
    if settings.intake_replica_timeout_ms > room:
        raise ConfigurationError(
            f"LOYALOOP_INTAKE_REPLICA_TIMEOUT_MS={settings.intake_replica_timeout_ms} does not fit in "
            f"LOYALOOP_REDIS_TIMEOUT={config.redis_timeout:g} s with {ROUND_TRIP_MS} ms for the round trip; "
            f"lower it to at most {max(room, 0)} or raise LOYALOOP_REDIS_TIMEOUT"
        )


def with_timeouts(url: str, timeout: float) -> str:
    """``url`` with redis-py's ``socket_timeout`` and ``socket_connect_timeout`` in its query
    (unless it sets its own): the only way to bound the Dramatiq broker's client, which is built
    from the URL alone and otherwise waits for ever on a hung Redis."""
    base, _, query = url.partition("?")  # (not urlsplit: it would turn unix:///path into unix:/path)
    options = dict(parse_qsl(query, keep_blank_values=True))
    options.setdefault("socket_timeout", f"{timeout:g}")
    options.setdefault("socket_connect_timeout", f"{timeout:g}")
    return f"{base}?{urlencode(options)}"


def build_app() -> Starlette:
    """Build the production app (called by uvicorn in each worker process)."""
    settings = load_settings()
    config = load_http_config()
    url = require_redis(settings)
    check_replica_timeout(settings, config)
    # A Redis that stops answering must fail the request (503) after a bounded wait, in a thread
    # as on the event loop, and never hold either for long.
    client = open_redis(
        settings, check=False, socket_timeout=config.redis_timeout, socket_connect_timeout=config.redis_timeout
    )
    # The drain nudge goes out on the broker's own client (in a thread): bound its waits too.
    queue = settings.queue_url
    if queue and not is_amqp(queue):
        settings_for_broker = {"broker_url": with_timeouts(queue, config.redis_timeout)}
    else:
        settings_for_broker = {}
    broker_settings = settings.model_copy(update=settings_for_broker)
    intake = connect(broker_settings, client=client, max_future=timedelta(seconds=config.max_future_seconds))
    console = None
    if console_users():
        # The console's "remove from journey" ends runs through the runtime's own exit path.
        # It runs no step, so the journeys' endpoints need no URL here (workers check them).
        runtime = build_runtime(settings, client, check_endpoints=False)
        console = console_from_environment(settings, client, journeys=runtime.journeys.current, end_run=runtime.end_run)
    aredis = async_redis(url, timeout=config.redis_timeout)
    return create_app(settings, intake, client, config=config, aredis=aredis, console=console)


class NoDelayConfig(uvicorn.Config):
    """uvicorn's Config whose shared listening socket has ``TCP_NODELAY`` (see the module docstring),
    carrying the connection bounds :class:`~orchestrator.http.connections.GuardedHttpProtocol` reads
    (they travel with the config to every worker process)."""

    def __init__(
        self,
        app: Any,
        *,
        header_timeout: float = DEFAULT_HEADER_TIMEOUT,
        body_timeout: float = DEFAULT_BODY_TIMEOUT,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        **options: Any,
    ) -> None:
        super().__init__(app, **options)
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.max_connections = max_connections

    def bind_socket(self) -> socket.socket:
        sock = super().bind_socket()
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock


def run_uvicorn(app: str, **options: Any) -> None:
    """Like ``uvicorn.run(app, **options)`` for an import string, with the ``TCP_NODELAY`` fix."""
    config = NoDelayConfig(app, **options)
    server = uvicorn.Server(config)
    if config.workers > 1:
        from uvicorn.supervisors import Multiprocess

        sock = config.bind_socket()
        # uvicorn < 0.36 wants the target; later versions build the server in each worker themselves.
        if "target" in inspect.signature(Multiprocess).parameters:
            Multiprocess(config, target=server.run, sockets=[sock]).run()  # type: ignore[call-arg]
        else:
            Multiprocess(config, sockets=[sock]).run()
        return
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl+C before the server installed its handlers
        server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)
