"""The one GCRA rate limiter, on a real redis-server: per-channel send rates shared by every worker
and per-API-key request rates shared by every HTTP worker, without losing precision."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import redis
from redis.crc import key_slot

from orchestrator.errors import ConfigurationError
from orchestrator.settings import Settings
from orchestrator.store import keys
from orchestrator.store.ratelimit import Rate, RateLimiter, retry_after
from tests.redis_server import RedisServer, start_cluster_node

#: The per-API-key script as it was, kept to show what it lost: ``tostring(new_tat)`` prints
#: 14 significant digits, so an epoch in microseconds (16 digits) is stored rounded to 100 µs.
OLD_HTTP_GCRA = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval * cost
local allow_at = new_tat - tolerance - interval
if allow_at > now then
  return {0, allow_at - now}
end
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, 0}
"""


def channels(url: str, **rates: float) -> RateLimiter:
    return RateLimiter.for_channels(redis.Redis.from_url(url), Settings(rate_limits=rates))


def redis_micros(client: redis.Redis) -> int:
    seconds, micros = client.time()
    return int(seconds) * 1_000_000 + int(micros)


def test_the_old_formula_drifted_and_the_limiter_keeps_every_microsecond(redis_client: redis.Redis) -> None:
    """A TAT one second ahead, charged 100 times at 7 µs apiece: the old ``tostring`` formula
    rounds every write to 100 µs, so the TAT never moves and the limit lets everything through;
    the limiter stores integer microseconds and ends exactly 700 µs further."""
    start = redis_micros(redis_client) + 1_000_000
    # Digits a 14-digit print must drop, and far enough below the next hundred that start + 7 rounds
    # back down to it (with the last two digits in 43..49 the old formula rounded up once: flaky).
    start = start - start % 100 + 37
    old_key, new_key = "old-formula", keys.api_rate("k")
    redis_client.set(old_key, str(start))
    redis_client.set(new_key, str(start))
    old = redis_client.register_script(OLD_HTTP_GCRA)
    limiter = RateLimiter(redis_client, key=keys.api_rate, default=Rate(1_000_000 / 7, burst=10_000_000))
    assert limiter.rate("k") is not None and Rate(1_000_000 / 7).interval_us == 7
    for _ in range(100):
        assert old(keys=[old_key], args=[7, 7 * 10_000_000, 1])[0] == 1
        assert limiter.acquire("k") == 0.0
    old_tat = redis_client.get(old_key)
    assert "e+" in old_tat  # printed as 1.7xxxxxxxxxxxxe+15
    assert int(float(old_tat)) != start + 700
    assert abs(int(float(old_tat)) - start) <= 50  # rounded back every time: the limit did not advance
    assert redis_client.get(new_key) == str(start + 700)


@pytest.mark.parametrize("rate", [0.1, 3.0, 1_000.0, 123_456.0])
def test_the_stored_time_is_an_integer_of_microseconds(redis_client: redis.Redis, rate: float) -> None:
    """Whatever the rate, the TAT is written as the plain integer it is, one interval past the Redis clock."""
    limiter = RateLimiter.for_api_keys(redis_client, rate=rate, burst=5)
    before = redis_micros(redis_client)
    assert limiter.acquire("k") == 0.0
    after = redis_micros(redis_client)
    stored = redis_client.get(keys.api_rate("k"))
    assert stored.isdigit()
    interval = Rate(rate).interval_us
    assert before + interval <= int(stored) <= after + interval


def test_an_api_key_gets_its_burst_then_a_retry_after(redis_client: redis.Redis) -> None:
    """``burst`` events pass at once, the next is refused and told when to come back (one event per 2 s)."""
    limiter = RateLimiter.for_api_keys(redis_client, rate=0.5, burst=4)
    assert [limiter.acquire("k") for _ in range(4)] == [0.0] * 4
    wait = limiter.acquire("k")
    assert wait > 1.9 and wait <= 2.0  # one 2 s slot, measured from a Redis clock a little later
    assert retry_after(wait) == 2
    assert limiter.acquire("k") > 0  # the refusal counted nothing: still refused, not pushed further
    assert limiter.acquire("k") <= wait


def test_retry_after_rounds_up_to_whole_seconds() -> None:
    """A client obeying ``Retry-After`` must be admitted: waits round up, and never to 0."""
    assert [retry_after(w) for w in (0.000001, 0.5, 1.0, 1.000001, 2.0)] == [1, 1, 1, 2, 2]


