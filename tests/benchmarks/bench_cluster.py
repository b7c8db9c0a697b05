"""Cost of one event and of one cohort entrant on one Redis and on a three-master Redis Cluster, in one run.

Run: ``python -m tests.benchmarks.bench_cluster [--events 3000] [--entrants 3000] [--threads 4] [--rabbitmq]``

Each set-up gets the same work, in its own namespace: ``events`` customers (profiles written
beforehand, not measured) with one ``signup`` event each through a journey that sends one e-mail
(the outbox channel), then a cohort of ``entrants`` other customers entering a broadcast journey
(first step the same e-mail) in ``enter_batch`` messages of 500, as the scheduler hands a cohort
out.  A warm-up of each kind runs first.  Three phases are measured apart:

* **intake**: ``track`` of every event, queued before the worker threads start (this process's CPU: the
  Python API's share, not the HTTP front door's; and the Redis CPU it causes);
* **event drain**: in-process Dramatiq worker threads drain the backlog (a peak: the queue is never
  empty, so most events ride on a drain under way and cost no message of their own);
* **cohort**: the same worker threads enter the cohort, chunks queued beforehand.

For each: this process's CPU-seconds (user + system; the worker threads run in it, so it is the
worker's), every Redis's CPU (``INFO cpu``), state and queue apart where they are apart, the
busiest primary's share, the commands that cost Redis most (``INFO commandstats``) and, with
``--rabbitmq``, RabbitMQ's own CPU (its Erlang VM, from ``/proc``).  Per event or entrant, in
microseconds, then the capacity table of docs/scaling.md (:mod:`tests.benchmarks.capacity`).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dramatiq

from orchestrator.plugins import get_plugin_manager
from orchestrator.runtime.compose import build_runtime
from orchestrator.runtime.intake import Loyaloop
from orchestrator.settings import Settings
from orchestrator.store import layout
from orchestrator.store.connect import open_redis
from orchestrator.workers.actors import ActorDispatcher, Actors
from orchestrator.workers.queue_broker import build_queue_broker
from orchestrator.workers.scheduler import COHORT_CHUNK
from tests.benchmarks import capacity
from tests.benchmarks.cpu_meters import group_cpu, own_cpu, redis_commands, redis_cpu, reset_commands
from tests.drills import support
from tests.runtime.harness import write_templates

JOURNEY = """\
id: welcome
name: Welcome
trigger:
  event: signup
category: transactional
steps:
  - id: hello
    send: email
    template: hello
"""

BROADCAST = """\
id: broadcast
name: Broadcast
trigger:
  event: broadcast.never
re_entry: never
category: transactional
steps:
  - id: hello
    send: email
    template: hello
"""

WARM_UP = 100
#: The meter's own commands, left out of the ranking.
UNMEASURED = frozenset({"config|resetstat", "info"})


@dataclass(frozen=True)
class SetUp:
    """Where the state and the queue live; ``rabbit_pgid`` is the RabbitMQ server's process group."""

    name: str
    state_url: str
    state_nodes: list[str]
    queue_url: str
    rabbit_pgid: int | None = None

    @property
    def queue_apart(self) -> bool:
        return self.queue_url not in self.state_nodes and not self.queue_url.startswith("amqp")


@dataclass
class Phase:
    """CPU seconds one phase cost each part, and its wall time."""

    units: int
    seconds: float = 0.0
    worker: float = 0.0
    state: float = 0.0
    queue: float = 0.0
    per_node: list[float] = field(default_factory=list)
    commands: dict[str, tuple[int, float]] = field(default_factory=dict)

    def us(self, cpu: float) -> float:
        return cpu / self.units * 1e6

    @property
    def rate(self) -> float:
        return self.units / self.seconds if self.seconds else 0.0

    @property
    def busiest_share(self) -> float:
        total = sum(self.per_node)
        return max(self.per_node) / total if total > 0 else 1.0

    def top_commands(self, count: int = 4) -> str:
        """The commands that cost Redis most, in µs of their own time per unit."""
        measured = {name: row for name, row in self.commands.items() if name not in UNMEASURED}
        ranked = sorted(measured.items(), key=lambda item: -item[1][1])[:count]
        return ", ".join(f"{name} {usec / self.units:.1f}" for name, (_calls, usec) in ranked)


@dataclass
class Row:
    setup: SetUp
    intake: Phase
    events: Phase
    cohort: Phase


