"""Loyaloop in one process: the same actors, runtime and scheduler, with nothing to install.

Without ``REDIS_URL`` the state lives in an in-process Redis (fakeredis, with Lua via lupa) and the
broker is Dramatiq's StubBroker, worked by real ``dramatiq.Worker`` threads; channels without
provider credentials write to the outbox file.  Nothing leaves the machine, and without
``LOYALOOP_SECRET_KEY`` unsubscribe links are signed with a key of this process's own (they cannot
outlive the in-process state they refer to; with a real Redis the key is required).  With ``REDIS_URL``
the same class runs against the real Redis (a RedisBroker), which is how ``loyaloop demo`` uses a
real server when one is configured.

This is the production code path, not a simulation of it: only the broker and the Redis server
are swapped, which is why the demo is a fair picture of what the workers do.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from types import TracebackType
from typing import Any

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker

from orchestrator import plugins
from orchestrator.language.journey import Journey
from orchestrator.message import ActionKind
from orchestrator.runtime.compose import build_runtime
from orchestrator.runtime.intake import Loyaloop
from orchestrator.runtime.runtime import Runtime
from orchestrator.runtime.transitions import utc_now
from orchestrator.settings import Settings
from orchestrator.store.connect import open_redis
from orchestrator.workers.actors import ActorDispatcher, Actors
from orchestrator.workers.queue_broker import build_queue_broker
from orchestrator.workers.scheduler import Scheduler

#: Fewer timer shards in-process: there is one scheduler and fakeredis runs Lua in Python.
EMBEDDED_SHARDS = 4


def in_process_redis() -> redis.Redis:
    """A private in-memory Redis with Lua support (fakeredis + lupa)."""
    import fakeredis

    client: redis.Redis = fakeredis.FakeRedis(decode_responses=True)
    return client


class SimClock:
    """A virtual clock (``loyaloop demo``, ``loyaloop simulate``): read by the runtime, the gate and
    the scheduler; moved only by whoever drives the simulation, never backwards."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


class Embedded:
    """A broker, worker threads, a runtime and a scheduler sharing one Redis (real or in-process)."""

    def __init__(
        self,
        settings: Settings,
        *,
        journeys: dict[str, Journey] | None = None,
        clock: Callable[[], datetime] = utc_now,
        threads: int = 4,
        client: redis.Redis | None = None,
        action_kinds: dict[str, ActionKind] | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.threads = threads
        # A client built here from REDIS_URL is ours to close in stop(); one handed in is the caller's.
        self._owned_client: redis.Redis | None = None
        if client is None and settings.redis_url:
            client = self._owned_client = open_redis(settings)
        # Only a Redis made here, private to the process, may go without LOYALOOP_SECRET_KEY.
        in_process = client is None
        self.client = client if client is not None else in_process_redis()
        self.broker: dramatiq.Broker
        if settings.redis_url:
            self.broker = build_queue_broker(settings)
        else:
            self.broker = StubBroker()
            self.broker.emit_after("process_boot")
        self.actors = Actors(self.broker, lambda _actors: self.runtime)
        self.runtime: Runtime = build_runtime(
            settings,
            self.client,
            journeys=journeys,
            dispatcher=ActorDispatcher(self.actors),
            clock=clock,
            timer_shards=EMBEDDED_SHARDS if not settings.redis_url else None,
            in_process=in_process,
            action_kinds=action_kinds,
        )
        self.actors.use(self.runtime)
        # The outbox stamps ``sent_at`` from this clock: the simulated time in ``loyaloop demo``.
        plugins.use_clock(self.runtime.delivery.channels, clock)
        self.api = Loyaloop(
            self.actors,
            self.client,
            clock=clock,
            consent_channels=plugins.consent_channels(self.runtime.delivery.channels),
        )
        self.scheduler = Scheduler(
            self.runtime,
            self.actors.fire_timers.send,
            self.actors.enter_batch.send,
            drain_events=self.actors.drain_events.send,
        )
        self.worker: dramatiq.Worker | None = None

    def start(self) -> Embedded:
        self.worker = dramatiq.Worker(self.broker, worker_threads=self.threads, worker_timeout=20)
        self.worker.start()
        return self

    def stop(self) -> None:
        """Stop the workers, then the runtime's sender threads, and close the connections opened here
        (the broker's pool, our own client): left to the garbage collector, their sockets are
        reported unclosed (ResourceWarning)."""
        if self.worker is not None:
            self.worker.stop()
            self.worker = None
        self.runtime.close()
        self.broker.close()
        if self._owned_client is not None:
            self._owned_client.close()

    def __enter__(self) -> Embedded:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def settle(self, timeout_ms: int = 60_000) -> None:
        """Wait until the workers have processed everything queued (and what that queued), tracked
        events included: a shard still holding events once the queues are idle lost its drain
        message, and is drained again.

        On the StubBroker this polls the queues' unfinished-task counts: ``StubBroker.join``
        starts a thread per call, which dominates a demo that settles thousands of times.
        """
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            self._join(timeout_ms, deadline)
            if not self.api.events.depth():
                return
            self.scheduler.redrive_events()
            if time.monotonic() > deadline:
                raise TimeoutError("the in-process workers did not drain the tracked events in time")

    def _join(self, timeout_ms: int, deadline: float) -> None:
        if not isinstance(self.broker, StubBroker):
            options = {"interval": 2} if isinstance(self.broker, RedisBroker) else {}
            for _ in range(2):
                for queue in self.actors.queues:
                    self.broker.join(queue, timeout=timeout_ms, **options)
            return
        queues = self.broker.queues
        idle_rounds = 0
        while idle_rounds < 2:
            busy = any(queue.unfinished_tasks for queue in list(queues.values()))
            idle_rounds = 0 if busy else idle_rounds + 1
            if time.monotonic() > deadline:
                raise TimeoutError("the in-process workers did not finish in time")
            time.sleep(0.0005 if busy else 0.0001)

    def tick(self, now: datetime | None = None) -> Any:
        """One scheduler pass at ``now`` (the simulated clock in the demo), then settle."""
        report = self.scheduler.tick(now or self.clock())
        self.settle()
        return report
