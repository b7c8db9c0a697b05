"""The Redis GCRA rate limiter, shared by every worker, on a real redis-server."""

from __future__ import annotations

import pytest
import redis

from orchestrator.http.limits import RateLimiter


def test_burst_then_refusal_with_retry_after(redis_client: redis.Redis) -> None:
    """``burst`` events pass at once, the next is refused and told when to come back."""
    limiter = RateLimiter(redis_client, rate=0.5, burst=4)
    assert [limiter.charge("k").allowed for _ in range(4)] == [True] * 4
    verdict = limiter.charge("k")
    assert not verdict.allowed and 1 <= verdict.retry_after <= 2  # ~2 s: one event per 2 s


def test_limiters_in_different_workers_share_one_budget(redis_url: str) -> None:
    """Two limiters on separate connections (two workers) draw from the same per-key budget."""
    first = RateLimiter(redis.Redis.from_url(redis_url), rate=0.1, burst=3)
    second = RateLimiter(redis.Redis.from_url(redis_url, decode_responses=True), rate=0.1, burst=3)
    assert first.charge("k").allowed and second.charge("k").allowed and first.charge("k").allowed
    assert not second.charge("k").allowed
    assert second.charge("other").allowed


def test_costly_requests_and_refusals(redis_client: redis.Redis) -> None:
    """A request costing more than what is left is refused without using up the rest."""
    limiter = RateLimiter(redis_client, rate=0.1, burst=10)
    assert limiter.charge("k", 8).allowed
    assert not limiter.charge("k", 5).allowed
    assert limiter.charge("k", 2).allowed
    assert not limiter.charge("k", 1).allowed


def test_the_pipelined_charge_survives_a_flushed_script_cache(redis_client: redis.Redis) -> None:
    """After SCRIPT FLUSH (or a Redis restart) the queued EVALSHA fails once, the script is reloaded, and it works."""
    limiter = RateLimiter(redis_client, rate=1, burst=2)
    redis_client.script_flush()
    with redis_client.pipeline(transaction=False) as pipe:
        limiter.queue(pipe, "k")
        with pytest.raises(redis.exceptions.NoScriptError):
            pipe.execute()
    limiter.load()
    with redis_client.pipeline(transaction=False) as pipe:
        limiter.queue(pipe, "k")
        [answer] = pipe.execute()
    assert limiter.verdict(answer).allowed
