"""The one rate limiter: GCRA in Redis, for per-channel send rates and per-API-key request rates.

GCRA (the generic cell rate algorithm, a token bucket kept as one timestamp): Redis stores the
"theoretical arrival time" of the next event per bucket and one Lua script
(``ratelimit.gcra.lua``) reads the Redis clock, decides and records atomically.  One key and one round
trip per decision, no clock skew between workers or hosts (they all use the Redis server's
``TIME``), and a refused attempt costs nothing.  The script touches only the one key it is given,
so it runs unchanged on Redis Cluster.

Three callers share it, each in its own key space so their buckets never meet:

* the delivery workers pace sends per channel (:meth:`RateLimiter.for_channels`, rates from
  ``settings.rate_limits``, keys :func:`~orchestrator.store.keys.rate_limit`); a channel without a
  configured rate is never limited;
* the HTTP intake charges events per API key (:meth:`RateLimiter.for_api_keys`, keys
  :func:`~orchestrator.store.keys.api_rate`) and turns a refusal into ``429`` with ``Retry-After``;
* the HTTP front door also counts failed authentications per client address
  (:meth:`RateLimiter.for_failed_auth`, keys :func:`~orchestrator.store.keys.auth_failures`), so
  guessing API keys is slow; :meth:`RateLimiter.queue_peek` tells, without taking anything,
  whether an address has spent its budget (a correct key from it is refused then too).

Every method that queues on a pipeline takes any object with redis-py's command methods: a sync
pipeline, :class:`~orchestrator.store.batch.Batch` or the asyncio front door's
:class:`~orchestrator.store.batch.AsyncBatch`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import redis

from orchestrator.errors import ConfigurationError
from orchestrator.settings import Settings
from orchestrator.store import keys, lua

#: The GCRA script (KEYS: the bucket; ARGV: interval µs, burst, cost; returns 0 or µs to wait).
SCRIPT = lua.source(__name__, "gcra")

#: A channel's burst holds this many seconds' worth of sends, so several workers are not paced one by one.
BURST_SECONDS = 0.1


@dataclass(frozen=True)
class Rate:
    """``per_second`` events at the steady rate, with up to ``burst`` of them at once."""

    per_second: float
    burst: int = 1

    def __post_init__(self) -> None:
        if not self.per_second > 0:
            raise ConfigurationError(f"a rate limit of {self.per_second!r} events/s must be a positive number")
        if self.burst < 1:
            raise ConfigurationError(f"a rate limit's burst of {self.burst!r} must be at least 1 event")

    @property
    def interval_us(self) -> int:
        """Whole microseconds between two events (at least 1, so any rate up to 10⁶/s is exact enough)."""
        return max(1, round(1_000_000 / self.per_second))


def retry_after(wait: float) -> int:
    """A wait in seconds as ``Retry-After`` wants it: whole seconds, rounded up (at least 1), so a
    client that comes back then is admitted."""
    return max(1, math.ceil(wait))


class RateLimiter:
    """Shared GCRA buckets, one Redis key each: thread-, process- and host-safe.

    ``rates`` gives the rate of a named bucket (a channel), ``default`` the rate of any other name
    (every API key alike); a name with neither is not limited and touches no key.  ``key`` maps a
    name to its Redis key, so each caller keeps its buckets in its own key space.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        key: Callable[[str], str],
        rates: Mapping[str, Rate] | None = None,
        default: Rate | None = None,
    ) -> None:
        self._client = client
        self._key = key
        self._rates = dict(rates or {})
        self._default = default
        self._script = client.register_script(SCRIPT)

    @classmethod
    def for_channels(
        cls, client: redis.Redis, settings: Settings, *, burst_seconds: float = BURST_SECONDS
    ) -> RateLimiter:
        """Per-channel send rates from ``settings.rate_limits``, with bursts of ``burst_seconds``' worth."""
        rates = {
            channel: Rate(rate, max(1, math.floor(rate * burst_seconds)))
            for channel, rate in settings.rate_limits.items()
        }
        return cls(client, key=keys.rate_limit, rates=rates)

    @classmethod
    def for_api_keys(cls, client: redis.Redis, *, rate: float, burst: int) -> RateLimiter:
        """``rate`` events per second per API key with bursts of up to ``burst`` events."""
        return cls(client, key=keys.api_rate, default=Rate(rate, burst))

    @classmethod
    def for_failed_auth(cls, client: redis.Redis, *, per_minute: int) -> RateLimiter:
        """``per_minute`` failed authentications per client address: that many at once, then one
        every ``60 / per_minute`` seconds (a spent budget is whole again after a minute)."""
        if per_minute < 1:
            raise ConfigurationError(f"a failed-authentication limit of {per_minute!r} a minute must be at least 1")
        return cls(client, key=keys.auth_failures, default=Rate(per_minute / 60, per_minute))

    def rate(self, name: str) -> float | None:
        """Events per second allowed for ``name``, or None when it is not limited."""
        found = self._rate(name)
        return None if found is None else found.per_second

    def _rate(self, name: str) -> Rate | None:
        return self._rates.get(name, self._default)

    def acquire(self, name: str, cost: int = 1) -> float:
        """Take ``cost`` events: 0.0 if they may go now (they are counted), else seconds to wait first.

        A refused call takes nothing, so the caller simply waits the returned time and asks again
        (or re-queues the work with that delay, or answers ``429``).
        """
        rate = self._rate(name)
        if rate is None:
            return 0.0
        return self.seconds(self._script(keys=[self._key(name)], args=[rate.interval_us, rate.burst, cost]))

    def queue(self, pipe: Any, name: str, cost: int = 1) -> bool:
        """Queue :meth:`acquire` on a pipeline (one round trip with other commands); False, and
        nothing queued, for a name that is not limited.  Read its reply with :meth:`seconds`.

        A plain EVALSHA rather than the Script object: on a pipeline that costs a SCRIPT EXISTS
        round trip every time.  Call :meth:`load` and execute again if the pipeline raises
        ``NoScriptError`` (Redis restarted or its script cache was flushed).
        """
        rate = self._rate(name)
        if rate is None:
            return False
        pipe.evalsha(self._script.sha, 1, self._key(name), rate.interval_us, rate.burst, cost)
        return True

    def queue_peek(self, pipe: Any, name: str) -> bool:
        """Queue the two reads that tell, taking nothing, how long until ``name`` could take one
        event: Redis' ``TIME`` and the bucket's state.  False, and nothing queued, for a name that
        is not limited.  Read the two replies with :meth:`peeked`."""
        if self._rate(name) is None:
            return False
        pipe.time()
        pipe.get(self._key(name))
        return True

    def peeked(self, name: str, clock: Any, state: Any) -> float:
        """Seconds until ``name`` could take one event (0.0: now), from :meth:`queue_peek`'s replies.

        The arithmetic of ``ratelimit.lua`` for a cost of 1, on the Redis clock the reply carries.
        """
        rate = self._rate(name)
        if rate is None:
            return 0.0
        now = int(clock[0]) * 1_000_000 + int(clock[1])
        tat = max(now if state is None else int(state), now)
        allowed_at = tat + (1 - rate.burst) * rate.interval_us
        return max(0, allowed_at - now) / 1_000_000

    def load(self) -> None:
        """Load the script into Redis' cache (after ``NoScriptError``)."""
        self._client.script_load(SCRIPT)

    @staticmethod
    def seconds(answer: Any) -> float:
        """The script's reply (microseconds to wait, 0 when allowed) in seconds."""
        return int(answer) / 1_000_000

    def wait(
        self,
        name: str,
        *,
        max_wait: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> bool:
        """Block until a slot is taken (True) or ``max_wait`` seconds would be exceeded (False)."""
        waited = 0.0
        while True:
            delay = self.acquire(name)
            if delay <= 0:
                return True
            if waited + delay > max_wait:
                return False
            sleep(delay)
            waited += delay
