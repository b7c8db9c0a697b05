"""Connections that never finish their headers or body are closed, and a server never holds more
connections than it has file descriptors for.

uvicorn times out only the idle gap between two requests on a kept-alive connection; a client that
opens a connection and sends nothing, or half a header, or a body more slowly than it announced,
holds a socket (and its file descriptor) for as long as it likes.  Under ``ulimit -n 256`` three
hundred such connections made ``/healthz`` fail.  This protocol adds:

- a **header timeout**: from the connection's first moment (or the first byte of a later request)
  to the end of its headers;
- a **body timeout**: from the end of the headers to the end of the body;
- a **connection cap**: when a new connection would pass it, the oldest connection still waiting
  for its headers is closed to make room (a slow client loses its place, a new one is served).

A closed connection reaches the app as a client disconnect (``http.disconnect``), counted as such
(:mod:`orchestrator.http.observability`), never as a 500.  In production a reverse proxy (nginx,
a cloud load balancer) usually sits in front and enforces the same; these bounds hold without one.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any

from prometheus_client import Counter
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_BODY_TIMEOUT = 30.0
DEFAULT_MAX_CONNECTIONS = 1_000

SLOW_CLOSED = Counter(
    "loyaloop_http_slow_connections_closed_total", "Connections closed for being too slow or too many", ["reason"]
)

#: Per server process: connections waiting for their headers, oldest first.
_waiting: OrderedDict[int, GuardedHttpProtocol] = OrderedDict()


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header and body timeouts and a connection cap.

    The limits are read from the uvicorn ``Config`` (``header_timeout``, ``body_timeout``,
    ``max_connections`` attributes, see :class:`orchestrator.http.server.NoDelayConfig`), so they
    reach every worker process with the config.
    """

    def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self._header_timeout = float(getattr(config, "header_timeout", DEFAULT_HEADER_TIMEOUT))
        self._body_timeout = float(getattr(config, "body_timeout", DEFAULT_BODY_TIMEOUT))
        self._max_connections = int(getattr(config, "max_connections", DEFAULT_MAX_CONNECTIONS))
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self._max_connections:
            oldest = next(iter(_waiting.values()), None)
            victim = oldest if oldest is not None else self
            victim._close("over_capacity")
            if victim is self:
                return
        self._await_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        _waiting.pop(id(self), None)
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if id(self) not in _waiting:
            self._await_headers()

    def on_headers_complete(self) -> None:
        _waiting.pop(id(self), None)
        self._restart_timer(self._body_timeout, "body_timeout")
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._stop_timer()
        super().on_message_complete()

    def _await_headers(self) -> None:
        _waiting[id(self)] = self
        self._restart_timer(self._header_timeout, "header_timeout")

    def _restart_timer(self, seconds: float, reason: str) -> None:
        self._stop_timer()
        self._timer = self.loop.call_later(seconds, self._close, reason)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _close(self, reason: str) -> None:
        self._stop_timer()
        _waiting.pop(id(self), None)
        if not self.transport.is_closing():
            SLOW_CLOSED.labels(reason=reason).inc()
            self.transport.close()
