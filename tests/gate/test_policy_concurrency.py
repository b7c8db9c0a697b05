"""The caps hold under real concurrency: two OS processes x eight threads, one Redis, few customers.

Every thread fires sends (and idempotent retries of its own earlier sends, single and batched) at
the same three customers.  Afterwards the send log in Redis must respect every rule, hold exactly
the sends the workers were told were allowed, and be full: the binding cap is reached, so no
allowed send was lost to a race.
"""

from __future__ import annotations

import multiprocessing
import random
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import redis

from orchestrator.gate.caps import applies
from orchestrator.gate.policy import Gate, SendRequest
from orchestrator.settings import CapRule, Settings
from orchestrator.store import keys

CUSTOMERS = ("c0", "c1", "c2")
CHANNELS = ("email", "sms", "push")
RULES = [
    CapRule(window="1d", max=6),
    CapRule(channel="sms", window="1d", max=2),
    CapRule(channel="email", window="1d", max=3),
    CapRule(window="7d", max=4, tag="promo"),
]
BASE = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
PROCESSES = 2
THREADS = 8
ROUNDS = 100


def _request(rng: random.Random, key: str) -> SendRequest:
    customer = rng.choice(CUSTOMERS)
    return SendRequest(
        customer_id=customer,
        channel=rng.choice(CHANNELS),
        category="marketing",
        journey_id=rng.choice(["welcome", "winback"]),
        journey_tags=("promo",) if rng.random() < 0.5 else (),
        priority=rng.choice([10, 50, 90]),
        idempotency_key=key,
        address=f"{customer}@example.test",
        consent={channel: True for channel in CHANNELS},
        timezone="UTC",
    )


def _thread(gate: Gate, worker: int, thread: int, allowed: list[str]) -> None:
    rng = random.Random(worker * 100 + thread)
    sent: list[SendRequest] = []
    for round_ in range(ROUNDS):
        now = BASE + timedelta(seconds=rng.randint(0, 600))
        if sent and rng.random() < 0.3:
            batch = [rng.choice(sent)]  # a retry of an earlier send: same key, same request
        else:
            batch = [_request(rng, f"w{worker}-t{thread}-r{round_}-{i}") for i in range(rng.choice([1, 1, 3]))]
        decisions = gate.check_many(batch, now=now) if len(batch) > 1 else [gate.check(batch[0], now=now)]
        for req, decision in zip(batch, decisions, strict=True):
            if decision.allowed:
                allowed.append(req.idempotency_key)
                sent.append(req)


def hammer(url: str, worker: int, results: Any) -> None:
    """One worker process: eight threads sharing one gate and one connection pool."""
    client = redis.Redis.from_url(url)
    gate = Gate(client, Settings(caps=RULES))
    allowed: list[str] = []
    threads = [threading.Thread(target=_thread, args=(gate, worker, t, allowed)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    client.close()
    results.put(allowed)


def test_two_processes_eight_threads_never_exceed_any_cap(redis_client: redis.Redis, redis_url: str) -> None:
    """Racing workers never push a customer past any rule, and every rule-permitted slot is used."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    workers = [context.Process(target=hammer, args=(redis_url, w, results)) for w in range(PROCESSES)]
    for process in workers:
        process.start()
    allowed_keys: set[str] = set()
    for _ in workers:
        allowed_keys.update(results.get(timeout=60))
    for process in workers:
        process.join(timeout=30)
        assert process.exitcode == 0
    recorded: set[str] = set()
    for customer in CUSTOMERS:
        entries = [m.split("\x1f") for m in redis_client.zrange(keys.send_log(customer), 0, -1)]
        recorded.update(key for key, *_ in entries)
        for rule in RULES:
            count = sum(
                1 for _key, channel, category, tags in entries if applies(rule, channel, category, tags.split(","))
            )
            assert count <= rule.max, (customer, rule, count)
        # the "6 a day" rule binds: push and untagged sends can always fill it, so it must be full
        assert len(entries) == 6, (customer, entries)
    assert recorded == allowed_keys
