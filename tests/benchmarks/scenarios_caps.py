"""Cap decisions per second (issue 5): the gate pipelined, beside a plain Redis ``INCR`` loop.

The harness's own version, used until ``tests.benchmarks.bench_caps`` exposes ``run(quick, redis_url=)``.
It uses that module's request mix and rules (three cap rules, customers whose logs fill up, so many
decisions are ``capped`` and every allowed one is recorded).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import redis

from orchestrator.gate.policy import Gate
from orchestrator.settings import Settings
from tests.benchmarks.bench_caps import RULES, requests_for
from tests.benchmarks.harness import Figure
from tests.benchmarks.scenarios_runtime import pipelined_incr

TARGET = 30_000.0


def run(quick: bool, redis_url: str | None = None) -> list[Figure]:
    assert redis_url, "the harness passes its Redis"
    decisions, single, batch, customers = (20_000, 5_000, 1_000, 5_000) if quick else (200_000, 20_000, 1_000, 20_000)
    client = redis.Redis.from_url(redis_url)
    try:
        started = time.perf_counter()
        for _ in range(single):
            client.incr("bench:incr")
        incr_rate = single / (time.perf_counter() - started)

        gate = Gate(client, Settings(caps=RULES))
        now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
        one = requests_for(single, customers)
        started = time.perf_counter()
        for request in one:
            gate.check(request, now=now)
        single_rate = single / (time.perf_counter() - started)

        client.flushdb()
        many = requests_for(decisions, customers)
        started = time.perf_counter()
        clock = now
        for start in range(0, decisions, batch):
            clock += timedelta(seconds=1)
            gate.check_many(many[start : start + batch], now=clock)
        pipelined_rate = decisions / (time.perf_counter() - started)
    finally:
        client.close()
    return [
        Figure(
            "caps",
            f"gate.check_many, {batch} per round trip",
            pipelined_rate,
            "decisions/s",
            incr_rate,
            "INCR/s",
            TARGET,
            ">=",
        ),
        Figure(
            "caps", "gate.check, one round trip each", single_rate, "decisions/s", incr_rate, "INCR/s", 0.5, "ratio>="
        ),
        Figure(
            "caps",
            "gate.check_many against the physical limit",
            pipelined_rate,
            "decisions/s",
            pipelined_incr(redis_url, decisions, batch)[0],
            "pipelined INCR/s",
            note="same batch size, one Redis core",
        ),
    ]