class LineCounter:
    """Lines in the outbox, read on from where the last look stopped: the waiting thread shares the
    process with the worker threads, so re-reading the whole file every 50 ms would be counted as
    the worker's CPU."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset, self.lines = path, 0, 0

    def reaches(self, count: int) -> Callable[[], bool]:
        return lambda: self.count() >= count

    def count(self) -> int:
        if self.path.exists():
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                chunk = handle.read()
            complete = chunk.rfind(b"\n") + 1  # a line still being written is counted next time
            self.lines += chunk.count(b"\n", 0, complete)
            self.offset += complete
        return self.lines


class Meter:
    """Reads every part's CPU before and after a phase."""

    def __init__(self, setup: SetUp) -> None:
        self.setup = setup

    def _queue(self) -> float:
        if self.setup.rabbit_pgid is not None:
            return group_cpu(self.setup.rabbit_pgid)
        return redis_cpu([self.setup.queue_url]) if self.setup.queue_apart else 0.0

    @contextmanager
    def phase(self, units: int) -> Iterator[Phase]:
        nodes = self.setup.state_nodes
        found = Phase(units)
        reset_commands(nodes)
        per_node = [redis_cpu([url]) for url in nodes]
        queue, worker, started = self._queue(), own_cpu(), time.monotonic()
        yield found
        found.seconds = time.monotonic() - started
        found.worker = own_cpu() - worker
        found.queue = self._queue() - queue
        found.per_node = [redis_cpu([url]) - before for url, before in zip(nodes, per_node, strict=True)]
        found.state = sum(found.per_node)
        found.commands = redis_commands(nodes)


def _drain(broker: Any, threads: int, done: Callable[[], bool]) -> None:
    """Worker threads on ``broker`` until ``done``.  A fresh ``dramatiq.Worker`` per phase (paused
    and resumed worker threads drained ten times slower here); the stopped one's middleware is taken
    off the broker, or every later worker would carry it too."""
    worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=50)
    worker.start()
    try:
        support.wait_for(done, 900, interval=0.05, what="every send")
    finally:
        worker.stop()
        broker.middleware[:] = [m for m in broker.middleware if getattr(m, "worker", None) is not worker]


def measure(setup: SetUp, events: int, entrants: int, threads: int, warm_up: int = WARM_UP) -> Row:
    """Intake, event drain and cohort on ``setup``, each phase's CPU read apart."""
    folder = Path(tempfile.mkdtemp(prefix="loyaloop-bench-cluster-"))
    (folder / "journeys").mkdir()
    (folder / "journeys" / "welcome.yaml").write_text(JOURNEY, encoding="utf-8")
    (folder / "journeys" / "broadcast.yaml").write_text(BROADCAST, encoding="utf-8")
    write_templates(folder / "templates", ["hello"])
    settings = Settings(
        redis_url=setup.state_url,
        broker_url=setup.queue_url,
        outbox_path=folder / "outbox.jsonl",
        templates_dir=folder / "templates",
        journeys_dir=folder / "journeys",
        secret_key="s" * 40,
        namespace=f"b{uuid.uuid4().hex[:8]}",  # its own keys and queues
    )
    client = open_redis(settings)
    event_ids, cohort_ids = support.customer_ids(events, "e"), support.customer_ids(entrants, "k")
    warm_events, warm_cohort = support.customer_ids(warm_up, "we"), support.customer_ids(warm_up, "wk")
    support.seed_profiles(client, [*event_ids, *cohort_ids, *warm_events, *warm_cohort])
    broker: Any = build_queue_broker(settings)
    actors = Actors(broker, lambda _actors: runtime)
    runtime = build_runtime(settings, client, dispatcher=ActorDispatcher(actors), pm=get_plugin_manager())
    actors.use(runtime)
    api = Loyaloop(actors, client)
    sent = LineCounter(settings.outbox_path).reaches
    meter = Meter(setup)
    try:
        # Warm-up: both paths once, so imports, template compiles and script loads are not measured.
        for customer_id in warm_events:
            api.track(customer_id, "signup", {}, event_id=f"s-{customer_id}")
        actors.enter_batch.send("broadcast", warm_cohort, "warm-up", {})
        _drain(broker, threads, sent(2 * warm_up))

        with meter.phase(events) as intake:
            for customer_id in event_ids:
                api.track(customer_id, "signup", {}, event_id=f"s-{customer_id}")
        with meter.phase(events) as drained:
            _drain(broker, threads, sent(2 * warm_up + events))
        for chunk in support.chunks(cohort_ids, COHORT_CHUNK):
            actors.enter_batch.send("broadcast", chunk, "bench", {})
        with meter.phase(entrants) as cohort:
            _drain(broker, threads, sent(2 * warm_up + events + entrants))
    finally:
        runtime.close()
        broker.close()
        client.close()
        layout.use(layout.Layout())
    return Row(setup, intake, drained, cohort)


