"""Queued events: ``track`` appends to a Redis list; one drain message hands many events to a worker.

One Dramatiq message per event made every event pay the broker's per-message cost (enqueue,
consumer prefetch and back-off, acknowledgement) and five round trips of its own; a drained
batch shares its round trips among all its events (:mod:`orchestrator.runtime.batch`).

A customer's events all go to one of ``EVENT_SHARDS`` lists (by CRC-32 of the id), and a shard is
drained by one worker at a time under a lease, so one customer's events are handled in the order
they were tracked.  An event stays in its list until the drainer that took it has handled it
(at least once; handling is idempotent by event id), so a drainer killed mid-batch loses nothing:
its lease expires and the shard is drained again — by the next ``track`` on that shard or by the
scheduler's re-drive (:meth:`EventQueue.stalled`), without waiting for Dramatiq's dead-worker
requeue.  Every key of a shard carries the shard's hash tag (one Cluster slot per script).
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis

from orchestrator.errors import InputError
from orchestrator.language.inputs import (
    MAX_DEPTH,
    check_customer_id,
    check_event,
    check_event_id,
    check_timestamp,
    nesting_depth,
)
from orchestrator.store import keys, layout, lua
from orchestrator.store.batch import Batch
from orchestrator.store.replication import ReplicaWait

log = logging.getLogger(__name__)

#: A single Redis's shard count (the deployment's comes from :mod:`orchestrator.store.layout`).
EVENT_SHARDS = layout.SINGLE_SHARDS
#: Events handed to the runtime at once (one set of round trips).
DRAIN_BATCH = 200
#: Seconds a shard's lease lasts unless renewed: the drainer renews it after every batch and a
#: keeper thread renews it while a batch works (:mod:`orchestrator.runtime.event_drain`), so this is how
#: long a dead drainer's shard — or a ``queued`` mark whose message was lost — waits for a re-drive.
DRAIN_LEASE = 10.0
#: Events kept aside for inspection (:meth:`EventQueue.bury`); past this the oldest are dropped,
#: counted and logged.  An entry is its record (typically a few hundred bytes, at most about 33 KB
#: with the properties limit), so the list costs a few MB and never more than about 330 MB of Redis.
#: To be raised where events are small and a bug may keep many aside before anyone looks.
DEAD_KEPT = 10_000
#: Why an event was kept aside: its input is bad (refused at every retry), or handling it hit a bug.
INPUT, BUG = "input", "bug"
#: Counters (in ``keys.metrics_counters()``, shown by ``loyaloop status``) of every event ever kept
#: aside, by why, and of those dropped from the list past its cap.
KEPT_ASIDE = {INPUT: "events_kept_aside_input", BUG: "events_kept_aside_bug"}
KEPT_ASIDE_DROPPED = "events_kept_aside_dropped"
#: Events pushed by one script call (Lua's stack bounds ``unpack``).
PUSH_CHUNK = 500

#: The shard scripts, ``event_queue.<name>.lua`` beside this module: ``push`` appends events and
#: says whether to nudge, ``take``, ``done``, ``release`` and ``renew`` keep a drainer's lease,
#: ``stalled`` finds a shard with events nobody drains.
_PUSH = lua.script(__name__, "push")
_TAKE = lua.script(__name__, "take")
_DONE = lua.script(__name__, "done")
_RELEASE = lua.script(__name__, "release")
_RENEW = lua.script(__name__, "renew")
_STALLED = lua.script(__name__, "stalled")
#: The source of the script :meth:`EventQueue.push` runs (for callers that queue it themselves).
PUSH_SCRIPT = _PUSH.source


@dataclass(frozen=True)
class QueuedEvent:
    """An event as ``track`` validated it, read back from its shard."""

    customer_id: str
    name: str
    properties: dict[str, Any]
    event_id: str
    timestamp: datetime


def nudged(shards: list[int], replies: Iterable[Any]) -> list[int]:
    """The shards whose push replied 1 (no drain queued or running), from each push's shard and reply."""
    return sorted({shard for shard, nudge in zip(shards, replies, strict=True) if nudge})


def encode(customer_id: str, name: str, properties: dict[str, Any], event_id: str, timestamp: datetime) -> str:
    """The compact record a shard list holds (``track`` validated every part already)."""
    return json.dumps([customer_id, name, properties, event_id, timestamp.isoformat()], separators=(",", ":"))


def decode(raw: str) -> QueuedEvent:
    """Read a record back, checking it again: a record written past ``track`` (straight into
    Redis) must not reach the runtime malformed.  Raises InputError."""
    try:
        customer_id, name, properties, event_id, stamp = json.loads(raw)
    except (ValueError, TypeError) as exc:
        raise InputError(f"queued event is not a 5-item JSON array: {exc}", field="event") from None
    if not isinstance(properties, dict) or not isinstance(stamp, str):
        raise InputError("queued event has malformed properties or timestamp", field="event")
    if nesting_depth(properties) > MAX_DEPTH:
        raise InputError(f"queued event properties are nested more than {MAX_DEPTH} levels deep", field="properties")
    moment = check_timestamp(stamp, datetime.now(UTC), max_future=None)
    return QueuedEvent(check_customer_id(customer_id), check_event(name), properties, check_event_id(event_id), moment)


