"""A per-channel send rate shared by every worker, so a large cohort never sets off a provider's 429 storm.

The limiter is GCRA (the generic cell rate algorithm, a token bucket kept as one timestamp): Redis
stores the "theoretical arrival time" of the next send per channel and one Lua script reads the
Redis clock, decides and records atomically.  One key and one round trip per send, no clock skew
between workers (they all use the Redis server's ``TIME``), and a refused attempt costs nothing.

Rates come from ``settings.rate_limits`` (sends per second per channel); a channel without a
configured rate is never limited.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import redis

from orchestrator.settings import Settings
from orchestrator.store import keys

# KEYS[1] the channel's key; ARGV[1] microseconds between sends; ARGV[2] sends allowed in a burst.
# Returns 0 when the send may go now (and counts it), else the microseconds to wait.
_GCRA = """
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local allowed_at = tat - (burst - 1) * interval
if allowed_at > now then
  return allowed_at - now
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1000)
return 0
"""

#: A burst may hold this many seconds' worth of sends, so several workers are not paced one by one.
BURST_SECONDS = 0.1


class RateLimiter:
    """Shared per-channel pacing.  Thread- and process-safe: all state lives in one Redis key per channel."""

    def __init__(self, client: redis.Redis, settings: Settings, *, burst_seconds: float = BURST_SECONDS) -> None:
        self._client = client
        self._rates = dict(settings.rate_limits)
        self._burst_seconds = burst_seconds
        self._script = client.register_script(_GCRA)

    def rate(self, channel: str) -> float | None:
        """Sends per second allowed on ``channel``, or None when it is not limited."""
        return self._rates.get(channel)

    def acquire(self, channel: str) -> float:
        """Take one send slot: 0.0 if the send may go now (it is counted), else seconds to wait first.

        A refused call takes nothing, so the caller simply waits the returned time and asks again
        (or re-queues the send with that delay).
        """
        rate = self._rates.get(channel)
        if rate is None:
            return 0.0
        interval = max(1, round(1_000_000 / rate))
        burst = max(1, math.floor(rate * self._burst_seconds))
        wait_us = int(self._script(keys=[keys.rate_limit(channel)], args=[interval, burst]))
        return wait_us / 1_000_000

    def wait(
        self,
        channel: str,
        *,
        max_wait: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> bool:
        """Block until a slot is taken (True) or ``max_wait`` seconds would be exceeded (False)."""
        waited = 0.0
        while True:
            delay = self.acquire(channel)
            if delay <= 0:
                return True
            if waited + delay > max_wait:
                return False
            sleep(delay)
            waited += delay
