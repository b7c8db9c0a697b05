"""Failed authentication is limited per client address, so API keys cannot be guessed at speed.

A probe sent 300 wrong keys in 0.15 s and every one was answered 401.  Now each failure is charged
to the client address's budget in the one rate limiter
(:meth:`~orchestrator.store.ratelimit.RateLimiter.for_failed_auth`, GCRA in Redis, so every server
process shares it): ``LOYALOOP_AUTH_FAILURES`` (20) failures at once, then one every
``60 / LOYALOOP_AUTH_FAILURES`` seconds.  While the budget is spent every ``/v1`` request from that
address is answered ``429`` with ``Retry-After`` -- a correct key too: otherwise the limit would only
change the status of wrong guesses, and a right guess among them would still be let through.

The address is the one uvicorn puts in the ASGI scope: the peer's, or the ``X-Forwarded-For`` one
when the peer is a proxy uvicorn trusts (``FORWARDED_ALLOW_IPS``, default ``127.0.0.1``; see
docs/http.md).  It is never logged and never stored: the Redis key is named by an HMAC of it, keyed
with a digest of the configured API keys (the same in every server process, and not in Redis, so
Redis' contents do not give the addresses back).  Rotating the keys starts every budget afresh.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from typing import Any

import redis
import redis.asyncio
from starlette.requests import Request

from orchestrator.http.auth import ApiKey
from orchestrator.store.batch import AsyncBatch
from orchestrator.store.ratelimit import SCRIPT, RateLimiter

#: Stands for a client whose address the server does not know (a Unix socket without a proxy).
UNKNOWN_ADDRESS = "-"


def digest_key(api_keys: Iterable[ApiKey]) -> bytes:
    """The HMAC key naming address buckets: derived from every configured secret."""
    material = b"\0".join(sorted(key.secret for key in api_keys))
    return hashlib.sha256(b"loyaloop failed-auth buckets\0" + material).digest()


class FailedAuth:
    """The per-address failure budget: charge a failure, or check (in a caller's batch) whether
    the budget is spent."""

    def __init__(self, client: redis.Redis, aredis: redis.asyncio.Redis, *, per_minute: int, key: bytes) -> None:
        self._limiter = RateLimiter.for_failed_auth(client, per_minute=per_minute)
        self._redis = aredis
        self._key = key

    def bucket(self, request: Request) -> str:
        """The bucket of the request's client address: a keyed digest, never the address."""
        client = request.client
        address = client.host if client is not None and client.host else UNKNOWN_ADDRESS
        return hmac.new(self._key, address.encode(), hashlib.sha256).hexdigest()[:32]

    async def fail(self, bucket: str) -> float:
        """Charge one failure: 0.0 when it fits the budget (answer 401), else the seconds until
        one would (answer 429; a refused failure is not charged)."""
        batch = AsyncBatch(self._redis, scripts=(SCRIPT,))
        self._limiter.queue(batch, bucket)
        [answer] = await batch.execute()
        return self._limiter.seconds(answer)

    def queue_check(self, batch: Any, bucket: str) -> None:
        """Queue the two reads (Redis' clock, the bucket) that :meth:`checked` turns into a wait."""
        self._limiter.queue_peek(batch, bucket)

    def checked(self, bucket: str, clock: Any, state: Any) -> float:
        """Seconds until the address may fail again (0.0: its budget is not spent)."""
        return self._limiter.peeked(bucket, clock, state)
