"""The asyncio client the event loop uses reaches the same Redis as the blocking one, with bounded
waits; a connection kind it cannot copy is refused with what to do instead."""

from __future__ import annotations

import asyncio

import pytest
import redis
import redis.asyncio

from orchestrator.errors import ConfigurationError
from orchestrator.http.availability import async_redis, async_redis_like, close_async_redis
from orchestrator.store.batch import AsyncBatch


async def get(client: redis.asyncio.Redis, key: str) -> object:
    try:
        batch = AsyncBatch(client)
        batch.execute_command("GET", key)
        [value] = await batch.execute()
        return value
    finally:
        await close_async_redis(client)


def test_a_client_like_the_blocking_one_reads_the_same_database(redis_url: str) -> None:
    """Same host, port and database (here 3), responses decoded, every wait bounded."""
    blocking = redis.Redis.from_url(redis_url.rsplit("/", 1)[0] + "/3", decode_responses=True)
    blocking.set("k", "in db 3")
    like = async_redis_like(blocking, timeout=0.25)
    kwargs = like.connection_pool.connection_kwargs
    assert kwargs["db"] == 3 and kwargs["socket_timeout"] == 0.25 and kwargs["socket_connect_timeout"] == 0.25
    assert asyncio.run(get(like, "k")) == "in db 3"
    from_url = async_redis(redis_url.rsplit("/", 1)[0] + "/3", timeout=0.25)
    assert asyncio.run(get(from_url, "k")) == "in db 3"
    blocking.flushdb()
    blocking.close()


def test_a_unix_socket_client_is_copied_and_tls_is_refused() -> None:
    """A Unix socket path is kept; TLS settings are not guessed: build that client from its URL."""
    unix = async_redis_like(redis.Redis.from_url("unix:///tmp/loyaloop-test.sock?db=2"), timeout=0.5)
    assert unix.connection_pool.connection_kwargs["path"] == "/tmp/loyaloop-test.sock"
    assert unix.connection_pool.connection_class is redis.asyncio.connection.UnixDomainSocketConnection
    with pytest.raises(ConfigurationError, match="async_redis"):
        async_redis_like(redis.Redis.from_url("rediss://127.0.0.1:6379/0"), timeout=0.5)
