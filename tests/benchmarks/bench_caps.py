"""Benchmark: frequency-cap decisions per second, pipelined, beside a plain Redis INCR loop.

Run: ``.venv/bin/python -m tests.benchmarks.bench_caps`` (starts its own redis-server on a free
loopback port; ``--decisions``, ``--batch``, ``--customers``, ``--repeat`` change the load).
The shared harness (``python -m tests.benchmarks``) calls :func:`run`.

The INCR loop is the yardstick of the naive design: one tiny command per round trip, the fastest
anything that talks to Redis one call at a time can go on this machine.  Pipelined INCR, in batches
the size of the gate's, is the physical limit: what one Redis core and this client do when a call
costs only itself; the harness reports the gate against both.  The gate is measured the way the runtime uses
it for fan-out (``check_many`` in pipelined batches) and, for context, one ``check`` per round
trip, with three cap rules and customers whose logs fill up, so most decisions are ``capped`` and
every allowed one is recorded.  The machine is shared, so each figure is measured several times
and the median reported, with the client's CPU time and Redis's own time per decision, which
move less with the load than the wall clock does.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from statistics import median
from typing import Any

import redis

from orchestrator.gate.policy import Gate, SendRequest
from orchestrator.settings import CapRule, Settings
from tests.redis_server import RedisServer

RULES = [
    CapRule(window="1d", max=3),
    CapRule(channel="sms", window="7d", max=2),
    CapRule(window="30d", max=10, tag="promo"),
]
CHANNELS = ("email", "sms", "push")
#: Issue 5: at least this many cap decisions per second, pipelined.
TARGET = 30_000.0


def requests_for(count: int, customers: int) -> list[SendRequest]:
    return [
        SendRequest(
            customer_id=f"cust{i % customers}",
            channel=CHANNELS[i % 3],
            category="marketing",
            journey_id=("welcome", "winback", "vip")[i % 3],
            journey_tags=("promo",) if i % 2 else (),
            priority=(10, 50, 90)[i % 3],
            idempotency_key=f"run{i}:step",
            address=f"cust{i % customers}@example.test",
            consent={"email": True, "sms": True, "push": True},
            timezone=("Europe/Amsterdam", "Asia/Kolkata", None)[i % 3],
        )
        for i in range(count)
    ]


@dataclass
class Results:
    """Rates per run (per second) and costs per decision (microseconds)."""

    incr_loop: list[float] = field(default_factory=list)
    pipelined: list[float] = field(default_factory=list)
    client_cpu_us: list[float] = field(default_factory=list)
    redis_us: list[float] = field(default_factory=list)
    incr_pipelined: float = 0.0
    single: float = 0.0
    outcomes: dict[str, int] = field(default_factory=dict)


def measure(
    client: redis.Redis,
    *,
    decisions: int,
    single: int,
    batch: int,
    customers: int,
    repeat: int,
    echo: Any = None,
) -> Results:
    """Run every measurement against ``client`` (flushing its database) and return the figures."""
    say = echo or (lambda _text: None)
    gate = Gate(client, Settings(caps=RULES))
    now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    many = requests_for(decisions, customers)
    results = Results()

    def rate(label: str, count: int, started: float) -> float:
        elapsed = time.perf_counter() - started
        say(f"  {label:<46} {count:>8,} in {elapsed:6.2f} s = {count / elapsed:>9,.0f}/s")
        return count / elapsed

    for run_number in range(1, repeat + 1):
        say(f"run {run_number}:")
        started = time.perf_counter()
        for _ in range(single):
            client.incr("bench:incr")
        results.incr_loop.append(rate("plain INCR loop (1 round trip each)", single, started))

        client.flushdb()
        client.config_resetstat()
        outcomes: Counter[str] = Counter()
        cpu = time.process_time()
        started = time.perf_counter()
        clock = now
        for start in range(0, decisions, batch):
            clock += timedelta(seconds=1)
            for decision in gate.check_many(many[start : start + batch], now=clock):
                outcomes[decision.outcome] += 1
        results.pipelined.append(rate(f"gate.check_many ({batch} per round trip)", decisions, started))
        results.client_cpu_us.append((time.process_time() - cpu) / decisions * 1e6)
        results.redis_us.append(float(client.info("commandstats")["cmdstat_evalsha"]["usec_per_call"]))
        results.outcomes = dict(outcomes)

    say("for context:")
    started = time.perf_counter()
    for start in range(0, decisions, batch):
        pipe = client.pipeline(transaction=False)
        for _ in range(min(batch, decisions - start)):
            pipe.incr("bench:incr")
        pipe.execute()
    results.incr_pipelined = rate(f"INCR pipelined ({batch} per round trip)", decisions, started)
    client.flushdb()
    started = time.perf_counter()
    for request in requests_for(single, customers):
        gate.check(request, now=now)
    results.single = rate("gate.check, one per round trip", single, started)
    return results


def run(quick: bool, redis_url: str | None = None) -> list[Any]:
    """The caps figures for the shared benchmark harness (``python -m tests.benchmarks``)."""
    from tests.benchmarks.harness import Figure

    sizes = {"decisions": 20_000, "single": 5_000, "repeat": 1} if quick else {"decisions": 100_000, "single": 10_000}
    server = None
    if redis_url is None:
        server = RedisServer().start()
        redis_url = server.url
    client = redis.Redis.from_url(redis_url)
    try:
        found = measure(client, batch=1_000, customers=sizes["decisions"] // 10, **{"repeat": 3, **sizes})
    finally:
        client.close()
        if server is not None:
            server.cleanup()
    incr = median(found.incr_loop)
    note = f"client {median(found.client_cpu_us):.0f} us + Redis {median(found.redis_us):.0f} us per decision"
    return [
        Figure("caps", "gate.check_many, 1000 per round trip", median(found.pipelined), "decisions/s", incr, "INCR/s",
               TARGET, ">=", note),
        Figure("caps", "gate.check, one round trip each", found.single, "decisions/s", incr, "INCR/s"),
        Figure("caps", "gate.check_many against the physical limit", median(found.pipelined), "decisions/s",
               found.incr_pipelined, "pipelined INCR/s", note="same batch size, one Redis core"),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--decisions", type=int, default=100_000, help="pipelined gate decisions per run")
    parser.add_argument("--single", type=int, default=10_000, help="one-at-a-time gate decisions and INCRs")
    parser.add_argument("--batch", type=int, default=1_000, help="decisions per pipelined round trip")
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs of the INCR loop and of the pipelined gate")
    args = parser.parse_args()

    server = RedisServer().start()
    client = redis.Redis.from_url(server.url)
    try:
        print(f"Loyaloop cap benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
        print(f"  machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, ", end="")
        print(f"redis-server {client.info('server')['redis_version']}, load average {os.getloadavg()[0]:.2f}")
        found = measure(
            client,
            decisions=args.decisions,
            single=args.single,
            batch=args.batch,
            customers=args.customers,
            repeat=args.repeat,
            echo=print,
        )
    finally:
        client.close()
        server.cleanup()
    pipelined, incr = median(found.pipelined), median(found.incr_loop)
    print("summary:")
    print(f"  outcomes of a pipelined run: {found.outcomes}")
    print(
        f"  cost per decision: client CPU {median(found.client_cpu_us):.1f} us, "
        f"Redis {median(found.redis_us):.1f} us (medians)"
    )
    print(f"  pipelined gate: median {pipelined:,.0f}/s, best {max(found.pipelined):,.0f}/s (target {TARGET:,.0f}/s)")
    print(f"  plain INCR loop: median {incr:,.0f}/s, best {max(found.incr_loop):,.0f}/s")
    print(f"  ratio pipelined gate / plain INCR loop (medians): {pipelined / incr:.1f}x")
    print(f"  load average after the runs: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
