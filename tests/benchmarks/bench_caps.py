"""Benchmark: frequency-cap decisions per second, pipelined, beside a plain Redis INCR loop.

Run: ``.venv/bin/python -m tests.benchmarks.bench_caps`` (starts its own redis-server on a free
loopback port; ``--decisions``, ``--batch``, ``--customers`` change the load).

The INCR loop is the yardstick: one tiny command per round trip, the fastest anything that talks
to Redis one call at a time can go on this machine.  The gate is measured the same way (one
``check`` per round trip) and the way the runtime uses it for fan-out (``check_many`` in
pipelined batches), with three cap rules and customers whose logs fill up, so many decisions are
``capped`` and every allowed one is recorded.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from statistics import median

import redis

from orchestrator.policy import Gate, SendRequest
from orchestrator.settings import CapRule, Settings
from tests.redis_server import RedisServer

RULES = [
    CapRule(window="1d", max=3),
    CapRule(channel="sms", window="7d", max=2),
    CapRule(window="30d", max=10, tag="promo"),
]
CHANNELS = ("email", "sms", "push")


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


def timed(label: str, count: int, work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    elapsed = time.perf_counter() - started
    rate = count / elapsed
    print(f"  {label:<46} {count:>8,} in {elapsed:6.2f} s = {rate:>9,.0f}/s")
    return rate


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

        gate = Gate(client, Settings(caps=RULES))
        now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
        single = requests_for(args.single, args.customers)
        many = requests_for(args.decisions, args.customers)
        outcomes: Counter[str] = Counter()

        def incr_loop() -> None:
            for _ in range(args.single):
                client.incr("bench")

        def incr_pipelined() -> None:
            for start in range(0, args.decisions, args.batch):
                pipe = client.pipeline(transaction=False)
                for _ in range(min(args.batch, args.decisions - start)):
                    pipe.incr("bench")
                pipe.execute()

        def one_by_one() -> None:
            for request in single:
                gate.check(request, now=now)

        def pipelined() -> None:
            clock = now
            for start in range(0, len(many), args.batch):
                clock += timedelta(seconds=1)
                for decision in gate.check_many(many[start : start + args.batch], now=clock):
                    outcomes[decision.outcome] += 1

        incr_rates: list[float] = []
        gate_rates: list[float] = []
        cpu: list[float] = []
        redis_usec: list[float] = []
        for run in range(1, args.repeat + 1):
            print(f"run {run}:")
            incr_rates.append(timed("plain INCR loop (1 round trip each)", args.single, incr_loop))
            client.flushdb()
            client.config_resetstat()
            outcomes.clear()
            cpu_start = time.process_time()
            gate_rates.append(timed(f"gate.check_many ({args.batch} per round trip)", args.decisions, pipelined))
            cpu.append((time.process_time() - cpu_start) / args.decisions * 1e6)
            redis_usec.append(float(client.info("commandstats")["cmdstat_evalsha"]["usec_per_call"]))
        print("for context:")
        timed(f"INCR pipelined ({args.batch} per round trip)", args.decisions, incr_pipelined)
        client.flushdb()
        timed("gate.check, one per round trip", args.single, one_by_one)

        print("summary:")
        print(f"  outcomes of a pipelined run: {dict(outcomes)}")
        print(f"  cost per decision: client CPU {median(cpu):.1f} us, Redis {median(redis_usec):.1f} us (medians)")
        print(
            f"  pipelined gate: best {max(gate_rates):,.0f}/s, median {median(gate_rates):,.0f}/s; "
            f"plain INCR loop: best {max(incr_rates):,.0f}/s, median {median(incr_rates):,.0f}/s"
        )
        print(f"  ratio pipelined gate / plain INCR loop (medians): {median(gate_rates) / median(incr_rates):.1f}x")
        print(f"  load average after the runs: {os.getloadavg()[0]:.2f}")
    finally:
        client.close()
        server.cleanup()


if __name__ == "__main__":
    main()
