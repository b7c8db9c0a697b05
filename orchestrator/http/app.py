"""The ASGI app: intake API, provider webhooks, unsubscribe page, health, readiness and metrics.

:func:`create_app` takes everything it talks to (settings, the runtime's intake, Redis clients)
so tests, ``loyaloop serve`` and the benchmark build the same app around real or embedded parts.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import redis
import redis.asyncio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from orchestrator.errors import ConfigurationError
from orchestrator.gate.unsubscribe import secret_bytes
from orchestrator.http.auth_failures import FailedAuth, digest_key
from orchestrator.http.availability import (
    UNAVAILABLE_ERRORS,
    Readiness,
    async_redis_like,
    close_async_redis,
    unavailable,
)
from orchestrator.http.config import HttpConfig, load_http_config
from orchestrator.http.intake_api import IntakeApi
from orchestrator.http.observability import AccessLog, metrics, unknown_events_text
from orchestrator.http.offload import Offload
from orchestrator.http.protocol import Intake
from orchestrator.http.queue_intake import async_intake
from orchestrator.http.responses import error
from orchestrator.http.sendgrid_webhook import SendGridWebhook
from orchestrator.http.twilio_webhook import TwilioWebhooks
from orchestrator.http.unsubscribe_page import UnsubscribePage
from orchestrator.runtime.unknown_events import unknown_events
from orchestrator.settings import Settings
from orchestrator.store import Store

log = logging.getLogger("loyaloop.http")


def _unsubscribe_secret(settings: Settings) -> bytes | None:
    """The signing secret, or None when unset (the page then answers 503); a weak one is refused."""
    if settings.secret_key is None or not settings.secret_key.get_secret_value():
        log.warning("LOYALOOP_SECRET_KEY is not set: /u/{token} unsubscribe links answer 503")
        return None
    return secret_bytes(settings)


def with_unknown_events(store: Store, settings: Settings) -> Callable[[Request], Response]:
    """``GET /metrics`` plus the unknown event counts read from Redis (shared by every worker);
    a Redis that does not answer leaves them out rather than failing the scrape."""

    def handler(request: Request) -> Response:
        response = metrics(request)
        try:
            found = unknown_events(store, settings.journeys_dir)
        except redis.RedisError:
            log.warning("unknown event counts left out of /metrics: Redis did not answer")
            return response
        return Response(bytes(response.body) + unknown_events_text(found), media_type=response.media_type)

    return handler


def create_app(
    settings: Settings,
    intake: Intake,
    redis: redis.Redis,
    *,
    config: HttpConfig | None = None,
    aredis: redis.asyncio.Redis | None = None,
) -> Starlette:
    """Build the app.  ``redis`` must decode responses; ``config`` defaults to the environment.

    ``aredis`` is the asyncio client the event loop uses (on the same Redis, decoding responses,
    with bounded waits: :func:`~orchestrator.http.availability.async_redis`); by default one is
    made like ``redis`` with ``config.redis_timeout``.  The app closes it when it shuts down.
    """
    http = config if config is not None else load_http_config()
    if not http.api_keys:
        log.warning("LOYALOOP_API_KEYS is empty: every /v1 request answers 401")
    if redis.get_encoder().decode_responses is not True:
        raise ConfigurationError("create_app needs a Redis client made with decode_responses=True")
    loop_redis = aredis if aredis is not None else async_redis_like(redis, timeout=http.redis_timeout)
    offload = Offload()
    fast = async_intake(intake, loop_redis, offload, timeout=http.redis_timeout)
    failures = FailedAuth(redis, loop_redis, per_minute=http.auth_failures, key=digest_key(http.api_keys))
    api = IntakeApi(http, redis, loop_redis, intake, fast, offload, failures)
    sendgrid = SendGridWebhook(http, redis, intake)
    twilio = TwilioWebhooks(http, redis, intake, settings.public_url)
    unsubscribe = UnsubscribePage(redis, _unsubscribe_secret(settings))

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})  # from the process alone: never waits on Redis

    async def not_found(request: Request, exc: Exception) -> Response:
        return error(404, "no such endpoint; see docs/http.md")

    async def wrong_method(request: Request, exc: Exception) -> Response:
        allow = getattr(exc, "headers", None) or {}
        return error(405, f"{request.method} is not allowed here", headers=allow)

    routes = [
        Route("/v1/track", api.track, methods=["POST"]),
        Route("/v1/identify", api.identify, methods=["POST"]),
        Route("/v1/batch", api.batch, methods=["POST"]),
        Route("/webhooks/sendgrid", sendgrid.handle, methods=["POST"]),
        Route("/webhooks/twilio/status", twilio.status, methods=["POST"]),
        Route("/webhooks/twilio/inbound", twilio.inbound, methods=["POST"]),
        Route("/u/{token}", unsubscribe.show, methods=["GET"]),
        Route("/u/{token}", unsubscribe.confirm, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", Readiness(loop_redis).check, methods=["GET"]),
        Route("/metrics", with_unknown_events(Store(redis), settings), methods=["GET"]),
    ]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            offload.close()
            await close_async_redis(loop_redis)

    # A Redis that does not answer is a 503 with Retry-After on every route, the webhooks included.
    handlers: dict[Any, Any] = {404: not_found, 405: wrong_method} | dict.fromkeys(UNAVAILABLE_ERRORS, unavailable)
    return Starlette(
        routes=routes,
        middleware=[Middleware(AccessLog)],
        exception_handlers=handlers,  # 500: see AccessLog
        lifespan=lifespan,
    )
