"""Runtime throughput (issue 3): event → send, cohort fan-out, and throughput vs worker processes.

The harness's own versions, used until ``tests.benchmarks.bench_runtime`` exposes ``run_event`` /
``run_cohort``.  Everything runs for real: ``dramatiq orchestrator.worker`` processes on the
harness's redis-server, events queued through the public Python API, messages written by the
outbox channel; the baseline is ``dramatiq tests.benchmarks.noop_worker`` (an actor that does
nothing) with the same process and thread counts on the same Redis, measured in the same run.

Rates are taken from the outbox's own ``sent_at`` stamps (first to last message), so worker
start-up is not counted against Loyaloop; the no-op rate is taken from the queue draining.  The
no-op message per event is the *naive design* (what a user would write without Loyaloop's
batching); beside it the event path's Redis CPU per event is set against pipelined ``INCR``'s, the
physical limit of one Redis core.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis

from orchestrator.store.timers import Timers
from tests.benchmarks.cpu_meters import redis_cpu
from tests.benchmarks.harness import Figure, add_plot_point
from tests.drills import support

THREADS = 8
#: Where ``tests.benchmarks.noop_worker`` listens (not imported: it sets the global broker).
NOOP_NAMESPACE, NOOP_QUEUE = "loyaloop-noop", "noop"
LATENCY_RATE = 200.0
#: The naive design's baseline: one bare Dramatiq no-op message per event (or per customer).
NAIVE = "no-op msg/s (naive: 1 msg each)"


def noop_rate(redis_url: str, messages: int, processes: int, threads: int = THREADS) -> float:
    """Messages per second a bare no-op actor drains, pre-queued, on ``processes`` x ``threads``."""
    from dramatiq import Message
    from dramatiq.brokers.redis import RedisBroker

    broker = RedisBroker(url=redis_url, namespace=NOOP_NAMESPACE)  # type: ignore[no-untyped-call]
    broker.declare_queue(NOOP_QUEUE)
    client = redis.Redis.from_url(redis_url)
    for index in range(messages):
        broker.enqueue(Message(queue_name=NOOP_QUEUE, actor_name="noop", args=(index,), kwargs={}, options={}))
    space = support.make_workspace(redis_url, {})
    worker = support.start_worker(space, processes=processes, threads=threads, module="tests.benchmarks.noop_worker")
    queue = f"{NOOP_NAMESPACE}:{NOOP_QUEUE}"
    try:
        support.wait_for(lambda: int(client.llen(queue)) < messages, 60, interval=0.002, what="no-op start")
        started = time.monotonic()
        broker.join(NOOP_QUEUE, interval=5, timeout=600_000)
        return messages / (time.monotonic() - started)
    finally:
        worker.stop()
        broker.close()
        client.close()


def _stamps(path: Any) -> list[float]:
    return sorted(datetime.fromisoformat(line["sent_at"]).timestamp() for line in support.outbox_lines(path))


def pipelined_incr(redis_url: str, count: int, batch: int = 1_000) -> tuple[float, float]:
    """``INCR`` in pipelines of ``batch``: commands per second, and Redis CPU µs per command (its
    ``INFO cpu``) — the physical limit of one Redis core, where a call costs only itself."""
    client = redis.Redis.from_url(redis_url)
    try:
        before, started = redis_cpu([redis_url]), time.perf_counter()
        for start in range(0, count, batch):
            pipe = client.pipeline(transaction=False)
            for _ in range(min(batch, count - start)):
                pipe.incr("bench:incr")
            pipe.execute()
        elapsed = time.perf_counter() - started
        return count / elapsed, (redis_cpu([redis_url]) - before) / count * 1e6
    finally:
        client.delete("bench:incr")
        client.close()


@dataclass(frozen=True)
class EventRun:
    rate: float  # events per second, first to last send
    redis_us: float  # Redis CPU per event, from the first track to the last send (intake and drain)


def event_rate(redis_url: str, events: int, processes: int, threads: int = THREADS) -> float:
    """Events per second through track → handle_event → deliver → outbox, pre-queued."""
    return event_run(redis_url, events, processes, threads).rate


def event_run(redis_url: str, events: int, processes: int, threads: int = THREADS) -> EventRun:
    """:func:`event_rate`, with the Redis CPU the events cost."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushall()
    space = support.make_workspace(redis_url, {"ping": support.ONE_STEP})
    ids = support.customer_ids(events)
    support.seed_profiles(client, ids)
    lp = support.api(redis_url)
    before = redis_cpu([redis_url])
    for customer_id in ids:
        lp.track(customer_id, "ping.sent", {})
    worker = support.start_worker(space, processes=processes, threads=threads)
    try:
        support.wait_for(lambda: support.count_lines(space.outbox) >= events, 600, interval=0.05, what="all sends")
        redis_us = (redis_cpu([redis_url]) - before) / events * 1e6
        stamps = _stamps(space.outbox)
        return EventRun((len(stamps) - 1) / max(stamps[-1] - stamps[0], 1e-6), redis_us)
    finally:
        worker.stop()
        client.close()


