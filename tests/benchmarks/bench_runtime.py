"""Runtime benchmark: ``python -m tests.benchmarks.bench_runtime [--quick]``.

Starts its own redis-server and measures, in the same run:
1. a bare Dramatiq no-op actor's message rate (the yardstick);
2. event → enrollment → outbox rate through the real actors (target ≥ 0.5x the bare rate);
3. p99 latency from ``track`` to the outbox line at 200 events/s (target < 50 ms);
4. a cohort entering one journey through ``enter_batch`` vs the bare per-message rate (target ≥ 5x);
5. timers: Redis bytes per waiting customer (target < 400 B) and the scheduler's fire rate
   (target ≥ 20,000/s) with p99 lateness (target < 1 s).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import tempfile
import time
from array import array
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker

from orchestrator.language.journey import Journey
from orchestrator.plugins import get_plugin_manager
from orchestrator.runtime.compose import build_runtime, freeze_startup_objects
from orchestrator.runtime.intake import Loyaloop
from orchestrator.settings import Settings
from orchestrator.store.timers import Timers
from orchestrator.workers.actors import QUEUES, ActorDispatcher, Actors
from tests.redis_server import RedisServer
from tests.runtime.harness import write_templates

THREADS = 8
#: A shared machine can stall Redis for seconds; a benchmark should report that, not crash on it.
SLOW_OK = "?socket_timeout=60"


def _journey(first_wait: bool) -> Journey:
    steps: list[dict[str, Any]] = [{"id": "hello", "send": "email", "template": "hello"}]
    if first_wait:
        steps.insert(0, {"id": "pause", "wait": "30d"})
    data = {
        "id": "bench_wait" if first_wait else "bench",
        "name": "Bench",
        "trigger": {"event": "signup"} if not first_wait else {"schedule": "0 10 * * *", "timezone": "UTC"},
        "category": "transactional",
        "re_entry": "always",
        "steps": steps,
    }
    return Journey.model_validate(data).model_copy(update={"version": "b1"})


def _profile(customer_id: str) -> str:
    """A stored profile as ``identify`` leaves it (with ``created_at``)."""
    return json.dumps(
        {"id": customer_id, "email": f"{customer_id}@example.com", "created_at": "2026-01-01T00:00:00+00:00"}
    )


def bare_rate(url: str, count: int) -> float:
    broker = RedisBroker(url=url + SLOW_OK, namespace="bare")  # type: ignore[no-untyped-call]

    def noop(n: int) -> None:
        return None

    actor = dramatiq.Actor(noop, broker=broker, actor_name="noop", queue_name="bare", priority=0, options={})
    worker = dramatiq.Worker(broker, worker_threads=THREADS, worker_timeout=50)
    worker.start()
    started = time.perf_counter()
    for n in range(count):
        actor.send(n)
    broker.join("bare", interval=5)
    elapsed = time.perf_counter() - started
    worker.stop()
    broker.close()
    return count / elapsed


class System:
    def __init__(self, url: str, folder: Path, journeys: list[Journey]) -> None:
        write_templates(folder / "templates", ["hello"])
        self.outbox = folder / "outbox.jsonl"
        settings = Settings(
            redis_url=url, outbox_path=self.outbox, templates_dir=folder / "templates", secret_key="b" * 40
        )
        self.client = redis.Redis.from_url(url + SLOW_OK, decode_responses=True)
        self.broker = RedisBroker(url=url + SLOW_OK, namespace="loyaloop")  # type: ignore[no-untyped-call]
        self.actors = Actors(self.broker, lambda _a: self.runtime)
        self.runtime = build_runtime(
            settings,
            self.client,
            journeys={j.id: j for j in journeys},
            dispatcher=ActorDispatcher(self.actors),
            pm=get_plugin_manager(),
        )
        self.actors.use(self.runtime)
        freeze_startup_objects()  # as a worker does once its runtime is built (orchestrator.workers.broker)
        self.api = Loyaloop(self.actors, self.client)
        self.worker = dramatiq.Worker(self.broker, worker_threads=THREADS, worker_timeout=50)
        self.worker.start()

    def settle(self) -> None:
        for _ in range(2):
            for queue in QUEUES:
                self.broker.join(queue, interval=5)

    def lines(self) -> list[dict[str, Any]]:
        if not self.outbox.exists():
            return []
        return [json.loads(line) for line in self.outbox.read_text(encoding="utf-8").splitlines() if line]

    def close(self) -> None:
        self.worker.stop()
        self.runtime.close()
        self.broker.close()


def event_rate(system: System, count: int) -> float:
    for n in range(count):
        system.client.set(f"lp:c:{{r{n}}}:profile", _profile(f"r{n}"))
    started = time.perf_counter()
    for n in range(count):
        system.api.track(f"r{n}", "signup", event_id=f"rate-{n}")
    system.settle()
    elapsed = time.perf_counter() - started
    assert len(system.lines()) >= count, len(system.lines())
    return count / elapsed


def latency(system: System, seconds: float, rate: float) -> tuple[float, float]:
    sent: dict[str, float] = {}
    before = len(system.lines())
    interval = 1.0 / rate
    start = time.perf_counter()
    n = 0
    while time.perf_counter() - start < seconds:
        cid = f"l{n}"
        system.client.set(f"lp:c:{{{cid}}}:profile", _profile(cid))
        sent[cid] = datetime.now(UTC).timestamp()
        system.api.track(cid, "signup", event_id=f"lat-{n}")
        n += 1
        time.sleep(max(0.0, start + n * interval - time.perf_counter()))
    system.settle()
    lags = []
    for line in system.lines()[before:]:
        if line["customer_id"] in sent:
            lags.append(datetime.fromisoformat(line["sent_at"]).timestamp() - sent[line["customer_id"]])
    lags.sort()
    return statistics.median(lags) * 1000, lags[int(len(lags) * 0.99) - 1] * 1000


def cohort_rate(system: System, count: int) -> float:
    pipe = system.client.pipeline(transaction=False)
    for n in range(count):
        pipe.set(f"lp:c:{{k{n}}}:profile", _profile(f"k{n}"))
    pipe.execute()
    ids = [f"k{n}" for n in range(count)]
    started = time.perf_counter()
    for start in range(0, count, 500):
        system.actors.enter_batch.send("bench_wait", ids[start : start + 500], "cohort-1", {})
    system.settle()
    elapsed = time.perf_counter() - started
    entered = system.runtime.store.stats("bench_wait").get("_journey:entered", 0)
    assert entered >= count, entered
    return count / elapsed


def timer_figures(url: str, count: int) -> tuple[float, float, float]:
    client = redis.Redis.from_url(url + SLOW_OK, decode_responses=True)
    client.flushall()
    base = int(client.info("memory")["used_memory"])
    timers = Timers(client)
    # Due times spread at 20,000 a second (the target rate), an hour ahead; once they are all
    # written, the loop reads a clock shifted so the first is due a second later (scheduling a
    # million timers takes seconds, which must not count as lateness).
    first_due = time.time() + 3600
    spread = count / 20_000
    for start in range(0, count, 10_000):
        timers.schedule_many(
            (f"cust-{n:07d}", f"welcome-{n:016x}", 3, first_due + spread * n / count)
            for n in range(start, start + 10_000)
        )
    shift = first_due - time.time() - 1.0
    per_customer = (int(client.info("memory")["used_memory"]) - base) / count
    # Fired = claimed with a lease and handed to workers as Dramatiq messages of 200 timers (what
    # `loyaloop scheduler` does); the workers are not running, so the leases simply stay.
    broker = RedisBroker(url=url + SLOW_OK, namespace="timerbench")  # type: ignore[no-untyped-call]

    def fire_timers(members: list[str]) -> None:
        return None

    actor = dramatiq.Actor(fire_timers, broker=broker, actor_name="fire", queue_name="fire", priority=0, options={})
    lateness = array("d")
    fired = 0
    gc.freeze()  # a million scheduled members must not make the measuring loop pay for GC passes
    while fired < count:
        at = time.time() + shift
        claimed = timers.claim_due(at, 1000)
        for timer in claimed:
            lateness.append(at - timer.due)
        for chunk in range(0, len(claimed), 200):
            actor.send([t.member for t in claimed[chunk : chunk + 200]])
        fired += len(claimed)
        if not claimed:
            time.sleep(0.002)
    broker.close()
    gc.unfreeze()
    client.flushall()
    # Fire rate: claim capacity measured on a backlog (everything already due), separately.
    backlog = _backlog_rate(timers, client, min(count, 200_000))
    ordered = sorted(lateness)
    client.close()
    return per_customer, backlog, ordered[int(len(ordered) * 0.99) - 1]


def _backlog_rate(timers: Timers, client: redis.Redis, count: int) -> float:
    """Due timers fired per second when they are all due: claim in batches, hand out chunks, ack."""
    now = time.time()
    for start in range(0, count, 10_000):
        timers.schedule_many((f"b-{n:07d}", "run", 1, now - 1) for n in range(start, min(count, start + 10_000)))
    fired = 0
    started = time.perf_counter()
    while fired < count:
        claimed = timers.claim_due(time.time(), 2000)
        timers.ack(claimed)
        fired += len(claimed)
    return fired / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller counts (a minute or so)")
    args = parser.parse_args(argv)
    n_bare, n_events, n_cohort, n_timers, lat_seconds = (
        (2000, 1000, 10_000, 200_000, 5) if args.quick else (10_000, 5000, 100_000, 1_000_000, 20)
    )
    server = RedisServer().start()
    try:
        with tempfile.TemporaryDirectory() as folder:
            freeze_startup_objects()  # the yardstick gets the same treatment as the runtime below
            bare = bare_rate(server.url, n_bare)
            system = System(server.url, Path(folder), [_journey(False), _journey(True)])
            try:
                events = event_rate(system, n_events)
                p50, p99 = latency(system, lat_seconds, 200)
                cohort = cohort_rate(system, n_cohort)
            finally:
                system.close()
        per_customer, fire_rate, late = timer_figures(server.url, n_timers)
    finally:
        server.cleanup()
    print(f"bare no-op actor:            {bare:10.0f} msg/s")
    print(f"event → enrollment → outbox: {events:10.0f} ev/s  ({events / bare:.2f}x bare; target ≥ 0.5x)")
    print(f"track → outbox at 200 ev/s:  p50 {p50:.1f} ms, p99 {p99:.1f} ms (target p99 < 50 ms)")
    print(f"cohort of {n_cohort}:        {cohort:10.0f} customers/s ({cohort / bare:.1f}x bare; target ≥ 5x)")
    print(f"timers ({n_timers}):         {per_customer:.0f} B each (target < 400 B)")
    print(f"timer fire rate (backlog):   {fire_rate:10.0f} /s (target ≥ 20,000/s)")
    print(f"timer lateness at 20,000/s:  p99 {late * 1000:.0f} ms (target < 1 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