def test_a_channel_gets_a_tenth_of_a_second_of_burst_then_its_steady_rate(redis_url: str) -> None:
    """At 50 sends/s five go at once, the sixth waits one interval (20 ms), and after that wait
    one more goes: the steady rate."""
    limits = channels(redis_url, email=50)
    assert [limits.acquire("email") for _ in range(5)] == [0.0] * 5
    wait = limits.acquire("email")
    assert 0.0 < wait <= 0.02
    time.sleep(wait)
    assert limits.acquire("email") == 0.0
    assert 0.0 < limits.acquire("email") <= 0.02


def test_unlimited_channels_never_wait(redis_url: str) -> None:
    """A channel without a configured rate is not limited and touches no key."""
    limits = channels(redis_url, sms=1)
    assert [limits.acquire("email") for _ in range(100)] == [0.0] * 100
    assert limits.rate("email") is None and limits.rate("sms") == 1
    assert not redis.Redis.from_url(redis_url).exists(keys.rate_limit("email"))


def test_second_send_within_the_interval_waits(redis_url: str) -> None:
    """At 10 sends/s (burst 1) the next send right after one must wait about 0.1 s; waiting takes nothing."""
    limits = channels(redis_url, sms=10)
    assert limits.acquire("sms") == 0.0
    wait = limits.acquire("sms")
    assert 0.05 < wait <= 0.1
    assert 0.05 < limits.acquire("sms") <= 0.1  # the refused attempt did not use up a slot
    time.sleep(wait)
    assert limits.acquire("sms") == 0.0


def test_state_is_one_expiring_key_per_bucket(redis_url: str) -> None:
    """The only state is keys.rate_limit(channel) (keys.api_rate(key) for an API key), and it expires once idle."""
    client = redis.Redis.from_url(redis_url)
    channels(redis_url, push=5).acquire("push")
    RateLimiter.for_api_keys(client, rate=5, burst=1).acquire("k")
    assert sorted(client.keys()) == sorted([keys.rate_limit("push").encode(), keys.api_rate("k").encode()])
    assert 0 < client.pttl(keys.rate_limit("push")) <= 2000
    assert 0 < client.pttl(keys.api_rate("k")) <= 2000


def test_channels_and_api_keys_of_one_name_do_not_share_a_bucket(redis_client: redis.Redis) -> None:
    """A channel and an API key both called ``k`` keep separate budgets: spending one leaves the other whole."""
    sends = RateLimiter.for_channels(redis_client, Settings(rate_limits={"k": 10}))
    requests = RateLimiter.for_api_keys(redis_client, rate=10, burst=1)
    assert keys.rate_limit("k") != keys.api_rate("k")
    assert requests.acquire("k") == 0.0 and requests.acquire("k") > 0
    assert sends.acquire("k") == 0.0 and sends.acquire("k") > 0
    assert requests.acquire("other") == 0.0


def test_limiters_in_different_workers_share_one_budget(redis_url: str) -> None:
    """Two limiters on separate connections (two HTTP workers) draw from the same per-key budget."""
    first = RateLimiter.for_api_keys(redis.Redis.from_url(redis_url), rate=0.1, burst=3)
    second = RateLimiter.for_api_keys(redis.Redis.from_url(redis_url, decode_responses=True), rate=0.1, burst=3)
    assert first.acquire("k") == 0.0 and second.acquire("k") == 0.0 and first.acquire("k") == 0.0
    assert second.acquire("k") > 0
    assert second.acquire("other") == 0.0


def test_workers_share_one_budget(redis_url: str) -> None:
    """Eight threads with their own limiter objects (as separate workers would) stay within the shared rate."""
    rate, duration = 50.0, 1.0
    granted: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        limits = channels(redis_url, email=rate)
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


def test_costly_requests_and_refusals(redis_client: redis.Redis) -> None:
    """A request costing more than what is left is refused without using up the rest."""
    limiter = RateLimiter.for_api_keys(redis_client, rate=0.1, burst=10)
    assert limiter.acquire("k", 8) == 0.0
    assert limiter.acquire("k", 5) > 0
    assert limiter.acquire("k", 2) == 0.0
    assert limiter.acquire("k", 1) > 0


def test_wait_blocks_until_a_slot_or_gives_up(redis_url: str) -> None:
    """wait() sleeps the limiter's answer; it refuses when the wait would exceed max_wait."""
    limits = channels(redis_url, sms=2)
    slept: list[float] = []
    assert limits.wait("sms", sleep=slept.append) is True and slept == []
    assert limits.wait("sms", max_wait=0.1, sleep=slept.append) is False
    assert limits.wait("sms", max_wait=2.0) is True