class EventQueue:
    """The shard lists and their drain leases on one Redis (thread-safe, cheap to build)."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        shards: int | None = None,
        lease: float = DRAIN_LEASE,
        batch: int = DRAIN_BATCH,
        dead_kept: int | None = None,
    ) -> None:
        self.redis: Any = client
        self.shards = shards or layout.current().event_shards
        self.lease_ms = int(lease * 1000)
        self.batch = batch
        self.dead_kept = DEAD_KEPT if dead_kept is None else dead_kept
        if self.dead_kept < 1:  # LTRIM with -0 would keep everything
            raise ValueError(f"dead_kept is {self.dead_kept!r}; keep at least 1 event aside")
        self._push = client.register_script(_PUSH.source)
        self._take = client.register_script(_TAKE.source)
        self._done = client.register_script(_DONE.source)
        self._release = client.register_script(_RELEASE.source)
        self._stalled = client.register_script(_STALLED.source)
        self._renew = client.register_script(_RENEW.source)

    def shard_of(self, customer_id: str) -> int:
        return zlib.crc32(customer_id.encode()) % self.shards

    def _keys(self, shard: int) -> list[str]:
        return [keys.event_queue(shard), keys.event_drain(shard)]

    # --- producing ------------------------------------------------------------------------------
    def push(self, customer_id: str, record: str, *, wait: ReplicaWait | None = None) -> int | None:
        """Append one event (durable when this returns); the shard to nudge, or None.  With ``wait``
        the ``WAIT`` rides in the same round trip, and too few replicas raise
        :class:`~orchestrator.errors.NotReplicated` (the event is on the master: its replies say
        whether to nudge)."""
        shard = self.shard_of(customer_id)
        return shard if self._run(self._push, self._keys(shard), [self.lease_ms, record], wait) else None

    def queue_push(self, pipe: Any, customer_id: str, record: str) -> int:
        """Queue :meth:`push` on a pipeline of the caller's (the HTTP front door's asyncio batch) and
        return the event's shard; the reply is 1 when that shard must be nudged.  The script's
        source is :data:`PUSH_SCRIPT`, for loading it after ``NoScriptError``."""
        shard = self.shard_of(customer_id)
        pipe.evalsha(self._push.sha, 2, *self._keys(shard), self.lease_ms, record)
        return shard

    def _run(self, script: Any, keys_: list[str], args: list[Any], wait: ReplicaWait | None = None) -> Any:
        """One script call through the store's packer (``track``'s whole cost is this call, and
        redis-py's command path is most of it), which loads the script again after a Redis restart."""
        batch: Any = Batch(self.redis)  # (redis-py's stubs type evalsha for clients only)
        batch.evalsha(script.sha, len(keys_), *keys_, *args)
        return batch.execute(wait=wait)[0]

    def push_many(self, items: Iterable[tuple[str, str]], *, wait: ReplicaWait | None = None) -> list[int]:
        """Append many events (customer id, record) in one round trip through the store's packer
        (on a cluster, each node's shards on that node's connection); the shards to nudge.  With
        ``wait``, one ``WAIT`` per connection written to (each node touched), as :meth:`push`."""
        by_shard: dict[int, list[str]] = {}
        for customer_id, record in items:
            by_shard.setdefault(self.shard_of(customer_id), []).append(record)
        if not by_shard:
            return []
        batch: Any = Batch(self.redis)
        calls: list[int] = []
        for shard, records in by_shard.items():
            for start in range(0, len(records), PUSH_CHUNK):
                chunk = records[start : start + PUSH_CHUNK]
                batch.evalsha(self._push.sha, 2, *self._keys(shard), self.lease_ms, *chunk)
                calls.append(shard)
        return nudged(calls, batch.execute(wait=wait))

    # --- draining -------------------------------------------------------------------------------
    def take(self, shard: int, token: str) -> list[str] | None:
        """Take the shard's lease and its first batch; None when another drainer holds it."""
        reply = self._take(keys=self._keys(shard), args=[token, self.lease_ms, self.batch])
        return None if reply is None else list(reply)

    def done(self, shard: int, token: str, handled: int, *, handover: bool = False) -> tuple[int, list[str]] | None:
        """Drop the handled events and renew the lease: (events left, next batch), or None when the
        lease was lost.  ``handover`` leaves the shard ``queued`` for a fresh drain message."""
        reply = self._done(
            keys=self._keys(shard), args=[token, handled, self.lease_ms, self.batch, "1" if handover else "0"]
        )
        if reply is None:
            return None
        return int(reply[0]), list(reply[1:])

    def release(self, shard: int, token: str) -> None:
        self._release(keys=self._keys(shard), args=[token, self.lease_ms])

    def renew(self, held: list[tuple[int, str]]) -> None:
        """Extend the leases (shard, token) this process holds, in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for shard, token in held:
            self._renew(keys=[keys.event_drain(shard)], args=[token, self.lease_ms], client=pipe)
        pipe.execute()

    def stalled(self) -> list[int]:
        """Shards with events and no drain queued or running (a drainer died, a nudge was lost);
        each is marked ``queued`` here, so the caller must send one drain message per shard."""
        pipe = self.redis.pipeline(transaction=False)
        for shard in range(self.shards):
            self._stalled(keys=self._keys(shard), args=[self.lease_ms], client=pipe)
        return [shard for shard, flag in enumerate(pipe.execute()) if flag]

    def depths(self) -> list[int]:
        pipe = self.redis.pipeline(transaction=False)
        for shard in range(self.shards):
            pipe.llen(keys.event_queue(shard))
        return [int(depth) for depth in pipe.execute()]

    def depth(self) -> int:
        """Events tracked and not handled yet, over every shard."""
        return sum(self.depths())

    # --- events that could not be handled ------------------------------------------------------
    def bury(self, record: str, reason: str, kind: str = INPUT) -> int:
        """Keep an event no worker could handle, with why (``kind``: bad ``input`` or a ``bug``, and
        the error's name), capped to the newest ``dead_kept``; returns how many old ones it dropped.

        Every event kept aside is counted by kind, and every one dropped past the cap is counted and
        logged: the list may be the only copy of an event a bug could not handle."""
        if kind not in KEPT_ASIDE:
            raise ValueError(f"kind {kind!r} is not one of {sorted(KEPT_ASIDE)}")
        entry = json.dumps({"reason": reason, "kind": kind, "record": record}, separators=(",", ":"))
        # One transaction on the one list key: the length it returns is exact under concurrent
        # buries, so each trim is counted once (a Cluster-safe single slot; counters come next).
        pipe = self.redis.pipeline(transaction=True)
        pipe.rpush(keys.dead_events(), entry)
        pipe.ltrim(keys.dead_events(), -self.dead_kept, -1)
        dropped = max(0, int(pipe.execute()[0]) - self.dead_kept)
        counts = self.redis.pipeline(transaction=False)
        counts.hincrby(keys.metrics_counters(), KEPT_ASIDE[kind], 1)
        if dropped:
            counts.hincrby(keys.metrics_counters(), KEPT_ASIDE_DROPPED, dropped)
        replies = counts.execute()
        if dropped:
            log.warning(
                "dropped the %d oldest kept-aside event(s) from %s past its cap of %d, and with them "
                "their only copy (%d dropped in all, counted in `loyaloop status`); inspect the list "
                "with `redis-cli LRANGE %s 0 -1`, replay or delete what it holds, or raise the cap "
                "(orchestrator.runtime.event_queue.DEAD_KEPT)",
                dropped,
                keys.dead_events(),
                self.dead_kept,
                int(replies[1]),
                keys.dead_events(),
            )
        return dropped

    def dead(self) -> int:
        """How many events are kept aside now (the counters say how many ever were)."""
        return int(self.redis.llen(keys.dead_events()))

    def kept_aside(self) -> list[dict[str, str]]:
        """The events kept aside now, oldest first: ``reason``, ``kind`` and the queued ``record``."""
        return [json.loads(entry) for entry in self.redis.lrange(keys.dead_events(), 0, -1)]

    def replay(self, kinds: frozenset[str], limit: int | None = None) -> tuple[int, list[int]]:
        """Queue kept-aside events of these kinds again, oldest first (at most ``limit``), and take
        them off the list: (how many, the shards to nudge).

        Safe to repeat and to run beside workers: an event is queued before its entry leaves the
        list, so a crash in between queues it twice at worst, and the customer's seen-event marks
        make the second copy a no-op (an event applied to the profile and not finished is resumed
        without applying it again)."""
        unknown = kinds - set(KEPT_ASIDE)
        if unknown:
            raise ValueError(f"kinds {sorted(unknown)} are not among {sorted(KEPT_ASIDE)}")
        chosen: list[tuple[str, str]] = []
        for raw in self.redis.lrange(keys.dead_events(), 0, -1):
            entry = json.loads(raw)
            if entry.get("kind") in kinds:
                chosen.append((raw, entry["record"]))
                if limit is not None and len(chosen) >= limit:
                    break
        if not chosen:
            return 0, []
        shards = self.push_many((decode(record).customer_id, record) for _raw, record in chosen)
        pipe = self.redis.pipeline(transaction=False)
        for raw, _record in chosen:
            pipe.lrem(keys.dead_events(), 1, raw)
        pipe.execute()
        return len(chosen), shards