def costs(row: Row) -> capacity.Costs:
    """The model's inputs from one set-up's row: Redis per event is intake and drain together."""
    intake, events, cohort = row.intake, row.events, row.cohort
    return capacity.Costs(
        worker_per_event=events.us(events.worker),
        worker_per_entrant=cohort.us(cohort.worker),
        redis_per_event=intake.us(intake.state) + events.us(events.state),
        redis_per_entrant=cohort.us(cohort.state),
        primaries=len(row.setup.state_nodes),
        busiest_share=max(events.busiest_share, cohort.busiest_share),
        queue_per_event=intake.us(intake.queue) + events.us(events.queue),
        queue_per_entrant=cohort.us(cohort.queue),
    )


def print_rows(rows: list[Row]) -> None:
    print(
        f"\n{'set-up':32} {'phase':7} {'units/s':>8} {'worker µs':>10} {'state Redis µs':>15} "
        f"{'queue µs':>9} {'busiest':>8}  Redis commands' own µs per unit"
    )
    for row in rows:
        for label, phase in (("intake", row.intake), ("events", row.events), ("cohort", row.cohort)):
            print(
                f"{row.setup.name:32} {label:7} {phase.rate:8.0f} {phase.us(phase.worker):10.0f} "
                f"{phase.us(phase.state):15.1f} {phase.us(phase.queue):9.1f} {phase.busiest_share:8.0%}  "
                f"{phase.top_commands()}"
            )


def print_capacity(single: capacity.Costs, cluster: capacity.Costs, rabbit: capacity.Costs | None) -> None:
    load = capacity.Assumptions().target_load
    print("\nper core (worker: the drain only; intake runs in the front door's processes):")
    print(f"{'set-up':32} {'events/s per worker core':>25} {'entrants/s per worker core':>27} "
          f"{'events/s per primary @70%':>26} {'entrants/s per primary @70%':>28}")  # fmt: skip
    for name, found in (("one Redis", single), ("3-master cluster", cluster)):
        print(
            f"{name:32} {capacity.per_core(found.worker_per_event):25,.0f} "
            f"{capacity.per_core(found.worker_per_entrant):27,.0f} "
            f"{capacity.per_primary(found, load):26,.0f} {capacity.per_primary(found, load, per_entrant=True):28,.0f}"
        )
    assumptions = capacity.Assumptions()
    print(
        f"\nplan: peak {assumptions.peak_to_mean:g}x the daily mean, {assumptions.entrants_per_event:g} cohort "
        f"entrant per event, every core at most {assumptions.target_load:.0%} busy"
    )
    for daily in (1e6, 10e6, 100e6):
        chosen = capacity.choose(daily, single, cluster, assumptions)
        extra = ""
        if rabbit is not None:
            extra = f", RabbitMQ {capacity.plan(daily, rabbit, assumptions).queue_cores:.2f} cores at the peak"
        print(
            f"  {daily / 1e6:>5g} M events/day: peak {chosen.peak_events:,.0f} events/s + {chosen.peak_entrants:,.0f} "
            f"entrants/s -> {chosen.worker_cores:.2f} worker cores busy, {chosen.workers} worker processes, "
            f"{chosen.primaries} {'primary (one Redis)' if chosen.primaries == 1 and chosen.single else 'primaries'}"
            f", queue Redis {chosen.queue_cores:.2f} cores{extra}"
        )


def main() -> None:
    from tests.cluster_server import RedisClusterServers
    from tests.rabbitmq_server import RabbitMQServer
    from tests.redis_server import RedisServer

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--entrants", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--rabbitmq", action="store_true", help="also the cluster with RabbitMQ as the queue")
    args = parser.parse_args()
    single, queue = RedisServer().start(), RedisServer().start()
    cluster = RedisClusterServers().start()
    rabbit = RabbitMQServer().start() if args.rabbitmq else None
    try:
        print(f"{support.describe_machine()}, {args.events} events, {args.entrants} entrants, {args.threads} threads")
        setups = [
            SetUp("one Redis (state and queue)", single.url, [single.url], single.url),
            SetUp("3-master cluster + Redis queue", cluster.url, cluster.node_urls, queue.url),
        ]
        if rabbit is not None and rabbit.process is not None:
            setups.append(SetUp("3-master cluster + RabbitMQ", cluster.url, cluster.node_urls, rabbit.url,
                                os.getpgid(rabbit.process.pid)))  # fmt: skip
        rows = [measure(setup, args.events, args.entrants, args.threads) for setup in setups]
        print_rows(rows)
        print_capacity(costs(rows[0]), costs(rows[1]), costs(rows[2]) if len(rows) > 2 else None)
        print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    finally:
        if rabbit is not None:
            rabbit.cleanup()
        cluster.cleanup()
        single.cleanup()
        queue.cleanup()


if __name__ == "__main__":
    main()
