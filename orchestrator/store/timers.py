"""Durable journey timers: sharded Redis sorted sets scored by due time, claimed with a lease.

Why not Dramatiq's ``delay``: its delay queue is a FIFO list each worker prefetches into memory,
so a 1-minute wait can sit behind thousands of 60-day ones, and a million waiting customers would
live in worker memory.  Here a wait is one sorted-set member (``customer|run|revision``) scored by
its due epoch; ``claim_due`` moves what is due into a lease set in one Lua call per shard, so any
number of schedulers can claim side by side and never hand out the same timer twice.  Whoever
processes a claimed timer ``ack``s it; if that worker dies, ``reap`` puts the timer back once the
lease expires, so the work resumes within the lease time.

A timer is only a nudge: the enrollment's revision decides whether it still matters, so a stale
or repeated timer is harmless.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import redis

from orchestrator.store import keys, layout, lua
from orchestrator.store.batch import Batch, Script

#: A single Redis's shard count (the deployment's comes from :mod:`orchestrator.store.layout`).
DEFAULT_SHARDS = layout.SINGLE_SHARDS
DEFAULT_LEASE = 30.0

#: ``timers.claim.lua`` moves due timers into the lease set; ``timers.reap.lua`` puts expired leases back.
CLAIM = lua.script(__name__, "claim")
REAP = lua.script(__name__, "reap")


@dataclass(frozen=True)
class Timer:
    """One claimed timer: whom to wake, for which enrollment revision, and when it was due."""

    customer_id: str
    run_id: str
    revision: int
    due: float
    shard: int

    @property
    def member(self) -> str:
        return member(self.customer_id, self.run_id, self.revision)


def member(customer_id: str, run_id: str, revision: int) -> str:
    return f"{customer_id}|{run_id}|{revision}"


def parse_member(text: str) -> tuple[str, str, int]:
    customer_id, run_id, revision = text.rsplit("|", 2)
    return customer_id, run_id, int(revision)


class Timers:
    """The timer wheel.  Safe to share between threads (it holds only a client and scripts)."""

    def __init__(self, client: redis.Redis, *, shards: int | None = None, lease: float = DEFAULT_LEASE) -> None:
        self.redis = client
        self.shards = shards or layout.current().timer_shards
        self.lease = lease

    def _per_shard(self, script: Script, args: list[Any]) -> list[Any]:
        """Run a script on every shard in one pipelined round trip (the packer reloads it if needed)."""
        batch = Batch(self.redis)
        for shard in range(self.shards):
            batch.script(script, [keys.timers(shard), keys.timer_leases(shard)], args)
        return batch.execute()

    def shard_of(self, customer_id: str) -> int:
        return zlib.crc32(customer_id.encode()) % self.shards

    def schedule(self, customer_id: str, run_id: str, revision: int, due: float, pipe: Any = None) -> None:
        """Wake this enrollment revision at ``due`` (epoch seconds); scheduling again moves it."""
        target = pipe if pipe is not None else self.redis
        target.zadd(keys.timers(self.shard_of(customer_id)), {member(customer_id, run_id, revision): due})

    def schedule_many(self, entries: Iterable[tuple[str, str, int, float]], pipe: Any = None) -> None:
        """Schedule many timers with one ZADD per shard (on ``pipe`` when given, else one round trip)."""
        by_shard: dict[int, dict[str, float]] = {}
        for customer_id, run_id, revision, due in entries:
            by_shard.setdefault(self.shard_of(customer_id), {})[member(customer_id, run_id, revision)] = due
        if not by_shard:
            return
        target = pipe if pipe is not None else self.redis.pipeline(transaction=False)
        for shard, mapping in by_shard.items():
            target.zadd(keys.timers(shard), mapping)
        if pipe is None:
            target.execute()

    def cancel(self, customer_id: str, run_id: str, revision: int, pipe: Any = None) -> None:
        """Drop a timer, whether waiting or claimed (a goal was reached, the event came)."""
        shard = self.shard_of(customer_id)
        name = member(customer_id, run_id, revision)
        target = pipe if pipe is not None else self.redis.pipeline(transaction=False)
        target.zrem(keys.timers(shard), name)
        target.zrem(keys.timer_leases(shard), name)
        if pipe is None:
            target.execute()

    def claim_due(self, now: float, limit: int = 1000, *, lease: float | None = None) -> list[Timer]:
        """Claim up to ``limit`` due timers per shard, earliest first, each leased until now+lease."""
        expiry = now + (self.lease if lease is None else lease)
        claimed: list[Timer] = []
        for shard, reply in enumerate(self._per_shard(CLAIM, [now, expiry, limit])):
            for index in range(0, len(reply), 2):
                customer_id, run_id, revision = parse_member(_text(reply[index]))
                claimed.append(Timer(customer_id, run_id, revision, float(reply[index + 1]), shard))
        claimed.sort(key=lambda timer: timer.due)
        return claimed

    def ack(self, timers: Iterable[Timer]) -> None:
        """The timers were handled: forget their leases."""
        by_shard: dict[int, list[str]] = {}
        for timer in timers:
            by_shard.setdefault(timer.shard, []).append(timer.member)
        if not by_shard:
            return
        pipe = self.redis.pipeline(transaction=False)
        for shard, members in by_shard.items():
            pipe.zrem(keys.timer_leases(shard), *members)
        pipe.execute()

    def ack_member(self, customer_id: str, run_id: str, revision: int) -> None:
        self.redis.zrem(keys.timer_leases(self.shard_of(customer_id)), member(customer_id, run_id, revision))

    def ack_members(self, handled: Iterable[tuple[str, str, int]], pipe: Any = None) -> None:
        """Acknowledge many handled timers (customer, run, revision) with one ZREM per shard (on
        ``pipe`` when given, else one round trip)."""
        by_shard: dict[int, list[str]] = {}
        for customer_id, run_id, revision in handled:
            by_shard.setdefault(self.shard_of(customer_id), []).append(member(customer_id, run_id, revision))
        if not by_shard:
            return
        batch: Any = pipe if pipe is not None else Batch(self.redis)
        for shard, names in by_shard.items():
            batch.zrem(keys.timer_leases(shard), *names)
        if pipe is None:
            batch.execute()

    def reap(self, now: float, limit: int = 1000) -> int:
        """Put timers whose lease expired back as due now (their worker died); returns how many."""
        return sum(int(count) for count in self._per_shard(REAP, [now, limit]))

    def pending(self) -> int:
        """Timers waiting (not claimed)."""
        pipe = self.redis.pipeline(transaction=False)
        for shard in range(self.shards):
            pipe.zcard(keys.timers(shard))
        return sum(int(n) for n in pipe.execute())

    def leased(self) -> int:
        pipe = self.redis.pipeline(transaction=False)
        for shard in range(self.shards):
            pipe.zcard(keys.timer_leases(shard))
        return sum(int(n) for n in pipe.execute())

    def next_due(self) -> float | None:
        """The earliest due epoch over all shards (the demo and ``loyaloop simulate`` jump their
        clock there, the latter once or twice per virtual moment: hence the packer, not redis-py's
        pipeline)."""
        batch: Any = Batch(self.redis)  # typed loosely, as every pipeline here (redis-py stubs)
        for shard in range(self.shards):
            batch.zrange(keys.timers(shard), 0, 0, withscores=True)
        dues = [_first_score(entries) for entries in batch.execute() if entries]
        return min(dues) if dues else None

    def due_count(self, now: float) -> int:
        pipe = self.redis.pipeline(transaction=False)
        for shard in range(self.shards):
            pipe.zcount(keys.timers(shard), "-inf", now)
        return sum(int(n) for n in pipe.execute())


def _first_score(reply: list[Any]) -> float:
    """The score of a ``ZRANGE … WITHSCORES`` reply's first member as the packer reads it: a flat
    ``[member, score]`` (RESP2) or ``[[member, score]]`` (RESP3)."""
    first = reply[0]
    return float(first[1] if isinstance(first, list) else reply[1])


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
