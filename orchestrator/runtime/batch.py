"""Many events at once: a drained batch (:mod:`orchestrator.runtime.event_queue`) shares its round trips.

A batch is handled in rounds in which each customer appears once, so a customer's events keep
their order and what was read for a round is what its decisions see.  Per round, the common case
— an event that changes no profile field, of a customer with no live run — costs four round trips
whatever the round's size:

1. every customer's profile, consent, live runs and last entries, and the event's seen-state
   (marking new events applied);
2. the timers and compare-and-sets of every entry, each claiming its first send;
3. the fatigue gate for every send (``Gate.check_many``);
4. the sends' ``done`` marks with the next compare-and-sets, then stats and the events' ``done``
   marks on the closing pipeline.

Everything else takes the one-event way inside the same round — an order event (the profile
changes, :meth:`EventRunner.handle_event`), a customer with live runs (goals, exits and event waits
come first), a compare-and-set lost to another worker (:meth:`DecisionRunner._decide_and_store`) —
so the journey rules live in one place and the batch only saves round trips.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from orchestrator import engine, metrics
from orchestrator.engine.derive import ORDER_EVENTS, changes_profile, derive_profile
from orchestrator.engine.enrollment import Decision, Delivered, EventArrived
from orchestrator.engine.run_ids import run_id_for
from orchestrator.gate.policy import GateDecision, SendRequest
from orchestrator.language.journey import Journey
from orchestrator.language.profile import Profile
from orchestrator.runtime.attempts import AttemptResult
from orchestrator.runtime.drain_slots import DrainSlots
from orchestrator.runtime.event_queue import QueuedEvent
from orchestrator.runtime.events import EventRunner
from orchestrator.runtime.referrals import CODE_PROPERTY
from orchestrator.runtime.timer_firing import TimerRunner
from orchestrator.runtime.transitions import pending_updates
from orchestrator.store import EventState, StoredEnrollment, event_log

Notes = tuple[tuple[str, str | None, str, int], ...]

#: Threads one worker process sends a batch's messages on (shared by its drainers; the pool is the
#: runtime's, ``Runtime.senders``, built by :func:`sender_pool` and shut down by ``Runtime.close``).
SENDER_THREADS = 16
#: Seconds (moving average per channel) above which a channel's sends go to the sender threads.
SLOW_SEND = 0.02
#: Channel name → moving average of its attempts' durations, in seconds, in this process.
_took: dict[str, float] = {}


@dataclass
class Step:
    """One decision to store, with what :meth:`BatchRunner.carry_out_many` needs around it."""

    stored: StoredEnrollment | None
    decision: Decision
    #: The customer's profile as the decision saw it (an inline send reuses it).
    profile: Profile | None
    #: How to decide again after losing the compare-and-set (None for an entry: the run exists).
    decide: Callable[[StoredEnrollment], Decision | None] | None = None
    #: Stats already earned (a delivery's), counted whether or not the compare-and-set wins.
    notes: Notes = ()
    #: Unconditional writes (a send's ``done`` mark) queued before the compare-and-set.
    before: Callable[[Any], None] | None = None


def rounds(events: Sequence[QueuedEvent]) -> Iterator[list[QueuedEvent]]:
    """Split a batch into rounds with each customer at most once, keeping each customer's order."""
    pending = list(events)
    while pending:
        taken: set[str] = set()
        now: list[QueuedEvent] = []
        later: list[QueuedEvent] = []
        for event in pending:
            if event.customer_id in taken:
                later.append(event)
            else:
                taken.add(event.customer_id)
                now.append(event)
        yield now
        pending = later