def track_latency(redis_url: str, seconds: float, rate: float = LATENCY_RATE) -> list[float]:
    """Milliseconds from ``track`` to the outbox line, at a steady ``rate`` of events per second."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushall()
    space = support.make_workspace(redis_url, {"ping": support.ONE_STEP})
    total = int(seconds * rate)
    ids = support.customer_ids(total + 1, prefix="lat")
    support.seed_profiles(client, ids)
    lp = support.api(redis_url)
    worker = support.start_worker(space, processes=1, threads=THREADS)
    try:
        lp.track(ids[-1], "ping.sent", {})  # warm-up: the worker builds its runtime on the first message
        support.wait_for(lambda: support.count_lines(space.outbox) >= 1, 60, interval=0.02, what="warm-up")
        sent_at: dict[str, float] = {}
        started = time.time()
        for index, customer_id in enumerate(ids[:-1]):
            pause = started + index / rate - time.time()
            if pause > 0:
                time.sleep(pause)
            sent_at[customer_id] = time.time()
            lp.track(customer_id, "ping.sent", {})
        support.wait_for(lambda: support.count_lines(space.outbox) >= total + 1, 120, interval=0.05, what="sends")
        latencies = []
        for line in support.outbox_lines(space.outbox):
            if line["customer_id"] in sent_at:
                latencies.append(
                    (datetime.fromisoformat(line["sent_at"]).timestamp() - sent_at[line["customer_id"]]) * 1000
                )
        return sorted(latencies)
    finally:
        worker.stop()
        client.close()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def run_event(quick: bool, redis_url: str | None = None) -> list[Figure]:
    assert redis_url
    events, seconds = (3_000, 15.0) if quick else (20_000, 30.0)  # p99 over at least 3,000 paced events
    baseline = noop_rate(redis_url, events, 1)
    found = event_run(redis_url, events, 1)
    incr_rate, incr_us = pipelined_incr(redis_url, 100_000 if quick else 500_000)
    latencies = track_latency(redis_url, seconds)
    return [
        Figure(
            "event",
            f"track → outbox, {events:,} events, 1x{THREADS}",
            found.rate,
            "events/s",
            baseline,
            NAIVE,
            0.5,
            "ratio>=",
        ),
        Figure(
            "event",
            "Redis CPU per event (track + drain + send)",
            found.redis_us,
            "µs",
            incr_us,
            "µs/pipelined INCR",
            note=f"{1e6 / found.redis_us:,.0f} events/s per Redis core; pipelined INCR {incr_rate:,.0f}/s wall",
        ),
        Figure(
            "event",
            f"p99 track → outbox at {LATENCY_RATE:.0f} events/s",
            percentile(latencies, 0.99),
            "ms",
            target=50.0,
            compare="<=",
            note=f"p50 {statistics.median(latencies):.1f} ms, n={len(latencies)}",
        ),
    ]


def run_cohort(quick: bool, redis_url: str | None = None) -> list[Figure]:
    """A cohort entering one journey (first step a 30-day wait) in chunks of 500 per message, as the
    scheduler hands a broadcast out; done when every customer's enrollment waits on its timer."""
    assert redis_url
    from orchestrator.workers.scheduler import COHORT_CHUNK

    size = 5_000 if quick else 100_000
    baseline = noop_rate(redis_url, 3_000 if quick else 20_000, 1)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushall()
    space = support.make_workspace(redis_url, {"cohort": support.COHORT})
    ids = support.customer_ids(size + 1, prefix="co")
    support.seed_profiles(client, ids)
    _broker, actors = support.broker_client(redis_url)
    timers = Timers(client)  # entering = an enrollment waiting on its first step's timer
    worker = support.start_worker(space, processes=1, threads=THREADS)
    try:
        actors.enter_batch.send("cohort", [ids[-1]], "warm-up", {})
        support.wait_for(lambda: timers.pending() >= 1, 60, interval=0.02, what="warm-up")
        started = time.monotonic()
        for chunk in support.chunks(ids[:-1], COHORT_CHUNK):
            actors.enter_batch.send("cohort", chunk, "bench", {})
        support.wait_for(lambda: timers.pending() >= size + 1, 1800, interval=0.1, what="cohort entered")
        rate = size / (time.monotonic() - started)
    finally:
        worker.stop()
        client.close()
    return [
        Figure(
            "cohort",
            f"{size:,} customers entering, {COHORT_CHUNK} per message",
            rate,
            "customers/s",
            baseline,
            NAIVE,
            5.0,
            "ratio>=",
        )
    ]


def run_workers(quick: bool, redis_url: str | None = None) -> list[Figure]:
    """Throughput vs worker processes (1, 2, 4), Loyaloop and the no-op beside it; also a plot."""
    assert redis_url
    events = 2_000 if quick else 10_000
    figures = []
    for processes in (1, 2, 4):
        client = redis.Redis.from_url(redis_url)
        client.flushall()
        client.close()
        baseline = noop_rate(redis_url, events, processes)
        rate = event_rate(redis_url, events, processes)
        add_plot_point(
            "throughput_vs_processes",
            "worker processes (8 threads each)",
            "messages or events per second",
            "bare no-op actor (msg/s)",
            processes,
            baseline,
        )
        add_plot_point(
            "throughput_vs_processes",
            "worker processes (8 threads each)",
            "messages or events per second",
            "Loyaloop event → outbox (events/s)",
            processes,
            rate,
        )
        figures.append(
            Figure(
                "workers",
                f"track → outbox, {processes} process(es) x {THREADS}",
                rate,
                "events/s",
                baseline,
                NAIVE,
            )
        )
    return figures