def test_the_pipelined_charge_survives_a_flushed_script_cache(redis_client: redis.Redis) -> None:
    """After SCRIPT FLUSH (or a Redis restart) the queued EVALSHA fails once, the script is reloaded, and it works."""
    limiter = RateLimiter.for_api_keys(redis_client, rate=1, burst=2)
    redis_client.script_flush()
    with redis_client.pipeline(transaction=False) as pipe:
        assert limiter.queue(pipe, "k")
        with pytest.raises(redis.exceptions.NoScriptError):
            pipe.execute()
    limiter.load()
    with redis_client.pipeline(transaction=False) as pipe:
        limiter.queue(pipe, "k")
        [answer] = pipe.execute()
    assert limiter.seconds(answer) == 0.0


def test_an_unlimited_name_queues_nothing(redis_url: str) -> None:
    """Queueing a charge for a channel without a rate adds no command, so the pipeline's replies line up."""
    limits = channels(redis_url, sms=1)
    with redis.Redis.from_url(redis_url).pipeline(transaction=False) as pipe:
        assert limits.queue(pipe, "email") is False
        assert len(pipe) == 0


@pytest.mark.parametrize(("per_second", "burst"), [(0, 1), (-1.0, 1), (1.0, 0)])
def test_a_rate_that_cannot_work_is_refused_with_its_value(per_second: float, burst: int) -> None:
    """A zero or negative rate, or a burst under 1, is a configuration error naming the value."""
    with pytest.raises(ConfigurationError, match=repr(per_second) if burst else repr(burst)):
        Rate(per_second, burst)


@pytest.fixture(scope="module")
def cluster_node() -> Iterator[RedisServer]:
    server = start_cluster_node()
    yield server
    server.cleanup()


def test_both_limiters_work_on_a_cluster_node(cluster_node: RedisServer) -> None:
    """A cluster-mode redis-server refuses a script over two slots; the limiter's script touches one
    declared key, so channels and API keys are limited there exactly as on a single Redis."""
    client = redis.Redis.from_url(cluster_node.url, decode_responses=True)
    client.flushall()
    with pytest.raises(redis.exceptions.ResponseError, match="same slot"):
        client.eval("return 1", 2, keys.rate_limit("sms"), keys.api_rate("k"))
    assert key_slot(keys.rate_limit("sms").encode()) != key_slot(keys.api_rate("k").encode())
    sends = RateLimiter.for_channels(client, Settings(rate_limits={"sms": 10}))
    requests = RateLimiter.for_api_keys(client, rate=0.5, burst=2)
    assert sends.acquire("sms") == 0.0 and sends.acquire("sms") > 0
    assert [requests.acquire("k") for _ in range(3)][2] > 0
    with client.pipeline(transaction=False) as pipe:
        requests.queue(pipe, "other")
        assert pipe.execute() == [0]
    client.close()


def peek(limiter: RateLimiter, client: redis.Redis, name: str) -> float:
    with client.pipeline(transaction=False) as pipe:
        assert limiter.queue_peek(pipe, name)
        clock, state = pipe.execute()
    return limiter.peeked(name, clock, state)


def test_failed_auth_budget_is_twenty_a_minute_and_a_peek_takes_nothing(redis_client: redis.Redis) -> None:
    """20 failures at once, then one every 3 s; the peek says "spent" exactly when the next
    acquire would be refused, with the same wait, and never charges the bucket itself."""
    limiter = RateLimiter.for_failed_auth(redis_client, per_minute=20)
    assert limiter.rate("addr") == pytest.approx(1 / 3)
    for _ in range(20):
        assert peek(limiter, redis_client, "addr") == 0.0
        assert limiter.acquire("addr") == 0.0
    waited = peek(limiter, redis_client, "addr")
    assert 2.9 < waited <= 3.0
    assert peek(limiter, redis_client, "addr") <= waited  # peeking twice charged nothing
    assert abs(limiter.acquire("addr") - waited) < 0.05
    assert redis_client.exists(keys.auth_failures("addr"))
    assert not redis_client.exists(keys.api_rate("addr"))


def test_a_failed_auth_limit_below_one_a_minute_is_refused(redis_client: redis.Redis) -> None:
    with pytest.raises(ConfigurationError, match="at least 1"):
        RateLimiter.for_failed_auth(redis_client, per_minute=0)
