"""The shared per-channel rate limiter, on a real redis-server: every worker draws from one budget."""

from __future__ import annotations

import threading
import time

import redis

from orchestrator.settings import Settings
from orchestrator.store import keys
from orchestrator.store.ratelimit import RateLimiter


def limiter(url: str, **rates: float) -> RateLimiter:
    return RateLimiter(redis.Redis.from_url(url), Settings(rate_limits=rates))


def test_unlimited_channels_never_wait(redis_url: str) -> None:
    """A channel without a configured rate is not limited and touches no key."""
    limits = limiter(redis_url, sms=1)
    assert [limits.acquire("email") for _ in range(100)] == [0.0] * 100
    assert limits.rate("email") is None
    assert not redis.Redis.from_url(redis_url).exists(keys.rate_limit("email"))


def test_second_send_within_the_interval_waits(redis_url: str) -> None:
    """At 10 sends/s (burst 1) the next send right after one must wait about 0.1 s; waiting takes nothing."""
    limits = limiter(redis_url, sms=10)
    assert limits.acquire("sms") == 0.0
    wait = limits.acquire("sms")
    assert 0.05 < wait <= 0.1
    assert 0.05 < limits.acquire("sms") <= 0.1  # the refused attempt did not use up a slot
    time.sleep(wait)
    assert limits.acquire("sms") == 0.0


def test_state_is_one_expiring_key_per_channel(redis_url: str) -> None:
    """The only state is keys.rate_limit(channel), and it expires once idle."""
    limits = limiter(redis_url, push=5)
    limits.acquire("push")
    client = redis.Redis.from_url(redis_url)
    assert client.exists(keys.rate_limit("push"))
    assert 0 < client.pttl(keys.rate_limit("push")) <= 2000


def test_workers_share_one_budget(redis_url: str) -> None:
    """Eight threads with their own limiter objects (as separate workers would) stay within the shared rate."""
    rate, duration = 50.0, 1.0
    granted: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        limits = limiter(redis_url, email=rate)
        deadline = time.monotonic() + duration
        while time.monotonic() < deadline:
            wait = limits.acquire("email")
            if wait == 0:
                with lock:
                    granted.append(time.monotonic())
            else:
                time.sleep(min(wait, 0.01))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    burst = int(rate * 0.1)
    # The ceiling is the point: eight limiters never grant more than one shared budget.  The floor
    # only shows the budget is used at all (loose, as a loaded machine may starve the threads).
    span = max(granted) - min(granted)
    assert len(granted) <= rate * span + burst + 1
    assert len(granted) >= rate * duration * 0.3


def test_wait_blocks_until_a_slot_or_gives_up(redis_url: str) -> None:
    """wait() sleeps the limiter's answer; it refuses when the wait would exceed max_wait."""
    limits = limiter(redis_url, sms=2)
    slept: list[float] = []
    assert limits.wait("sms", sleep=slept.append) is True and slept == []
    assert limits.wait("sms", max_wait=0.1, sleep=slept.append) is False
    assert limits.wait("sms", max_wait=2.0) is True
