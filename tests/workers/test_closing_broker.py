"""Closing a ClosingRedisBroker closes the connections it opened, and only those."""

from __future__ import annotations

import time

import dramatiq
import redis

from orchestrator.workers.closing_broker import ClosingRedisBroker


def _names(client: redis.Redis) -> list[str]:
    return [entry["name"] for entry in client.client_list()]


def _wait_gone(client: redis.Redis, name: str) -> list[str]:
    """The server drops a closed connection on its next loop turn: poll briefly for that."""
    deadline = time.monotonic() + 2
    names = _names(client)
    while name in names and time.monotonic() < deadline:
        time.sleep(0.01)
        names = _names(client)
    return names


def test_close_disconnects_the_pool_the_broker_opened(redis_url: str, redis_client: redis.Redis) -> None:
    """After enqueueing and consuming, the broker's connections are on the server; after close() none is."""
    broker = ClosingRedisBroker(url=f"{redis_url}?client_name=closing-broker", namespace="closing")
    broker.declare_queue("q")
    broker.enqueue(dramatiq.Message(queue_name="q", actor_name="a", args=(), kwargs={}, options={}))
    consumer = broker.consume("q", prefetch=1, timeout=100)
    assert next(consumer) is not None
    assert "closing-broker" in _names(redis_client)

    broker.close()

    assert "closing-broker" not in _wait_gone(redis_client, "closing-broker")


def test_close_leaves_a_client_handed_in_to_its_owner(redis_url: str, redis_client: redis.Redis) -> None:
    """A broker built on the caller's client does not close that client's connections."""
    client = redis.Redis.from_url(f"{redis_url}?client_name=callers-client")
    try:
        broker = ClosingRedisBroker(client=client, namespace="closing")
        broker.declare_queue("q")
        broker.enqueue(dramatiq.Message(queue_name="q", actor_name="a", args=(), kwargs={}, options={}))

        broker.close()

        assert "callers-client" in _names(redis_client)
        assert client.ping()
    finally:
        client.close()
