"""A real runtime for tests: real Redis, a RedisBroker and in-process Dramatiq worker threads,
journeys built in Python, templates written to a temporary folder, the outbox channel, and a
clock the test moves by hand."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dramatiq
import redis

from orchestrator.language.journey import Journey
from orchestrator.plugins import get_plugin_manager
from orchestrator.runtime.compose import build_runtime
from orchestrator.runtime.intake import Loyaloop
from orchestrator.runtime.runtime import Runtime
from orchestrator.settings import Settings
from orchestrator.store.connect import open_redis
from orchestrator.workers.actors import QUEUES, ActorDispatcher, Actors
from orchestrator.workers.closing_broker import ClosingRedisBroker
from orchestrator.workers.scheduler import Scheduler

#: ``redis+cluster://…``: every Harness keeps its state there (the broker stays on the test's Redis).
STATE_URL_VARIABLE = "LOYALOOP_TEST_STATE_URL"
START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday, 11:00 in Amsterdam


class Clock:
    """A hand-moved clock shared by the runtime, the gate and the scheduler."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now = self.now + timedelta(**delta)
        return self.now


def write_templates(folder: Path, names: list[str]) -> None:
    """Minimal email/sms/push templates (en and nl) for each name."""
    for name in names:
        for channel, parts in (("email", ("subject", "html", "txt")), ("sms", ("txt",)), ("push", ("title", "body"))):
            directory = folder / channel
            directory.mkdir(parents=True, exist_ok=True)
            for locale, greeting in ((None, "Hello"), ("nl", "Hallo")):
                for part in parts:
                    suffix = f".{locale}" if locale else ""
                    text = f"{greeting} {{{{ profile.first_name | default('there') }}}} ({name})"
                    (directory / f"{name}{suffix}.{part}.j2").write_text(text, encoding="utf-8")


def journey(data: dict[str, Any]) -> Journey:
    built = Journey.model_validate(data)
    version = uuid.uuid5(uuid.NAMESPACE_OID, json.dumps(data, sort_keys=True, default=str)).hex[:12]
    return built.model_copy(update={"version": version})


class Harness:
    """Everything wired like production, bound to one test's Redis."""

    def __init__(
        self,
        redis_url: str,
        tmp_path: Path,
        journeys: list[Journey],
        *,
        settings: dict[str, Any] | None = None,
        templates: list[str] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.clock = clock or Clock()
        self.tmp_path = tmp_path
        write_templates(tmp_path / "templates", templates or ["hello", "tips", "winback"])
        self.settings = Settings(
            redis_url=redis_url,
            outbox_path=tmp_path / "outbox.jsonl",
            templates_dir=tmp_path / "templates",
            journeys_dir=tmp_path / "journeys",
            secret_key="s" * 40,
            **(settings or {}),
        )
        # The state on a Redis Cluster instead, when the scale-out sweep asks (tests/runtime/test_on_cluster.py).
        state_url = os.environ.get(STATE_URL_VARIABLE)
        self.client = (
            open_redis(self.settings, url=state_url)
            if state_url
            else redis.Redis.from_url(redis_url, decode_responses=True)
        )
        if state_url:  # the test's Redis is flushed by its fixture; the shared cluster here
            self.client.flushall(target_nodes="primaries")
        self.broker = ClosingRedisBroker(url=redis_url, namespace=f"t{uuid.uuid4().hex[:8]}")
        self.actors = Actors(self.broker, lambda actors: self.runtime)
        self.runtime: Runtime = build_runtime(
            self.settings,
            self.client,
            journeys={j.id: j for j in journeys},
            dispatcher=ActorDispatcher(self.actors),
            clock=self.clock,
            pm=get_plugin_manager(),
        )
        self.actors.use(self.runtime)
        self.api = Loyaloop(self.actors, self.client, clock=self.clock)
        self.scheduler = Scheduler(
            self.runtime,
            self.actors.fire_timers.send,
            self.actors.enter_batch.send,
            drain_events=self.actors.drain_events.send,
        )
        self.worker: dramatiq.Worker | None = None

    def start(self, threads: int = 4) -> Harness:
        self.worker = dramatiq.Worker(self.broker, worker_threads=threads, worker_timeout=50)
        self.worker.start()
        return self

    def stop(self) -> None:
        """Stop the workers, then the runtime's sender threads, and close every connection the harness
        opened (broker pool and client), so no thread or socket outlives the test."""
        if self.worker is not None:
            self.worker.stop()
            self.worker = None
        self.runtime.close()
        self.broker.close()
        self.client.close()

    def settle(self) -> None:
        """Wait until every queue is empty, twice (a message may enqueue another)."""
        for _ in range(3):
            for queue in QUEUES:
                self.broker.join(queue, timeout=20_000, interval=2)

    def tick(self, **delta: float) -> None:
        """Move the clock, let the scheduler fire what is due, and let the workers finish."""
        self.clock.advance(**delta)
        self.scheduler.tick(self.clock())
        self.settle()

    def outbox(self) -> list[dict[str, Any]]:
        path = self.settings.outbox_path
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def stats(self, journey_id: str) -> dict[str, int]:
        return self.runtime.store.stats(journey_id)


@contextmanager
def running(redis_url: str, tmp_path: Path, journeys: list[Journey], **options: Any) -> Iterator[Harness]:
    harness = Harness(redis_url, tmp_path, journeys, **options).start()
    try:
        yield harness
    finally:
        harness.stop()
