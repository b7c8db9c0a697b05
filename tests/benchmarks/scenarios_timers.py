"""Timers at N waiting customers (issue 3): Redis bytes each, worker RSS, fire rate, lateness.

The harness's own version, used until ``tests.benchmarks.bench_runtime`` exposes ``run_timers``.

* **Bytes per waiting customer**: N timers written with the production member format
  (``customer|run|revision`` in 16 sharded sorted sets) and Redis ``used_memory`` read before and
  after; then, on a sample, the whole state of a waiting customer (enrollment hash, timer, live and
  last-entry indexes) created by the real ``Runtime.enter`` — the profile is counted apart, it
  exists whether or not the customer waits.
* **Worker RSS**: a real ``dramatiq orchestrator.worker`` process, measured after a warm-up with no
  timers waiting and again after N timers wait and a batch of them fired through it.
* **Fire rate**: the production ``Scheduler.fire_due`` claiming due timers and handing them to the
  workers' ``fire_timers`` actor (RedisBroker enqueue included) while N others wait.
* **Lateness**: timers due spread over a few seconds, and bursts of K timers due at one instant,
  fired by ``Scheduler.run_forever`` in a thread; lateness is the time each timer was handed to a
  worker minus its due time.  The bursts give the "lateness vs due timers" plot.
"""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Any

import redis

from orchestrator.runtime.compose import build_runtime
from orchestrator.workers.scheduler import Scheduler
from tests.benchmarks.harness import Figure, add_plot_point
from tests.benchmarks.scenarios_runtime import percentile
from tests.drills import support

BYTES_TARGET = 400.0
FIRE_TARGET = 20_000.0
LATENESS_TARGET = 1.0
RSS_FLAT = 1.25


def run_id(customer_id: str) -> str:
    """A run id of the production shape (``<journey>-<16 hex>``), without depending on how it is derived."""
    return "waiter-" + hashlib.sha256(customer_id.encode()).hexdigest()[:16]


def members(prefix: str, count: int, due: Any, revision: int = 2) -> list[tuple[str, str, int, float]]:
    """Timer entries shaped like production ones (deterministic run ids of the ``waiter`` journey)."""
    return [
        (f"{prefix}{index:07d}", run_id(f"{prefix}{index:07d}"), revision, float(due(index))) for index in range(count)
    ]


def schedule(runtime: Any, entries: list[tuple[str, str, int, float]], batch: int = 10_000) -> None:
    for start in range(0, len(entries), batch):
        runtime.timers.schedule_many(entries[start : start + batch])


def used_memory(client: Any) -> int:
    return int(client.info("memory")["used_memory"])


class Clocked:
    """Wraps the scheduler's hand-off to record how late each timer reached the workers."""

    def __init__(self, send: Any, dues: dict[str, float]) -> None:
        self.send = send
        self.dues = dues
        self.lateness: list[float] = []

    def reached(self, count: int) -> Any:
        return lambda: len(self.lateness) >= count

    def __call__(self, batch: list[str]) -> None:
        self.send(batch)
        now = time.time()
        self.lateness.extend(now - self.dues[m] for m in batch if m in self.dues)


