"""The broker: tuned from the settings; the scheduler's sweep returns a dead worker's prefetched
messages to their queue, deliberately; a worker's runtime is closed when the worker stops."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import dramatiq
import pytest
import redis
from dramatiq.brokers.redis import RedisBroker

from orchestrator.settings import Settings
from orchestrator.workers.broker import build_broker, dead_worker_sweeper, setup
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


def test_the_broker_takes_heartbeat_and_maintenance_from_the_settings(redis_url: str) -> None:
    """LOYALOOP_HEARTBEAT_MS and LOYALOOP_MAINTENANCE_CHANCE reach Dramatiq through Settings (they
    were parsed in this module with a bare int() before)."""
    broker = build_broker(Settings(redis_url=redis_url, heartbeat_ms=4321, maintenance_chance=7))
    try:
        assert isinstance(broker, RedisBroker)
        assert (broker.heartbeat_timeout, broker.maintenance_chance) == (4321, 7)
    finally:
        broker.close()


def test_a_workers_runtime_is_closed_when_the_worker_stops(redis_url: str, tmp_path: Path) -> None:
    """The runtime a worker process builds on its first message is closed by the worker's shutdown:
    its sender threads stop (a send after that is refused), none is left running."""
    (tmp_path / "templates").mkdir()
    settings = Settings(
        redis_url=redis_url,
        secret_key="w" * 40,
        journeys_dir=tmp_path,
        templates_dir=tmp_path / "templates",
        outbox_path=tmp_path / "outbox.jsonl",
    )
    broker, actors = setup(settings)
    runtime = actors.runtime
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=50)
    try:
        worker.start()
        assert runtime.senders.submit(threading.get_ident).result(5)
    finally:
        worker.stop()
        broker.close()
        runtime.store.redis.close()
    with pytest.raises(RuntimeError, match="shutdown"):
        runtime.senders.submit(threading.get_ident)
