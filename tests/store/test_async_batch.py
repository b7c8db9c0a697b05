"""AsyncBatch, the asyncio front door's pipeline, on a real redis-server: one write, replies in
order, scripts reloaded after a restart, and every wait bounded by the client's timeout."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator

import pytest
import redis
import redis.asyncio

from orchestrator.store.batch import AsyncBatch
from tests.redis_server import RedisServer

SCRIPT = "return redis.call('INCR', KEYS[1])"


def client_on(url: str, timeout: float = 0.3) -> redis.asyncio.Redis:
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        url, max_connections=2, timeout=timeout, socket_timeout=timeout, socket_connect_timeout=timeout,
        decode_responses=True,
    )  # fmt: skip
    return redis.asyncio.Redis(connection_pool=pool)


async def run(url: str, *commands: tuple[object, ...], scripts: tuple[str, ...] = ()) -> list[object]:
    client = client_on(url)
    try:
        batch = AsyncBatch(client, scripts=scripts)
        for command in commands:
            batch.execute_command(*command)
        return await batch.execute()
    finally:
        await client.aclose()
        await client.connection_pool.disconnect()


@pytest.fixture
def own_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    if server.process is not None:
        os.kill(server.process.pid, signal.SIGCONT)
    server.cleanup()


def test_replies_come_back_in_order_raw(redis_url: str) -> None:
    """Replies are Redis' own, one per command, in order (TIME as two strings)."""
    replies = asyncio.run(run(redis_url, ("SET", "k", "v"), ("GET", "k"), ("HEXISTS", "h", "f"), ("TIME",)))
    assert replies[:3] == ["OK", "v", 0]
    assert isinstance(replies[3], list) and all(part.isdigit() for part in replies[3])


def test_an_error_reply_is_raised_after_every_reply_was_read(redis_url: str, redis_client: redis.Redis) -> None:
    """A command Redis refuses raises, yet the commands after it ran (and the connection stays usable)."""
    with pytest.raises(redis.exceptions.ResponseError):
        asyncio.run(run(redis_url, ("SET", "text", "abc"), ("INCR", "text"), ("SET", "after", "1")))
    assert redis_client.get("after") == "1"


def test_missing_scripts_are_loaded_and_the_batch_sent_again(redis_url: str, redis_client: redis.Redis) -> None:
    """After Redis lost its scripts (a restart, SCRIPT FLUSH) the batch loads them and runs once."""
    sha = redis_client.script_load(SCRIPT)
    redis_client.script_flush()
    assert asyncio.run(run(redis_url, ("EVALSHA", sha, 1, "n"), scripts=(SCRIPT,))) == [1]
    with pytest.raises(redis.exceptions.NoScriptError):  # without its sources it cannot recover
        redis_client.script_flush()
        asyncio.run(run(redis_url, ("EVALSHA", sha, 1, "n")))
    assert redis_client.get("n") == "1"


def test_a_stopped_redis_times_out_within_the_client_timeout(own_server: RedisServer) -> None:
    """A hung Redis (SIGSTOP) raises TimeoutError after the client's 0.3 s, not later; a killed one
    raises ConnectionError at once."""
    assert own_server.process is not None
    os.kill(own_server.process.pid, signal.SIGSTOP)
    started = time.monotonic()
    with pytest.raises(redis.exceptions.TimeoutError):
        asyncio.run(run(own_server.url, ("PING",)))
    assert time.monotonic() - started < 1.0
    os.kill(own_server.process.pid, signal.SIGCONT)
    own_server.stop(kill=True)
    started = time.monotonic()
    with pytest.raises(redis.exceptions.ConnectionError):
        asyncio.run(run(own_server.url, ("PING",)))
    assert time.monotonic() - started < 1.0


def test_a_pooled_connection_broken_by_a_restart_is_replaced(own_server: RedisServer) -> None:
    """The first batch after Redis restarted finds its pooled socket closed and is sent again on a new one."""

    async def twice() -> list[object]:
        client = client_on(own_server.url)
        try:
            first = AsyncBatch(client)
            first.execute_command("PING")
            assert await first.execute() == ["PONG"]
            own_server.restart()
            again = AsyncBatch(client)
            again.execute_command("PING")
            return await again.execute()
        finally:
            await client.aclose()
            await client.connection_pool.disconnect()

    assert asyncio.run(twice()) == ["PONG"]
