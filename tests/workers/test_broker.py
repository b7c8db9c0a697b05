"""The scheduler's sweep returns a dead worker's prefetched messages to their queue, deliberately."""

from __future__ import annotations

import time

import dramatiq
import pytest
import redis

from orchestrator.settings import Settings
from orchestrator.workers.broker import dead_worker_sweeper
from orchestrator.workers.closing_broker import ClosingRedisBroker


def _queue_length(url: str, queue: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return int(client.llen(f"loyaloop:{queue}"))
    finally:
        client.close()


def test_sweep_requeues_what_a_dead_worker_held(redis_url: str) -> None:
    """A message fetched by a worker that then dies is back on its queue after heartbeat + one sweep
    (the heartbeat the settings give, ``LOYALOOP_HEARTBEAT_MS``)."""
    worker_broker = ClosingRedisBroker(url=redis_url, namespace="loyaloop", heartbeat_timeout=300, maintenance_chance=0)
    try:
        worker_broker.declare_queue("events")
        worker_broker.enqueue(dramatiq.Message(queue_name="events", actor_name="a", args=(), kwargs={}, options={}))
        consumer = worker_broker.consume("events", prefetch=1, timeout=100)
        assert next(consumer) is not None  # fetched, never acked: the worker "dies" holding it
        assert _queue_length(redis_url, "events") == 0

        sweep = dead_worker_sweeper(Settings(redis_url=redis_url, heartbeat_ms=300), worker_broker)
        assert sweep is not None
        sweep()  # the worker is not dead yet: nothing moves
        assert _queue_length(redis_url, "events") == 0

        time.sleep(0.5)
        sweep()
        assert _queue_length(redis_url, "events") == 1
    finally:
        worker_broker.close()


def test_no_sweep_for_the_embedded_broker() -> None:
    """The in-process stub broker has no workers to lose, so there is nothing to sweep."""
    from dramatiq.brokers.stub import StubBroker

    assert dead_worker_sweeper(Settings(), StubBroker()) is None
