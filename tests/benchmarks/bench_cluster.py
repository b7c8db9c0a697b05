"""Cost of one event on one Redis and on a three-master Redis Cluster, measured in the same run.

Run: ``python -m tests.benchmarks.bench_cluster [--events 3000] [--threads 4]``

Each set-up gets the same work: ``events`` customers (profiles written beforehand, not measured), one
``signup`` event each, a journey that sends one e-mail (the outbox channel) per event.  The events
are queued first; then in-process Dramatiq worker threads drain them, and the figures cover only
that drain: the worker's CPU-seconds (this process's user + system time) and every Redis
process's CPU (``INFO cpu``: ``used_cpu_user`` + ``used_cpu_sys``), state and queue apart where
they are apart (RabbitMQ's own CPU, with ``--rabbitmq``, is not read).  Per event, in
microseconds.  Used for docs/scaling.md.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import dramatiq
import redis

from orchestrator.plugins import get_plugin_manager
from orchestrator.runtime.compose import build_runtime
from orchestrator.runtime.intake import Loyaloop
from orchestrator.settings import Settings
from orchestrator.store import layout
from orchestrator.store.connect import open_redis
from orchestrator.workers.actors import ActorDispatcher, Actors
from orchestrator.workers.queue_broker import build_queue_broker
from tests.cluster_server import RedisClusterServers
from tests.drills import support
from tests.rabbitmq_server import RabbitMQServer
from tests.redis_server import RedisServer
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


def redis_cpu(urls: list[str]) -> float:
    """CPU seconds every Redis at ``urls`` has used so far."""
    total = 0.0
    for url in urls:
        client = redis.Redis.from_url(url)
        info: dict[str, Any] = client.info("cpu")
        client.close()
        total += float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    return total


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(state_url: str, state_nodes: list[str], queue_url: str, events: int, threads: int) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(prefix="loyaloop-bench-cluster-"))
    (folder / "journeys").mkdir()
    (folder / "journeys" / "welcome.yaml").write_text(JOURNEY, encoding="utf-8")
    write_templates(folder / "templates", ["hello"])
    settings = Settings(
        redis_url=state_url,
        broker_url=queue_url,
        outbox_path=folder / "outbox.jsonl",
        templates_dir=folder / "templates",
        journeys_dir=folder / "journeys",
        secret_key="s" * 40,
        namespace=f"b{uuid.uuid4().hex[:8]}",  # its own keys and queues
    )
    client = open_redis(settings)
    ids = support.customer_ids(events)
    support.seed_profiles(client, ids)
    broker: Any = build_queue_broker(settings)
    actors = Actors(broker, lambda _actors: runtime)
    runtime = build_runtime(settings, client, dispatcher=ActorDispatcher(actors), pm=get_plugin_manager())
    actors.use(runtime)
    api = Loyaloop(actors, client)
    for customer_id in ids:
        api.track(customer_id, "signup", {}, event_id=f"s-{customer_id}")
    queue_apart = queue_url not in state_nodes and not queue_url.startswith("amqp")
    before_state, before_queue = redis_cpu(state_nodes), redis_cpu([queue_url]) if queue_apart else 0.0
    before_nodes = [redis_cpu([url]) for url in state_nodes]
    before_worker, started = own_cpu(), time.monotonic()
    worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=50)
    worker.start()
    try:
        support.wait_for(lambda: support.count_lines(settings.outbox_path) >= events, 600, what="every send")
    finally:
        worker.stop()
    seconds = time.monotonic() - started
    worker_cpu = own_cpu() - before_worker
    state_cpu = redis_cpu(state_nodes) - before_state
    per_node = [redis_cpu([url]) - before for url, before in zip(state_nodes, before_nodes, strict=True)]
    queue_cpu = redis_cpu([queue_url]) - before_queue if queue_apart else 0.0
    runtime.close()
    broker.close()
    client.close()
    return {
        "events_per_second": events / seconds,
        "worker_us_per_event": worker_cpu / events * 1e6,
        "state_redis_us_per_event": state_cpu / events * 1e6,
        "queue_redis_us_per_event": queue_cpu / events * 1e6,
        "busiest_primary_share": max(per_node) / sum(per_node) if sum(per_node) else 1.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--rabbitmq", action="store_true", help="also the cluster with RabbitMQ as the queue")
    args = parser.parse_args()
    single, queue = RedisServer().start(), RedisServer().start()
    cluster = RedisClusterServers().start()
    rabbit = RabbitMQServer().start() if args.rabbitmq else None
    try:
        print(f"{support.describe_machine()}, {args.events} events, {args.threads} worker threads")
        rows = {
            "one Redis (state and queue)": measure(single.url, [single.url], single.url, args.events, args.threads),
            "3-master cluster + Redis queue": measure(
                cluster.url, cluster.node_urls, queue.url, args.events, args.threads
            ),
        }
        if rabbit is not None:  # RabbitMQ's own CPU is the Erlang VM's, not read here
            rows["3-master cluster + RabbitMQ"] = measure(
                cluster.url, cluster.node_urls, rabbit.url, args.events, args.threads
            )
        layout.use(layout.Layout())
        header = f"{'set-up':34} {'events/s':>9} {'worker µs':>10} {'state Redis µs':>15} {'queue Redis µs':>15}"
        print(header + f" {'busiest primary':>16}")
        for name, row in rows.items():
            print(
                f"{name:34} {row['events_per_second']:9.0f} {row['worker_us_per_event']:10.0f} "
                f"{row['state_redis_us_per_event']:15.1f} {row['queue_redis_us_per_event']:15.1f}"
                f" {row['busiest_primary_share']:16.0%}"
            )
    finally:
        if rabbit is not None:
            rabbit.cleanup()
        cluster.cleanup()
        single.cleanup()
        queue.cleanup()


if __name__ == "__main__":
    main()
