"""Metrics and the access log: enough to run the service, nothing about the people in it.

The access log names the route *template* (``/u/{token}``, never the token), the status, the time
taken and the API key *id*; it never holds a client address, a query string, a body or a key.
uvicorn's own access log is switched off by ``loyaloop serve`` because it logs client IPs and raw
paths.

Prometheus metrics live in the default registry; when ``PROMETHEUS_MULTIPROC_DIR`` is set (it is,
by ``loyaloop serve --workers N``), ``/metrics`` aggregates every worker's values.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchestrator.runtime.unknown_events import UnknownEvent

REQUESTS = Counter("loyaloop_http_requests_total", "HTTP requests answered", ["route", "method", "status"])
LATENCY = Histogram(
    "loyaloop_http_request_seconds",
    "Time to answer an HTTP request",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
EVENTS_ACCEPTED = Counter("loyaloop_http_events_accepted_total", "Intake calls handed to the runtime", ["kind"])
RATE_LIMITED = Counter("loyaloop_http_rate_limited_total", "Requests refused by the per-key rate limit")
AUTH_FAILURES = Counter(
    "loyaloop_http_auth_failures_total",
    "Requests refused for their API key, or for their address's failures",
    ["outcome"],
)
UNAVAILABLE = Counter(
    "loyaloop_http_unavailable_total",
    "Requests answered 503: Redis did not answer, or every thread was busy",
    ["reason"],
)
WEBHOOK_EVENTS = Counter("loyaloop_webhook_events_total", "Provider webhook events handled", ["provider", "event"])
WEBHOOK_REFUSED = Counter("loyaloop_webhook_refused_total", "Provider webhook requests refused", ["provider", "reason"])

#: The status counted for a request whose client disconnected before it was answered (nginx's 499).
CLIENT_CLOSED = 499

access_log = logging.getLogger("loyaloop.http.access")
error_log = logging.getLogger("loyaloop.http")
_INTERNAL_ERROR = b'{"error":"internal error; the request was not accepted, retry later"}'
_JSON_HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(_INTERNAL_ERROR)).encode())]


def route_of(scope: Scope) -> str:
    """The matched route's template, or ``unmatched`` (a 404 must not echo a scanner's path)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class AccessLog:
    """Pure ASGI middleware (no ``BaseHTTPMiddleware``: it costs a task per request) that logs and
    counts every request and turns an unhandled error into a JSON 500."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        responded = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, responded
            if message["type"] == "http.response.start":
                status, responded = int(message["status"]), True
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except ClientDisconnect:
            # The client went away (or was closed for sending too slowly) before its body was in:
            # nothing to answer and nothing wrong here, so no traceback and no 500.
            status = CLIENT_CLOSED
            error_log.info("client disconnected during %s %s", scope["method"], route_of(scope))
        except Exception:
            # Answered here rather than by Starlette's ServerErrorMiddleware, which re-raises so that
            # uvicorn closes the connection under a keep-alive client that would then reuse it.
            error_log.exception("unhandled error on %s %s", scope["method"], route_of(scope))
            if responded:
                raise  # half a response is out: only closing the connection can end it
            await send_wrapper({"type": "http.response.start", "status": 500, "headers": _JSON_HEADERS})
            await send_wrapper({"type": "http.response.body", "body": _INTERNAL_ERROR})
        finally:
            elapsed = time.perf_counter() - started
            route = route_of(scope)
            REQUESTS.labels(route=route, method=scope["method"], status=str(status)).inc()
            LATENCY.labels(route=route).observe(elapsed)
            if access_log.isEnabledFor(logging.INFO):
                state: dict[str, Any] = scope.get("state") or {}
                access_log.info(
                    "%s %s %d %.1fms key=%s",
                    scope["method"],
                    route,
                    status,
                    elapsed * 1000,
                    state.get("key_id", "-"),
                )


def metrics(request: Request) -> Response:
    """``GET /metrics``: the Prometheus text format, every worker's values when multi-process."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


def unknown_events_text(items: Iterable[UnknownEvent]) -> bytes:
    """The unknown event counts (exact, from Redis) in the Prometheus text format, one sample per
    name, its did-you-mean as a label (event names carry no character that needs escaping)."""
    lines = [
        "# HELP loyaloop_unknown_events Events handled that no journey's trigger, goal, exit rule or wait listens to.",
        "# TYPE loyaloop_unknown_events gauge",
    ]
    for item in items:
        labels = f'event="{item.name}",did_you_mean="{item.suggestion or ""}"'
        lines.append(f"loyaloop_unknown_events{{{labels}}} {item.count}")
    return ("\n".join(lines) + "\n").encode("utf-8")