class BatchRunner(EventRunner, TimerRunner):
    """Events, entries and sends many at a time."""

    def handle_events(self, events: Sequence[QueuedEvent]) -> int:
        """Handle a drained batch (each event once, in order per customer); returns how many were
        new, duplicates (an event id seen before) not counted."""
        return sum(self._round(batch) for batch in rounds(events))

    def _round(self, events: list[QueuedEvent]) -> int:
        handled = 0
        fast: list[QueuedEvent] = []
        for event in events:
            if event.name in ORDER_EVENTS:
                outcome = self.handle_event(
                    event.customer_id, event.name, event.properties, event.event_id, event.timestamp
                )
                handled += outcome == "handled"
            else:
                fast.append(event)
        if not fast:
            return handled
        now = self.clock()
        states = self.store.read_events([(event.customer_id, event.event_id) for event in fast], now.timestamp())
        finished: list[QueuedEvent] = []
        counted: list[Callable[[Any], None]] = []
        duplicates = 0
        # Stats and replaced-timer clean-up ride on the closing pipeline (see handle_event).
        deferred: list[Callable[[Any], None]] = []
        tally: Counter[tuple[str, str | None, str]] = Counter()
        self._local.deferred, self._local.tally = deferred, tally
        try:
            entries: list[Step] = []
            states = self._create_profiles(fast, states)
            for event, seen in zip(fast, states, strict=True):
                if seen.state == "done":
                    duplicates += 1
                    continue
                finished.append(event)
                if self.referrals is not None and CODE_PROPERTY in event.properties:
                    self.referrals.see(event.customer_id, event.name, event.properties, seen.profile, event.timestamp)
                arrived = EventArrived(event.name, dict(event.properties), event.event_id, event.timestamp)
                count = self._counted(event.customer_id, seen, arrived, now)
                if count is not None:
                    counted.append(count)
                entries.extend(self._event_steps(event, seen, now))
            self.carry_out_many(entries)
        finally:
            self._local.deferred = self._local.tally = None
        count_unknown = self.unknown_counter(event.name for event in finished)
        logged = [
            (e.customer_id, self.event_entry(e.name, e.event_id, e.timestamp, e.properties, now)) for e in finished
        ]

        def close(pipe: Any) -> None:
            for build in deferred:
                build(pipe)
            self.store.record_many(((j, step, stat, n) for (j, step, stat), n in tally.items()), pipe=pipe)
            for count in counted:
                count(pipe)
            for event in finished:
                self.store.finish_event(event.customer_id, event.event_id, pipe)
            event_log.append_many(pipe, logged)
            if finished:
                self.store.count("events_handled", len(finished), pipe)
            if duplicates:
                self.store.count("events_duplicate", duplicates, pipe)
            count_unknown(pipe)

        self.store.run(close)
        for _ in finished:
            metrics.event("handled")
        for _ in range(duplicates):
            metrics.event("duplicate")
        return handled + len(finished)

    def _create_profiles(self, events: list[QueuedEvent], states: list[EventState]) -> list[EventState]:
        """A first event of a customer never seen (or stored without ``created_at``) creates the
        profile, as apply_event does: all of the round's in one round trip, each only if the
        profile did not change since it was read (else read, changed and written one at a time)."""
        todo = [
            (index, derive_profile(seen.profile.model_copy(deep=True), event.name, event.properties, event.timestamp))
            for index, (event, seen) in enumerate(zip(events, states, strict=True))
            if seen.state == "new" and changes_profile(seen.profile, event.name)
        ]
        if not todo:
            return states
        states = list(states)
        written = self.store.set_profiles([(profile, states[index].raw) for index, profile in todo])
        for (index, profile), ok in zip(todo, written, strict=True):
            event = events[index]
            if not ok:
                profile = self.store.change_profile(event.customer_id, _deriving(event))
            states[index] = replace(states[index], profile=profile)
        return states

    def _event_steps(self, event: QueuedEvent, seen: EventState, now: datetime) -> list[Step]:
        """The entries an event starts, to be stored with the round's; a customer with live runs is
        handled here and now, the one-event way (their goals and exits come before any entry)."""
        profile = seen.profile
        arrived = EventArrived(event.name, dict(event.properties), event.event_id, event.timestamp)
        if seen.live:
            state = EventState(seen.state, profile, seen.live, seen.last)
            self._journeys_see(event.customer_id, event.name, event.properties, event.event_id, arrived, state, now)
            return []
        steps: list[Step] = []
        for journey in self.journeys.current.values():
            if not (
                engine.matches_trigger(journey, event.name, event.properties, profile, now=now)
                and engine.in_audience(journey, profile, now)
                and engine.may_enter(journey, has_live=False, last_entered_at=seen.last.get(journey.id), now=now)
            ) or self.too_old(journey, event.timestamp, now):
                continue
            decision = engine.enter(
                journey,
                profile,
                trigger=dict(event.properties),
                run_id=run_id_for(journey.id, event.customer_id, event.event_id),
                now=now,
                settings_timezone=self.tz,
                event_id=event.event_id,
                global_holdout=self.settings.global_holdout,
                event_time=event.timestamp,
            )
            steps.append(Step(None, decision, profile))
        return steps

    # --- storing many decisions -----------------------------------------------------------------
    def carry_out_many(self, steps: list[Step]) -> None:
        """:meth:`carry_out` for many decisions: every timer and compare-and-set in one pipeline,
        then the effects, with the fresh sends delivered together (:meth:`deliver_many`)."""
        if not steps:
            return
        inline = self.inline_sends or self.dispatcher is None
        lease_end = self.clock().timestamp() + self.delivery.claim_lease
        plans = []
        for step in steps:
            send, timer = self._plan(step.stored, step.decision)
            enrollment = step.decision.enrollment
            actions = step.decision.actions
            fresh = send is not None and enrollment.status == "sending" and any(a is send for a in actions)
            claim = None
            if fresh and inline and send is not None and send.recipient_id == enrollment.customer_id:
                claim = (send.idempotency_key, lease_end)
            plans.append((send, timer, fresh, claim, pending_updates(step.decision)))

        def write(pipe: Any) -> None:
            # Unconditional writes, then every timer, then every compare-and-set: a timer without its
            # state is stale and harmless, and the last len(steps) replies are the compare-and-sets.
            for step in steps:
                if step.before is not None:
                    step.before(pipe)
            for step, (_send, timer, _fresh, _claim, updates) in zip(steps, plans, strict=True):
                self._queue_timers(pipe, step.decision, timer, updates)
            for step, (send, timer, _fresh, claim, updates) in zip(steps, plans, strict=True):
                self._queue_cas(pipe, step.stored, step.decision, send, timer, claim, updates)

        replies = self.store.run(write)[-len(steps) :]
        sends: list[tuple[StoredEnrollment, Profile | None, str | None]] = []
        for step, (send, timer, fresh, claim, updates), ok in zip(steps, plans, replies, strict=True):
            enrollment = step.decision.enrollment
            if not ok:
                if step.stored is not None and step.decide is not None:
                    # Another worker moved it: read, decide and store again, one at a time.
                    self._decide_and_store(enrollment.customer_id, enrollment.run_id, step.decide, notes=step.notes)
                elif step.notes:
                    self._bookkeeping(self._records(step.notes))
                continue
            self._after_write(step.stored, step.decision, timer, pipe=None, notes=step.notes)
            if updates:
                self._apply_updates(enrollment.customer_id, enrollment.run_id, enrollment.revision, updates)
            if fresh and send is not None:
                pending = StoredEnrollment(enrollment, send, timer)
                if inline:
                    sends.append((pending, step.profile, claim[0] if claim else None))
                else:
                    self._send(pending, step.profile, None)
        self.deliver_many(sends)

    def _records(self, notes: Notes) -> Callable[[Any], None]:
        return lambda pipe: self.store.record_many(notes, pipe=pipe)

    def deliver_sends(self, items: list[tuple[StoredEnrollment, Profile | None, str | None]]) -> None:
        """A cohort chunk's first sends go out together, like a drained batch's."""
        self.deliver_many(items)

    def deliver_many(self, items: list[tuple[StoredEnrollment, Profile | None, str | None]]) -> None:
        """Deliver fresh sends (enrollment in ``sending``, the customer's profile, the claimed key):
        the gate decides every first channel in one round trip, then each goes to its channel, and
        the step outcomes are stored together by :meth:`carry_out_many`."""
        if not items:
            return
        now = self.clock()
        ready: list[tuple[StoredEnrollment, Journey, Profile, str | None, SendRequest | None]] = []
        for stored, profile, claimed in items:
            enrollment = stored.enrollment
            journey = self.journey_of(enrollment)
            if profile is None or profile.id != enrollment.customer_id or journey is None or stored.send is None:
                run = (enrollment.customer_id, enrollment.run_id, enrollment.revision)
                self.deliver(*run, stored=stored, claimed=claimed)
                continue
            own = stored.send.recipient_id == enrollment.customer_id
            request = self.delivery.first_request(journey, stored.send, profile) if own else None
            ready.append((stored, journey, profile, claimed, request))
        asked = [request for *_rest, request in ready if request is not None]
        answers = iter(self.delivery.gate.check_many(asked, now=now) if asked else [])
        decided = [next(answers) if request is not None else None for *_rest, request in ready]
        results = _concurrently(
            None if self.serial_sends else self.senders,
            self.slots,
            [
                self._attempt(stored, journey, profile, claimed, gate)
                for (stored, journey, profile, claimed, _r), gate in zip(ready, decided, strict=True)
            ],
        )
        steps: list[Step] = []
        later: list[tuple[StoredEnrollment, datetime, Notes, bool]] = []
        for (stored, journey, profile, _claimed, _request), result in zip(ready, results, strict=True):
            send = stored.send
            assert send is not None
            if result.retry_at is not None:
                later.append((stored, result.retry_at, result.notes, result.outcome == "deferred"))
                continue
            signal = result.delivered(send.step_id)
            decide = _advance(journey, profile, signal, stored.enrollment.revision, now, self.tz)
            decision = decide(stored)
            if decision is None or decision.enrollment is stored.enrollment:
                enrollment = stored.enrollment
                self._decide_and_store(
                    enrollment.customer_id,
                    enrollment.run_id,
                    decide,
                    first=stored,
                    notes=result.notes,
                    before=result.writes,
                )
                continue
            steps.append(Step(stored, decision, profile, decide, result.notes, result.writes))
        if later:
            self._retry_later(later)
        self.carry_out_many(steps)

    def _attempt(
        self,
        stored: StoredEnrollment,
        journey: Journey,
        profile: Profile,
        claimed: str | None,
        decided: GateDecision | None,
    ) -> tuple[str, Callable[[], AttemptResult]]:
        """One send's first channel and its attempt, to run in turn or on a sender thread; its clock
        is read when it runs (a retry is timed from the provider's answer, not the batch's start)."""
        send = stored.send
        assert send is not None
        own = send.recipient_id == profile.id

        def attempt() -> AttemptResult:
            return self.delivery.attempt(
                journey,
                stored.enrollment,
                send,
                now=self.clock(),
                profile=profile if own else None,
                claimed=claimed,
                decided=decided,
            )

        return send.channels[0], attempt

    def _retry_later(self, later: list[tuple[StoredEnrollment, datetime, Notes, bool]]) -> None:
        """Sends to try again (quiet hours, a deferred cap, a transient failure): their timers; a
        deferred one (quiet hours, a cap) is counted ``deferred`` once per send."""
        now = self.clock().timestamp()

        def write(pipe: Any) -> None:
            for stored, retry_at, notes, deferred in later:
                run = (stored.enrollment.customer_id, stored.enrollment.run_id, stored.enrollment.revision)
                due = retry_at.timestamp()
                step_id = stored.send.step_id if stored.send is not None else ""
                counted = (stored.enrollment, step_id, now) if deferred and step_id else None
                self.timers.schedule(*run, due, pipe=pipe)
                self.store.set_timer_field(*run, due, pipe=pipe, deferred=counted)
                self.store.record_many(notes, pipe=pipe)

        self.store.run(write)