def run(quick: bool, redis_url: str | None = None) -> list[Figure]:
    assert redis_url
    waiting = 100_000 if quick else 1_000_000
    sample = 5_000 if quick else 20_000
    due_now = 20_000 if quick else 100_000
    spread = (5_000, 5.0) if quick else (20_000, 10.0)
    bursts = (1_000, 10_000, 50_000) if quick else (1_000, 10_000, 100_000, 1_000_000)

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushall()
    space = support.make_workspace(redis_url, {"waiter": support.WAIT_THEN_SEND.format(wait="30d")})
    settings = space.settings()
    _broker, actors = support.broker_client(redis_url)
    runtime = build_runtime(settings, client)
    worker = support.start_worker(space, processes=1, threads=8)
    figures: list[Figure] = []
    try:
        # Warm the worker on the real path (one event, one wait): its runtime is built and in use.
        support.seed_profiles(client, ["warm"])
        support.api(redis_url).track("warm", "wait.started", {})
        support.wait_for(lambda: runtime.timers.pending() >= 1, 60, what="worker warm-up")
        rss_idle = worker.rss_bytes()

        # 1. bytes per waiting timer, N of them
        far = time.time() + 30 * 86400
        before = used_memory(client)
        schedule(runtime, members("w", waiting, lambda i: far + i % 86400))
        timer_bytes = (used_memory(client) - before) / waiting

        # 2. the whole state of a waiting customer, on a sample, made by the real Runtime.enter
        ids = support.customer_ids(sample, prefix="s")
        before = used_memory(client)
        support.seed_profiles(client, ids)
        profile_bytes = (used_memory(client) - before) / sample
        journey = runtime.journeys.current["waiter"]
        before = used_memory(client)
        for profile in runtime.store.get_profiles(ids).values():
            runtime.enter(journey, profile, run_id=run_id(profile.id), trigger={})
        state_bytes = (used_memory(client) - before) / sample

        # 3. fire rate while N wait: claim + hand to workers in chunks
        scheduler = Scheduler(runtime, actors.fire_timers.send, actors.enter_batch.send)
        now = time.time()
        schedule(runtime, members("d", due_now, lambda i: now - 1 - i * 1e-6))
        started = time.perf_counter()
        fired = scheduler.fire_due(scheduler.parts.clock())
        fire_rate = fired / (time.perf_counter() - started)
        support.wait_for(lambda: support.queue_depths(client)["loyaloop-timers"] == 0, 600, what="timers drained")
        rss_loaded = worker.rss_bytes()

        # 4. lateness: a steady spread, then bursts of K due at once, with the scheduler loop running
        lateness_spread, burst_figures = _lateness(runtime, actors, spread, bursts)
        rss_after = max(worker.rss_bytes(), rss_loaded)  # (the bursts' stale timers are still draining)
    finally:
        worker.stop()
        runtime.close()
        client.close()

    figures += [
        Figure("timers", f"Redis bytes per waiting timer ({waiting:,} waiting)", timer_bytes, "B", note="timer only"),
        Figure(
            "timers",
            "Redis bytes per waiting customer",
            state_bytes,
            "B",
            target=BYTES_TARGET,
            compare="<=",
            note=f"enrollment+timer+indexes, sample {sample:,}; profile {profile_bytes:,.0f} B more",
        ),
        Figure(
            "timers",
            f"worker RSS with {waiting:,} waiting, after firing",
            rss_after / 2**20,
            "MiB",
            rss_idle / 2**20,
            "MiB idle",
            RSS_FLAT,
            "ratio<=",
        ),
        Figure(
            "timers",
            f"scheduler fire rate ({due_now:,} due, {waiting:,} waiting)",
            fire_rate,
            "timers/s",
            target=FIRE_TARGET,
            compare=">=",
        ),
        Figure(
            "timers",
            f"p99 lateness, {spread[0]:,} due over {spread[1]:.0f} s",
            percentile(lateness_spread, 0.99),
            "s",
            target=LATENESS_TARGET,
            compare="<=",
            note=f"max {max(lateness_spread):.2f} s",
        ),
    ]
    return figures + burst_figures


def _lateness(
    runtime: Any, actors: Any, spread: tuple[int, float], bursts: tuple[int, ...]
) -> tuple[list[float], list[Figure]]:
    dues: dict[str, float] = {}
    clocked = Clocked(actors.fire_timers.send, dues)
    scheduler = Scheduler(runtime, clocked, actors.enter_batch.send)
    stop = threading.Event()
    loop = threading.Thread(target=scheduler.run_forever, args=(stop,), daemon=True)
    loop.start()
    figures = []
    try:
        count, seconds = spread
        start = time.time() + 1.0
        entries = members("l", count, lambda i: start + seconds * i / count)
        dues.update((f"{c}|{r}|{v}", d) for c, r, v, d in entries)
        schedule(runtime, entries)
        support.wait_for(lambda: len(clocked.lateness) >= count, seconds + 120, what="spread fired")
        spread_lateness = list(clocked.lateness)
        for size in bursts:
            clocked.lateness = []
            dues.clear()
            at = time.time() + 3600  # written first, then moved due at once
            entries = members(f"b{size}-", size, lambda _i, due=at: due)
            schedule(runtime, entries)
            moment = time.time() + 0.5
            entries = [(c, r, v, moment) for c, r, v, _ in entries]
            dues.update((f"{c}|{r}|{v}", moment) for c, r, v, _ in entries)
            schedule(runtime, entries)
            support.wait_for(clocked.reached(size), 600, what=f"burst of {size}")
            values = clocked.lateness
            p50, p99, worst = percentile(values, 0.5), percentile(values, 0.99), max(values)
            for label, value in (("p50", p50), ("p99", p99), ("max", worst)):
                add_plot_point(
                    "timer_lateness_vs_due", "timers due at the same instant", "lateness (s)", label, size, value
                )
            figures.append(
                Figure(
                    "timers",
                    f"burst of {size:,} due at once: p99 lateness",
                    p99,
                    "s",
                    note=f"p50 {p50:.2f} s, max {worst:.2f} s",
                )
            )
    finally:
        stop.set()
        loop.join(timeout=10)
    return spread_lateness, figures
