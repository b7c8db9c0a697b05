"""Voucher pools on Redis: codes loaded once, handed out atomically, one per run and step.

A pool's three keys share the hash tag ``{pool}``, so each script touches one Cluster slot.  The
hand-out is keyed by the run and step (not the channel), so a retry, a second worker after a
crash or a fallback channel all get the code the first attempt got, and no code goes to two runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis

from orchestrator.store import keys, lua
from orchestrator.store.batch import Batch

_HAND_OUT = lua.script(__name__, "hand_out")
_LOAD = lua.script(__name__, "load")
#: Codes per script call when loading (a call holds Redis for its whole length).
LOAD_CHUNK = 1000


@dataclass(frozen=True)
class Stock:
    """A pool's codes: ``free`` to hand out, ``given`` already handed out."""

    free: int
    given: int


class Vouchers:
    """The voucher pools of one Redis (thread-safe, cheap to build)."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis: Any = client

    def load(self, pool: str, codes: list[str]) -> int:
        """Add codes to a pool (a code loaded before, free or given, is skipped); how many were added."""
        added = 0
        for start in range(0, len(codes), LOAD_CHUNK):
            batch: Any = Batch(self.redis)
            chunk = codes[start : start + LOAD_CHUNK]
            batch.evalsha(_LOAD.sha, 2, keys.voucher_free(pool), keys.voucher_known(pool), *chunk)
            added += int(batch.execute()[0])
        return added

    def hand_out(self, pool: str, key: str) -> str | None:
        """The code of ``key`` (a run and step): the one it was given before, else the next free
        one; None when the pool is empty."""
        batch: Any = Batch(self.redis)
        batch.evalsha(_HAND_OUT.sha, 2, keys.voucher_free(pool), keys.voucher_given(pool), key)
        code = batch.execute()[0]
        return str(code) if code else None

    def given(self, pool: str, key: str) -> str | None:
        """The code handed to ``key``, if any (no side effect)."""
        code = self.redis.hget(keys.voucher_given(pool), key)
        return str(code) if code else None

    def codes_given(self, pool: str) -> list[str]:
        """Every code handed out from the pool, one per run and step (for the demo's account)."""
        return [str(code) for code in self.redis.hvals(keys.voucher_given(pool))]

    def stock(self, pool: str) -> Stock:
        pipe = self.redis.pipeline(transaction=False)
        pipe.llen(keys.voucher_free(pool))
        pipe.hlen(keys.voucher_given(pool))
        free, given = pipe.execute()
        return Stock(int(free), int(given))
