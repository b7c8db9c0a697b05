"""Per-key rate limiting and the request body limit.

The rate limit is GCRA (a leaky bucket kept as one "theoretical arrival time" per key) in one Lua
call: every uvicorn worker and every host shares the same Redis state and Redis' own clock, so the
limit holds however many workers run, and the refusal says exactly when to come back.

The body limit reads the stream itself rather than trusting ``Content-Length``: a chunked upload
has none, and a liar's is wrong.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import redis
from starlette.requests import Request

from orchestrator.store import keys

# KEYS[1] = state key; ARGV = emission interval (µs per event), tolerance (µs), cost (events).
# Returns {allowed (1/0), retry_after_µs}.
_GCRA = """
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


@dataclass(frozen=True)
class Verdict:
    """The rate limiter's answer; ``retry_after`` is whole seconds for the ``Retry-After`` header."""

    allowed: bool
    retry_after: int = 0


class RateLimiter:
    """``rate`` events per second per key with bursts of up to ``burst`` events."""

    def __init__(self, client: redis.Redis, *, rate: float, burst: int) -> None:
        self._interval = round(1_000_000 / rate)
        self._tolerance = self._interval * max(burst - 1, 0)
        self._client = client
        self._script = client.register_script(_GCRA)

    def charge(self, key_id: str, cost: int = 1) -> Verdict:
        """Count ``cost`` events against the key; refused events are not counted."""
        return self.verdict(self._script(keys=[keys.api_rate(key_id)], args=[self._interval, self._tolerance, cost]))

    def queue(self, pipe: redis.client.Pipeline, key_id: str, cost: int = 1) -> None:
        """Queue the charge on a pipeline (one round trip with other reads); read it with :meth:`verdict`.

        A plain EVALSHA rather than the Script object: on a pipeline that costs a SCRIPT EXISTS
        round trip every time.  Call :meth:`load` and execute again if the pipeline raises
        ``NoScriptError`` (Redis restarted or its script cache was flushed).
        """
        pipe.evalsha(self._script.sha, 1, keys.api_rate(key_id), self._interval, self._tolerance, cost)

    def load(self) -> None:
        """Load the script into Redis' cache (after ``NoScriptError``)."""
        self._client.script_load(_GCRA)

    @staticmethod
    def verdict(answer: list[int]) -> Verdict:
        """The script's answer as a :class:`Verdict`."""
        allowed, wait_us = answer
        if int(allowed):
            return Verdict(True)
        return Verdict(False, max(1, math.ceil(int(wait_us) / 1_000_000)))


async def read_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
