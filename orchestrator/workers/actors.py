"""The Dramatiq actors: thin wrappers that turn a message into a call on the process's Runtime.

Events reach workers as ``drain_events(shard)`` nudges (see :mod:`orchestrator.runtime.event_queue`): the
events themselves wait in Redis lists, many handled per message.  ``handle_event`` (one event per
message) still works for messages already queued and for callers that send it directly.

Actors are declared per broker by :func:`declare_actors` (not at import time on a global broker),
so the worker module, the embedded default and tests can each bind them to their own broker.

A message is a nudge, never the truth: every actor re-reads Redis and may find nothing left to
do.  A malformed message is counted and dropped (it would fail the same way on every retry); any
other exception goes to Dramatiq's Retries middleware, which backs off exponentially.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

import dramatiq
from pydantic import ValidationError

from orchestrator.errors import InputError, JourneyError
from orchestrator.language.inputs import check_customer_id
from orchestrator.runtime.event_drain import drain
from orchestrator.runtime.event_queue import EventQueue
from orchestrator.runtime.fire_order import due_order
from orchestrator.runtime.runtime import Runtime
from orchestrator.store.timers import parse_member

log = logging.getLogger(__name__)

EVENTS, DELIVERIES, TIMERS, COHORTS = "loyaloop-events", "loyaloop-deliveries", "loyaloop-timers", "loyaloop-cohorts"
QUEUES = (EVENTS, DELIVERIES, TIMERS, COHORTS)
RETRY_OPTIONS: dict[str, Any] = {"max_retries": 8, "min_backoff": 250, "max_backoff": 60_000}


class Actors:
    """The four actors bound to one broker, plus the runtime they call (built lazily, once)."""

    def __init__(self, broker: dramatiq.Broker, runtime_factory: Callable[[Actors], Runtime]) -> None:
        self.broker = broker
        self._factory = runtime_factory
        self._runtime: Runtime | None = None
        self._queue: EventQueue | None = None
        self._lock = threading.Lock()

        def handle_event(
            customer_id: str, name: str, properties: dict[str, Any], event_id: str, timestamp: str
        ) -> None:
            self._guard(
                "event",
                lambda rt: rt.handle_event(
                    _customer(customer_id), name, properties, event_id, datetime.fromisoformat(timestamp)
                ),
            )

        def drain_events(shard: int) -> None:
            self._guard("events", lambda rt: drain(rt, self.event_queue, int(shard), self.drain_events.send))

        def profile_changed(customer_id: str) -> None:
            self._guard("profile", lambda rt: rt.profile_changed(customer_id))

        def deliver(customer_id: str, run_id: str, revision: int) -> None:
            self._guard("deliver", lambda rt: rt.deliver(customer_id, run_id, int(revision)))

        def fire_timers(members: list[str]) -> None:
            self._guard("timers", lambda rt: _fire(rt, members))

        def enter_batch(journey_id: str, customer_ids: list[str], run_key: str, trigger: dict[str, Any]) -> None:
            self._guard("cohort", lambda rt: rt.enter_batch(journey_id, list(customer_ids), run_key, trigger))

        def declare(fn: Callable[..., None], queue: str) -> dramatiq.Actor[Any, Any]:
            return dramatiq.Actor(
                fn,
                broker=broker,
                actor_name=f"loyaloop.{fn.__name__}",
                queue_name=queue,
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

    def _guard(self, kind: str, call: Callable[[Runtime], object]) -> None:
        runtime = self.runtime
        try:
            call(runtime)
        except (InputError, ValidationError, JourneyError, ValueError, KeyError, TypeError) as exc:
            # The same message would fail the same way on every retry: count it and move on.
            runtime.store.refuse(f"message:{kind}:{type(exc).__name__}")
            log.warning("dropped a malformed %s message: %s", kind, type(exc).__name__)


def _customer(customer_id: Any) -> str:
    """A message written past ``track`` (straight onto the queue) gets the same customer id check:
    an id with braces would break the ``{customer_id}`` hash tag of every key it touches."""
    return check_customer_id(customer_id)


class ActorDispatcher:
    """The runtime's way to hand a send to another worker: one deliver message per send."""

    def __init__(self, actors: Actors) -> None:
        self.actors = actors

    def deliver(self, customer_id: str, run_id: str, revision: int) -> None:
        self.actors.deliver.send(customer_id, run_id, revision)


def _fire(runtime: Runtime, members: list[str]) -> None:
    """Fire a batch of claimed timers, then acknowledge the handled ones in one round trip (a crash
    leaves the rest leased, and the reaper hands them out again).

    Each customer's timers fire in priority order (:func:`orchestrator.runtime.fire_order.due_order`), so
    the highest-priority journey reaches the fatigue gate first.  A malformed member does not hold
    up the others: it is raised after them (and the message counted as malformed)."""
    handled: list[tuple[str, str, int]] = []
    parsed: list[tuple[str, str, int]] = []
    malformed: ValueError | None = None
    for text in members:
        try:
            parsed.append(parse_member(text))
        except ValueError as exc:
            malformed = malformed or exc
    try:
        for timer in due_order(runtime, parsed):
            runtime.fire_timer(timer.customer_id, timer.run_id, timer.revision)
            handled.append((timer.customer_id, timer.run_id, timer.revision))
    finally:
        runtime.timers.ack_members(handled)
    if malformed is not None:
        raise malformed