def sender_pool() -> ThreadPoolExecutor:
    """A runtime's sender threads; none is started until a slow channel's first send."""
    return ThreadPoolExecutor(max_workers=SENDER_THREADS, thread_name_prefix="loyaloop-send")


def _concurrently(
    senders: ThreadPoolExecutor | None, slots: DrainSlots, jobs: list[tuple[str, Callable[[], AttemptResult]]]
) -> list[AttemptResult]:
    """Run a batch's send attempts (channel name, attempt), results in order.

    A local channel such as the outbox takes microseconds, less than handing the send to a thread,
    so a quick channel's sends run one after the other; a slow channel's (a provider's API, or one
    that just turned slow in this batch) go to the process's sender threads, so a slow or hanging
    provider holds up only its own sends, as with one event per worker thread.  While the drain
    waits on them it gives its slot back (:meth:`orchestrator.runtime.drain_slots.DrainSlots.waiting`).
    Without ``senders`` (a runtime on a simulated clock) every attempt runs in turn.
    """
    futures: dict[int, Future[AttemptResult]] = {}
    results: dict[int, AttemptResult] = {}
    for index, (channel, job) in enumerate(jobs):
        if senders is not None and _took.get(channel, 0.0) > SLOW_SEND:
            futures[index] = senders.submit(_timed, channel, job)
        else:
            results[index] = _timed(channel, job)
    if futures:
        with slots.waiting():
            for index, future in futures.items():
                results[index] = future.result()
    return [results[index] for index in range(len(jobs))]


def _timed(channel: str, job: Callable[[], AttemptResult]) -> AttemptResult:
    """Run one attempt and fold its duration into the channel's moving average."""
    started = time.monotonic()
    try:
        return job()
    finally:
        elapsed = time.monotonic() - started
        _took[channel] = 0.8 * _took.get(channel, elapsed) + 0.2 * elapsed


def _deriving(event: QueuedEvent) -> Callable[[Profile], Profile]:
    return lambda profile: derive_profile(profile, event.name, event.properties, event.timestamp)


def _advance(
    journey: Journey, profile: Profile, signal: Delivered, revision: int, now: datetime, zone: str
) -> Callable[[StoredEnrollment], Decision | None]:
    """The decision after a send's outcome, for the revision that sent it (and only that one)."""

    def decide(current: StoredEnrollment) -> Decision | None:
        if current.enrollment.revision != revision:
            return None
        return engine.advance(journey, current.enrollment, profile, signal, now=now, settings_timezone=zone)

    return decide
