"""Durable timers on a real Redis: due order, atomic claims, leases and the reaper."""

from __future__ import annotations

import threading

import redis

from orchestrator.store import keys
from orchestrator.store.timers import Timers


def test_a_short_wait_is_claimed_while_thousands_of_long_waits_are_pending(redis_client: redis.Redis) -> None:
    """A 1-minute wait is due after a minute even when 5,000 60-day waits were scheduled before it."""
    timers = Timers(redis_client)
    now = 1_000_000.0
    timers.schedule_many((f"c{i}", "run", 1, now + 60 * 86400) for i in range(5000))
    timers.schedule("short", "run", 3, now + 60)
    assert timers.claim_due(now + 59) == []
    claimed = timers.claim_due(now + 61)
    assert [(t.customer_id, t.revision) for t in claimed] == [("short", 3)]
    assert timers.pending() == 5000


def test_claims_are_exclusive_between_concurrent_schedulers(redis_url: str) -> None:
    """Four threads claiming at once together get every due timer exactly once."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    Timers(client).schedule_many((f"c{i}", f"r{i}", 0, 100.0 + i) for i in range(2000))
    results: list[list[str]] = []

    def claim() -> None:
        mine = Timers(redis.Redis.from_url(redis_url, decode_responses=True))
        got: list[str] = []
        while batch := mine.claim_due(10_000.0, limit=50):
            got.extend(t.member for t in batch)
        results.append(got)

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [m for got in results for m in got]
    assert len(everything) == 2000 and len(set(everything)) == 2000


def test_an_expired_lease_is_re_driven_by_the_reaper(redis_client: redis.Redis) -> None:
    """A claimed but never acknowledged timer comes back once its lease expires, not before."""
    timers = Timers(redis_client, lease=30)
    timers.schedule("c1", "r1", 2, 100.0)
    (claimed,) = timers.claim_due(100.0)
    assert timers.reap(120.0) == 0
    assert timers.claim_due(125.0) == []
    assert timers.reap(131.0) == 1
    (again,) = timers.claim_due(131.0)
    assert again.member == claimed.member
    timers.ack([again])
    assert timers.leased() == 0 and timers.reap(1000.0) == 0


def test_cancel_removes_a_waiting_or_claimed_timer(redis_client: redis.Redis) -> None:
    """Cancelling (a goal was reached) removes the timer wherever it is."""
    timers = Timers(redis_client)
    timers.schedule("c1", "r1", 1, 10.0)
    timers.schedule("c2", "r2", 1, 10.0)
    timers.claim_due(5.0)
    timers.cancel("c1", "r1", 1)
    (c2,) = timers.claim_due(11.0)
    timers.cancel("c2", "r2", 1)
    assert c2.customer_id == "c2" and timers.leased() == 0 and timers.pending() == 0


def test_timer_shards_carry_a_hash_tag_shared_with_their_lease_set() -> None:
    """Each shard and its lease set hash to one Cluster slot, so one script may touch both."""
    for shard in range(3):
        assert keys.timers(shard).endswith(f"{{t{shard}}}") and keys.timer_leases(shard).endswith(f"{{t{shard}}}")
