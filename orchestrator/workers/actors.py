"""The Dramatiq actors: thin wrappers that turn a message into a call on the process's Runtime.

Events reach workers as ``drain_events(shard)`` nudges (see :mod:`orchestrator.runtime.event_queue`): the
events themselves wait in Redis lists, many handled per message.  ``handle_event`` (one event per
message) still works for messages already queued and for callers that send it directly.

Actors are declared per broker by :func:`declare_actors` (not at import time on a global broker),
so the worker module, the embedded default and tests can each bind them to their own broker.

A message is a nudge, never the truth: every actor re-reads Redis and may find nothing left to
do.  Its arguments are checked at the door, with the intake's checks
(:mod:`orchestrator.language.inputs`) and a type check of each: a message that fails them is
malformed (it would fail the same way on every retry), so it is counted in the store's refused
counts (``message:<kind>:InputError``) and dropped.  Nothing else is taken for bad input: any
exception raised once the message is past its checks is a bug or an outage, logged with its
traceback (redacted: no addresses) and handed to Dramatiq's Retries middleware, which backs off
exponentially.  It is handed over as a ``dramatiq.Retry`` chained to the exception, because
Dramatiq's own error log would print the message's arguments (customer ids, event properties).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import dramatiq

from orchestrator.errors import InputError
from orchestrator.language.inputs import (
    check_customer_id,
    check_event,
    check_event_id,
    check_properties,
    check_timestamp,
)
from orchestrator.runtime.event_drain import OUTAGE, drain
from orchestrator.runtime.event_queue import EventQueue, QueuedEvent
from orchestrator.runtime.failures import log_failure
from orchestrator.runtime.fire_order import due_order, fresh_profile
from orchestrator.runtime.runtime import Runtime
from orchestrator.store import layout
from orchestrator.store.timers import parse_member
from orchestrator.workers.queue_broker import queue_name

log = logging.getLogger(__name__)

EVENTS, DELIVERIES, TIMERS, COHORTS = "loyaloop-events", "loyaloop-deliveries", "loyaloop-timers", "loyaloop-cohorts"
QUEUES = (EVENTS, DELIVERIES, TIMERS, COHORTS)
RETRY_OPTIONS: dict[str, Any] = {"max_retries": 8, "min_backoff": 250, "max_backoff": 60_000}
#: Longest run id or journey id a message may carry (ours are far shorter).
MAX_ID = 256

T = TypeVar("T")
#: Where a check puts what it refused of a message while keeping the rest (a cohort's or a timer
#: batch's bad members do not hold up the good ones).
Refused = list[InputError]


class Actors:
    """The four actors bound to one broker, plus the runtime they call (built lazily, once)."""

    def __init__(self, broker: dramatiq.Broker, runtime_factory: Callable[[Actors], Runtime]) -> None:
        self.broker = broker
        self._factory = runtime_factory
        self._runtime: Runtime | None = None
        self._queue: EventQueue | None = None
        self._lock = threading.Lock()

        def handle_event(customer_id: Any, name: Any, properties: Any, event_id: Any, timestamp: Any) -> None:
            self._guard(
                "event",
                lambda _refused: _event(customer_id, name, properties, event_id, timestamp),
                lambda rt, e: rt.handle_event(e.customer_id, e.name, e.properties, e.event_id, e.timestamp),
            )

        def drain_events(shard: Any) -> None:
            self._guard(
                "events",
                lambda _refused: _shard(shard, self.event_queue.shards),
                lambda rt, number: drain(rt, self.event_queue, number, self.drain_events.send),
            )

        def profile_changed(customer_id: Any) -> None:
            self._guard("profile", lambda _refused: check_customer_id(customer_id), lambda rt, c: rt.profile_changed(c))

        def deliver(customer_id: Any, run_id: Any, revision: Any) -> None:
            self._guard(
                "deliver",
                lambda _refused: (check_customer_id(customer_id), _name(run_id, "run id"), _revision(revision)),
                lambda rt, args: rt.deliver(*args),
            )

        def fire_timers(members: Any) -> None:
            self._guard("timers", lambda refused: _timer_members(members, refused), fire_claimed)

        def enter_batch(journey_id: Any, customer_ids: Any, run_key: Any, trigger: Any) -> None:
            self._guard(
                "cohort",
                lambda refused: (
                    _name(journey_id, "journey id"),
                    _customer_ids(customer_ids, refused),
                    _name(run_key, "run key"),
                    _trigger(trigger),
                ),
                lambda rt, args: rt.enter_batch(*args) if args[1] else 0,
            )

        namespace = layout.current().namespace
        #: This deployment's queue names (the namespace's, see orchestrator.workers.queue_broker).
        self.queues = tuple(queue_name(queue, namespace) for queue in QUEUES)

        def declare(fn: Callable[..., None], queue: str) -> dramatiq.Actor[Any, Any]:
            return dramatiq.Actor(
                fn,
                broker=broker,
                actor_name=f"loyaloop.{fn.__name__}",
                queue_name=queue_name(queue, namespace),
                priority=0,
                options=dict(RETRY_OPTIONS),
            )

        self.handle_event = declare(handle_event, EVENTS)
        self.drain_events = declare(drain_events, EVENTS)
        self.profile_changed = declare(profile_changed, EVENTS)
        self.deliver = declare(deliver, DELIVERIES)
        self.fire_timers = declare(fire_timers, TIMERS)
        self.enter_batch = declare(enter_batch, COHORTS)

    def nudge_drain(self, shard: int) -> None:
        """Ask a worker to drain an event shard (the intake's :class:`~orchestrator.runtime.intake.Nudges`)."""
        self.drain_events.send(shard)

    def nudge_profile(self, customer_id: str) -> None:
        """Tell a worker a profile changed."""
        self.profile_changed.send(customer_id)

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            with self._lock:
                if self._runtime is None:
                    self._runtime = self._factory(self)
        return self._runtime

    @property
    def event_queue(self) -> EventQueue:
        """The queued events on the runtime's Redis (built once)."""
        if self._queue is None:
            self._queue = EventQueue(self.runtime.store.redis)
        return self._queue

    def use(self, runtime: Runtime) -> None:
        """Bind an already built runtime (the embedded default and tests)."""
        self._runtime = runtime

    def _guard(self, kind: str, check: Callable[[Refused], T], call: Callable[[Runtime, T], object]) -> None:
        """Check a message's arguments, then run it: only what ``check`` refuses is malformed.

        An ``InputError`` raised by ``call`` is not the message's fault (its arguments passed), so it
        is retried like any other failure.  Members ``check`` refused while keeping the rest are
        counted once the rest went through (a retry would count them again)."""
        runtime = self.runtime
        refused: Refused = []
        try:
            try:
                checked = check(refused)
            except InputError as exc:
                self._refuse(runtime, kind, exc)
                return
            call(runtime, checked)
            if refused:
                self._refuse(runtime, kind, refused[0])
        except OUTAGE as exc:
            log.warning("a %s message met a Redis outage (%s); Dramatiq retries it", kind, type(exc).__name__)
            raise dramatiq.Retry(f"{kind} message: Redis outage ({type(exc).__name__})") from exc
        except Exception as exc:
            name = type(exc).__name__
            log_failure(log, logging.ERROR, "a %s message failed with %s; Dramatiq retries it", kind, name, exc=exc)
            raise dramatiq.Retry(f"{kind} message failed with {name}") from exc

    @staticmethod
    def _refuse(runtime: Runtime, kind: str, exc: InputError) -> None:
        # Counted by the error's name; the log names the field, never the value (it may be personal).
        runtime.store.refuse(f"message:{kind}:{type(exc).__name__}")
        log.warning("dropped a malformed %s message (%s)", kind, exc.field or "unknown field")


# --- what a message's arguments must be ------------------------------------------------------------
def _event(customer_id: Any, name: Any, properties: Any, event_id: Any, timestamp: Any) -> QueuedEvent:
    """A ``handle_event`` message written past ``track`` gets ``track``'s checks (a customer id with
    braces would break the ``{customer_id}`` hash tag of every key it touches); its timestamp was
    accepted once, so it may lie in the future."""
    return QueuedEvent(
        check_customer_id(customer_id),
        check_event(name),
        check_properties(properties),
        check_event_id(event_id),
        check_timestamp(timestamp, datetime.now(UTC), max_future=None),
    )


def _shard(value: Any, shards: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < shards:
        raise InputError(f"event shard {value!r} is not a whole number from 0 to {shards - 1}", field="shard")
    return value


def _name(value: Any, what: str) -> str:
    """A run id, journey id or run key: part of Redis keys and of timer members (``|``-separated)."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID or "|" in value:
        raise InputError(
            f"{what} {value!r} is not valid; send the string the runtime made (1-{MAX_ID} characters, no '|')",
            field=what.replace(" ", "_"),
        )
    return value


def _revision(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InputError(f"revision {value!r} is not a whole number of 0 or more", field="revision")
    return value


def _customer_ids(values: Any, refused: Refused) -> list[str]:
    """The cohort's valid ids; an invalid one is refused without holding up a broadcast's chunk."""
    if not isinstance(values, list):
        raise InputError(f"customer ids must be a list, got {type(values).__name__}", field="customer_ids")
    valid: list[str] = []
    for value in values:
        try:
            valid.append(check_customer_id(value))
        except InputError as exc:
            refused.append(exc)
    return valid


def _trigger(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
        raise InputError(f"trigger must be an object with string keys, got {type(value).__name__}", field="trigger")
    return value


def _timer_members(values: Any, refused: Refused) -> list[tuple[str, str, int]]:
    """The batch's well-formed timer members (``customer|run|revision``); a malformed one is refused
    without holding up the others."""
    if not isinstance(values, list):
        raise InputError(f"timer members must be a list, got {type(values).__name__}", field="members")
    parsed: list[tuple[str, str, int]] = []
    for text in values:
        try:
            if not isinstance(text, str):
                raise ValueError(type(text).__name__)
            customer_id, run_id, revision = parse_member(text)
            parsed.append((check_customer_id(customer_id), _name(run_id, "run id"), _revision(revision)))
        except ValueError:
            refused.append(InputError(f"timer member {text!r} is not 'customer|run|revision'", field="member"))
        except InputError as exc:
            refused.append(exc)
    return parsed


class ActorDispatcher:
    """The runtime's way to hand a send to another worker: one deliver message per send."""

    def __init__(self, actors: Actors) -> None:
        self.actors = actors

    def deliver(self, customer_id: str, run_id: str, revision: int) -> None:
        self.actors.deliver.send(customer_id, run_id, revision)

    def drain(self, shard: int) -> None:
        self.actors.drain_events.send(shard)


def fire_claimed(runtime: Runtime, members: list[tuple[str, str, int]]) -> None:
    """Fire a batch of claimed timers, then acknowledge the handled ones in one round trip (a crash
    leaves the rest leased, and the reaper hands them out again).

    Each customer's timers fire in priority order (:func:`orchestrator.runtime.fire_order.due_order`), so
    the highest-priority journey reaches the fatigue gate first.  ``loyaloop simulate`` fires its
    virtual timers through this same function.

    The timers' bookkeeping (stats, replaced timers cancelled) rides on the acknowledgement's
    round trip, as an event batch's rides on its closing pipeline."""
    handled: list[tuple[str, str, int]] = []
    with runtime.closing_pipeline() as closing:
        closing.append(lambda pipe: runtime.timers.ack_members(handled, pipe=pipe))
        fired: set[str] = set()
        for timer in due_order(runtime, members):
            profile = fresh_profile(runtime, timer, fired)
            fired.add(timer.customer_id)
            runtime.fire_timer(timer.customer_id, timer.run_id, timer.revision, read=timer.stored, profile=profile)
            handled.append((timer.customer_id, timer.run_id, timer.revision))
