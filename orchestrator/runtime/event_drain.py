"""Draining one shard of queued events: take a batch under the shard's lease, handle it, drop it, go on.

One drain message works for at most ``DRAIN_BUDGET`` seconds, then hands the shard to a fresh
message, so a busy shard never holds a worker thread (or Dramatiq's time limit) for long and the
other shards' messages get their turn.  A process runs at most ``LOYALOOP_BATCH_SLOTS`` drains at
once (:mod:`orchestrator.runtime.drain_slots`); under load the shards waiting for a turn fill up, so
batches grow with the load by themselves (no waiting for a batch to fill, which would cost every
quiet event its latency).

A bad event never stops its shard: a record that does not decode is counted and kept aside
(:meth:`EventQueue.bury`); a batch that fails is handled again one event at a time, and an event
that still fails for a reason other than a Redis outage is counted and kept aside too.  What is
recorded tells bad input from a bug: an ``InputError`` (or a record that does not decode) is the
event's fault, counted as refused input, and would fail the same way forever; anything else is a
bug in the runtime, counted apart and logged with its traceback, and the event kept aside can be
replayed once the bug is fixed.  A Redis outage is raised, after handing the shard back, so
Dramatiq retries the message with back-off.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable

import redis

from orchestrator.errors import InputError
from orchestrator.runtime.event_queue import BUG, DRAIN_LEASE, INPUT, EventQueue, QueuedEvent, decode
from orchestrator.runtime.event_record import REFUSED, event_entry
from orchestrator.runtime.failures import log_failure
from orchestrator.runtime.runtime import Runtime
from orchestrator.store import event_log, keys

log = logging.getLogger(__name__)

#: Seconds one drain message works before it hands its shard to a fresh message.
DRAIN_BUDGET = 2.0

#: Failures that are Redis's, not the event's: retried, never kept aside.  On a Redis Cluster a
#: failover adds its own: a slot with no master yet (``CLUSTERDOWN``), a key mid-move (``TRYAGAIN``),
#: a redirection redis-py gave up following, no node reachable (see docs/reliability.md, failover).
OUTAGE = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.TryAgainError,
    redis.exceptions.AskError,
    redis.exceptions.RedisClusterException,
)


def drain(
    runtime: Runtime, queue: EventQueue, shard: int, nudge: Callable[[int], object], *, budget: float = DRAIN_BUDGET
) -> int:
    """Drain ``shard`` until it is empty, the budget is spent (``nudge`` queues the next drain
    message) or the lease is lost.  Returns how many events were taken; 0 when another drainer
    holds the shard (it drains what is queued before it lets go)."""
    if not 0 <= shard < queue.shards:
        raise ValueError(f"event shard {shard} is not between 0 and {queue.shards - 1}")
    with runtime.slots.slot():
        return _drain(runtime, queue, shard, nudge, budget)


def _drain(runtime: Runtime, queue: EventQueue, shard: int, nudge: Callable[[int], object], budget: float) -> int:
    # A retry of a drain that could not hand its shard back (Redis was down) takes up its old lease.
    token = _unreleased.pop(shard, None) or uuid.uuid4().hex
    batch = queue.take(shard, token)
    if batch is None:
        return 0
    taken = 0
    deadline = time.monotonic() + budget
    KEEPER.hold(queue, shard, token)
    try:
        while batch:
            handle_records(runtime, queue, batch)
            taken += len(batch)
            handover = time.monotonic() > deadline
            reply = queue.done(shard, token, len(batch), handover=handover)
            if reply is None:
                log.info("lost the lease of event shard %d; its new drainer goes on", shard)
                return taken
            left, batch = reply
            if handover and left:
                nudge(shard)
                return taken
    except BaseException:
        try:
            queue.release(shard, token)  # whoever comes next (Dramatiq's retry, a nudge) may take it now
        except OUTAGE:
            _unreleased[shard] = token
        raise
    finally:
        KEEPER.drop(shard, token)
    return taken


class LeaseKeeper:
    """Renews the shard leases this process's drainers hold, every third of a lease, on one daemon
    thread: a batch waiting on a slow provider keeps its shard, while a killed process's shards are
    free again one lease after it died."""

    def __init__(self) -> None:
        self._held: dict[tuple[int, str], EventQueue] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._interval = DRAIN_LEASE / 3

    def hold(self, queue: EventQueue, shard: int, token: str) -> None:
        with self._lock:
            self._held[(shard, token)] = queue
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="loyaloop-lease-keeper", daemon=True)
                self._thread.start()
            if queue.lease_ms / 3000 < self._interval:
                self._wake.set()  # a shorter lease than the keeper's rhythm: it must look sooner

    def drop(self, shard: int, token: str) -> None:
        with self._lock:
            self._held.pop((shard, token), None)

    def _run(self) -> None:
        while True:
            with self._lock:
                rhythms = [queue.lease_ms / 3000 for queue in self._held.values()]
                self._interval = min(rhythms, default=DRAIN_LEASE / 3)
            if self._wake.wait(self._interval):
                self._wake.clear()
                continue  # a lease just taken is fresh: only the rhythm changes
            with self._lock:
                held = dict(self._held)
            by_queue: dict[int, tuple[EventQueue, list[tuple[int, str]]]] = {}
            for (shard, token), queue in held.items():
                by_queue.setdefault(id(queue), (queue, []))[1].append((shard, token))
            for queue, leases in by_queue.values():
                try:
                    queue.renew(leases)
                except Exception as exc:  # a Redis blip: the next round tries again
                    log.warning("could not renew event shard leases (%s)", type(exc).__name__)


KEEPER = LeaseKeeper()
#: Shard → token of a drain that failed while Redis was down (its retry here reclaims the lease).
_unreleased: dict[int, str] = {}


def handle_records(runtime: Runtime, queue: EventQueue, records: list[str]) -> None:
    """Decode and handle one batch of records; see the module docstring for what happens to bad ones."""
    events: list[tuple[str, QueuedEvent]] = []
    for record in records:
        try:
            events.append((record, decode(record)))
        except InputError as exc:
            _keep_aside(runtime, queue, record, exc)
    try:
        runtime.handle_events([event for _record, event in events])
        return
    except OUTAGE:
        raise
    except Exception as exc:  # one bad event must not hold up the rest: find it, one at a time
        # With its traceback: when the events then pass one at a time, the bug was in the batch path.
        log_failure(
            log, logging.WARNING, "a batch of %d events failed; handling them one at a time", len(events), exc=exc
        )
    traced: set[type[BaseException]] = set()
    for record, event in events:
        try:
            runtime.handle_event(event.customer_id, event.name, event.properties, event.event_id, event.timestamp)
        except OUTAGE:
            raise
        except Exception as exc:
            _keep_aside(runtime, queue, record, exc, trace=type(exc) not in traced, event=event)
            traced.add(type(exc))


def _keep_aside(
    runtime: Runtime,
    queue: EventQueue,
    record: str,
    exc: Exception,
    *,
    trace: bool = True,
    event: QueuedEvent | None = None,
) -> None:
    """Keep a record aside as bad input (an ``InputError``: counted as refused, like at every door,
    and, when it decoded, on the customer's event log marked refused) or as a bug (anything else:
    counted apart and logged with its traceback, once per batch and error type, since a bug
    usually fails a whole batch the same way)."""
    reason = type(exc).__name__
    # The record may carry personal data: the log names only the reason and where it was kept.
    if isinstance(exc, InputError):
        queue.bury(record, reason, INPUT)
        runtime.store.refuse(f"message:event:{reason}")
        field = f", {exc.field}" if exc.field else ""
        if event is not None:
            _log_refused(runtime, event, f"{reason}{field}")
        log.warning("kept aside a queued event with bad input (%s%s) in %s", reason, field, keys.dead_events())
        return
    queue.bury(record, reason, BUG)
    message = "a queued event failed with %s, a bug rather than bad input: kept aside in %s to replay once fixed"
    if trace:
        log_failure(log, logging.ERROR, message, reason, keys.dead_events(), exc=exc)
    else:
        log.error(message + " (traceback logged with the first one of this batch)", reason, keys.dead_events())


def _log_refused(runtime: Runtime, event: QueuedEvent, reason: str) -> None:
    """A refused event on its customer's event log (one round trip, on this rare path only)."""
    now = runtime.clock()
    text = event_entry(event.name, event.event_id, event.timestamp, event.properties, now, REFUSED, reason)
    runtime.store.run(lambda pipe: event_log.append(pipe, event.customer_id, [text]))
