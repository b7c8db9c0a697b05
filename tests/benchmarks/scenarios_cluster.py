"""The ``cluster`` scenario: the event path and a cohort on a three-master Redis Cluster (with its
queue on a Redis of its own) beside one Redis (the harness's, state and queue), in the same run.

Each figure is the cluster's, with one Redis's as its baseline, so the ratio is what the cluster
costs more (CPU per unit) or delivers (units per second).  The CPU figures are the ones the
capacity model of docs/scaling.md is built on (:mod:`tests.benchmarks.bench_cluster` measures them
and, run on its own, prints the model's table).  A missing ``redis-cli`` (needed to form the
cluster) is a skip.
"""

from __future__ import annotations

from tests.benchmarks.bench_cluster import Row, SetUp, measure
from tests.benchmarks.harness import Figure, require_tool

THREADS = 4


def figures(single: Row, cluster: Row) -> list[Figure]:
    """Cluster figures against one Redis's, per unit of work (information: no targets)."""

    def pair(name: str, unit: str, cluster_value: float, single_value: float, baseline: str) -> Figure:
        return Figure("cluster", name, cluster_value, unit, single_value, baseline)

    events, entrants = cluster.events.units, cluster.cohort.units
    s_in, s_ev, s_co = single.intake, single.events, single.cohort
    c_in, c_ev, c_co = cluster.intake, cluster.events, cluster.cohort
    return [
        pair(f"events drained, {events:,} events, 1x{THREADS}", "events/s", c_ev.rate, s_ev.rate, "one Redis"),
        pair("worker CPU per event (drain)", "µs", c_ev.us(c_ev.worker), s_ev.us(s_ev.worker), "one Redis"),
        pair(
            "state Redis CPU per event (intake + drain, all primaries)",
            "µs",
            c_in.us(c_in.state) + c_ev.us(c_ev.state),
            s_in.us(s_in.state) + s_ev.us(s_ev.state),
            "one Redis",
        ),
        pair(f"cohort entered, {entrants:,} customers", "customers/s", c_co.rate, s_co.rate, "one Redis"),
        pair("worker CPU per cohort entrant", "µs", c_co.us(c_co.worker), s_co.us(s_co.worker), "one Redis"),
        pair("state Redis CPU per cohort entrant", "µs", c_co.us(c_co.state), s_co.us(s_co.state), "one Redis"),
        Figure(
            "cluster",
            "queue Redis CPU per event (intake + drain)",
            c_in.us(c_in.queue) + c_ev.us(c_ev.queue),
            "µs",
            note="the cluster's queue on its own Redis",
        ),
        Figure(
            "cluster",
            "busiest primary's share of the state CPU",
            100 * max(c_ev.busiest_share, c_co.busiest_share),
            "%",
            note="an even split over 3 primaries is 33 %",
        ),
    ]


def run(quick: bool, redis_url: str | None = None, *, size: int | None = None, warm_up: int = 100) -> list[Figure]:
    """``size`` events and as many cohort entrants on each set-up (default 1,000 quick, 5,000 full)."""
    assert redis_url, "the harness passes its Redis"
    require_tool("redis-cli", "apt-get install -y redis-server")
    from tests.cluster_server import RedisClusterServers
    from tests.redis_server import RedisServer

    count = size or (1_000 if quick else 5_000)
    cluster, queue = RedisClusterServers().start(), None
    try:
        queue = RedisServer().start()
        single = measure(SetUp("one Redis", redis_url, [redis_url], redis_url), count, count, THREADS, warm_up)
        spread = measure(
            SetUp("3-master cluster + Redis queue", cluster.url, cluster.node_urls, queue.url),
            count,
            count,
            THREADS,
            warm_up,
        )
    finally:
        cluster.cleanup()
        if queue is not None:
            queue.cleanup()
    return figures(single, spread)
