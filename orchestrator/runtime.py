"""The imperative shell around the engine: carries a Decision out against Redis and the channels.

The engine decides, this module does.  Every transition is stored with a compare-and-set on the
enrollment revision *before* its effects are released (a send enqueued, a profile updated), so a
Dramatiq message delivered twice or a timer fired twice finds a newer revision and does nothing.
Timers are written *before* the compare-and-set: a timer for a revision that never got stored is
stale and harmless, while the reverse order could lose a wake-up in a crash.

An enrollment in ``sending`` always has a timer (the send lease): if the worker delivering it dies,
the timer fires after the lease and the send is re-driven — without waiting for Dramatiq to notice
the dead worker.  The same timer is moved to the end of quiet hours, a freed cap slot, or a retry
after a transient failure.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from orchestrator import engine, metrics
from orchestrator.delivery import Delivery
from orchestrator.derive import ORDER_EVENTS, derive_profile
from orchestrator.enrollment import (
    Decision,
    Delivered,
    Enrollment,
    EventArrived,
    Finish,
    Record,
    ScheduleTimer,
    SendAction,
    TimerFired,
    UpdateProfile,
)
from orchestrator.errors import StateConflict
from orchestrator.journey import DateTrigger, Journey
from orchestrator.profile import Profile
from orchestrator.settings import Settings
from orchestrator.store import EventState, PendingUpdate, Store, StoredEnrollment, conflict, pending_json
from orchestrator.timers import Timers

log = logging.getLogger(__name__)

#: How long a worker may hold an enrollment in ``sending`` before the send is re-driven.
SEND_LEASE = 60.0
#: Attempts at a compare-and-set that keeps losing before the nudge is dropped (another worker won).
CAS_ATTEMPTS = 5

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Dispatcher(Protocol):
    """How the runtime hands work to other workers (Dramatiq actors, or direct calls when embedded)."""

    def deliver(self, customer_id: str, run_id: str, revision: int) -> None: ...


class JourneyBook:
    """The journeys now live plus every older version an in-flight enrollment may still be on."""

    def __init__(self, store: Store, journeys: dict[str, Journey]) -> None:
        self.store = store
        self.current = dict(journeys)
        self._versions: dict[tuple[str, str], Journey] = {(j.id, j.version): j for j in journeys.values()}
        for journey in journeys.values():
            store.save_journey(journey)

    def get(self, journey_id: str, version: str) -> Journey | None:
        """The exact version an enrollment entered on (so editing a journey strands nobody)."""
        found = self._versions.get((journey_id, version))
        if found is None:
            found = self.store.load_journey(journey_id, version)
            if found is None:
                found = self.current.get(journey_id)  # the version was lost: the explicit rule is "move on"
            if found is not None:
                self._versions[(journey_id, version)] = found
        return found


@dataclass
class Runtime:
    """Everything a worker needs to run journeys; one per process, shared by its threads."""

    settings: Settings
    store: Store
    timers: Timers
    journeys: JourneyBook
    delivery: Delivery
    dispatcher: Dispatcher | None = None
    clock: Clock = utc_now
    send_lease: float = SEND_LEASE
    #: Run a send in the worker that decided it (no second message); its lease timer covers a crash.
    inline_sends: bool = True
    _local: threading.local = field(default_factory=threading.local, repr=False)

    @property
    def tz(self) -> str:
        return self.settings.default_timezone

    # --- carrying out a decision ---------------------------------------------------------------
    def _plan(
        self, stored: StoredEnrollment | None, decision: Decision
    ) -> tuple[SendAction | None, tuple[int, float] | None]:
        """The pending send and live timer a decision leaves the enrollment with."""
        enrollment = decision.enrollment
        send = next((a for a in decision.actions if isinstance(a, SendAction)), None)
        if send is None and enrollment.status == "sending" and stored is not None:
            send = stored.send  # a non-final outcome (deferred): still the same send
        schedule = next((a for a in decision.actions if isinstance(a, ScheduleTimer)), None)
        timer: tuple[int, float] | None = None
        if schedule is not None:
            timer = (schedule.revision, schedule.due.timestamp())
        elif enrollment.status == "sending":
            timer = (enrollment.revision, self.clock().timestamp() + self.send_lease)
        return send, timer

    def _queue_write(
        self,
        pipe: Any,
        stored: StoredEnrollment | None,
        decision: Decision,
        send: SendAction | None,
        timer: tuple[int, float] | None,
        claim: tuple[str, float] | None = None,
        updates: list[PendingUpdate] | None = None,
    ) -> None:
        """Timers first, then the compare-and-set, on one pipeline (a timer without its state is stale
        and harmless; state without its timer could strand the run).  Profile updates are recorded by
        the compare-and-set itself, with a timer that re-drives them if this worker dies first."""
        enrollment = decision.enrollment
        if timer is not None and not enrollment.finished:
            self.timers.schedule(enrollment.customer_id, enrollment.run_id, timer[0], timer[1], pipe=pipe)
        if updates:
            self.timers.schedule(
                enrollment.customer_id,
                UPDATE_RUN_PREFIX + enrollment.run_id,
                enrollment.revision,
                self.clock().timestamp() + self.send_lease,
                pipe=pipe,
            )
        expected = -1 if stored is None else stored.enrollment.revision
        self.store.write_enrollment(
            pipe,
            enrollment,
            expected=expected,
            send=send,
            timer=timer,
            claim=claim,
            pending=pending_json(updates) if updates else "",
        )

    def carry_out(
        self,
        stored: StoredEnrollment | None,
        decision: Decision,
        *,
        inline: bool | None = None,
        profile: Profile | None = None,
        notes: Iterable[tuple[str, str | None, str, int]] = (),
        before: Callable[[Any], None] | None = None,
    ) -> bool:
        """Store the decision's enrollment (CAS) and run its actions; False when it was stale.

        Raises StateConflict when another worker moved the enrollment first.  ``profile`` is the
        customer's profile as the decision saw it (saves a read when the send runs inline).
        ``before`` queues unconditional writes (a send's ``done`` mark) on the same pipeline.
        """
        enrollment = decision.enrollment
        if stored is not None and enrollment is stored.enrollment:
            return False
        send, timer = self._plan(stored, decision)
        fresh = send is not None and enrollment.status == "sending" and any(a is send for a in decision.actions)
        here = fresh and ((self.inline_sends if inline is None else inline) or self.dispatcher is None)
        claim: tuple[str, float] | None = None
        if here and send is not None and send.recipient_id == enrollment.customer_id:
            # This worker sends it next: claim it in the compare-and-set (one round trip less).
            claim = (send.idempotency_key, self.clock().timestamp() + self.delivery.claim_lease)

        updates = pending_updates(decision)

        def write(pipe: Any) -> None:
            if before is not None:
                before(pipe)
            self._queue_write(pipe, stored, decision, send, timer, claim, updates)

        written = self.store.run(write)
        if not written[-1]:
            if stored is None:
                return False
            raise conflict(enrollment, stored.enrollment.revision)
        self._after_write(stored, decision, timer, pipe=None, notes=notes)
        if updates:
            self._apply_updates(enrollment.customer_id, enrollment.run_id, enrollment.revision, updates)
        if fresh and send is not None:
            self._send(StoredEnrollment(enrollment, send, timer), profile, inline, claim[0] if claim else None)
        return True

    def _send(
        self, stored: StoredEnrollment, profile: Profile | None, inline: bool | None, claimed: str | None = None
    ) -> None:
        enrollment = stored.enrollment
        if (self.inline_sends if inline is None else inline) or self.dispatcher is None:
            self.deliver(
                enrollment.customer_id,
                enrollment.run_id,
                enrollment.revision,
                stored=stored,
                profile=profile,
                claimed=claimed,
            )
        else:
            self.dispatcher.deliver(enrollment.customer_id, enrollment.run_id, enrollment.revision)

    def _after_write(
        self,
        stored: StoredEnrollment | None,
        decision: Decision,
        timer: tuple[int, float] | None,
        pipe: Any,
        notes: Iterable[tuple[str, str | None, str, int]] = (),
    ) -> None:
        """Cancel the replaced timer and count the stats (one round trip, or none when it rides on
        the caller's closing pipeline)."""
        enrollment = decision.enrollment
        records: list[tuple[str, str | None, str, int]] = list(notes)
        recorded = set()
        for action in decision.actions:
            if isinstance(action, Record):
                records.append((enrollment.journey_id, action.step_id, action.stat, 1))
                recorded.add((action.step_id, action.stat))
            elif isinstance(action, Finish) and (None, action.status) not in recorded:
                records.append((enrollment.journey_id, None, action.status, 1))
        if (None, "entered") in recorded:
            metrics.entered(enrollment.journey_id)
        old = stored.timer if stored is not None else None
        drop = old is not None and (timer is None or old[0] != timer[0])

        def build(target: Any) -> None:
            if drop and old is not None:
                self.timers.cancel(enrollment.customer_id, enrollment.run_id, old[0], pipe=target)
            self.store.record_many(records, pipe=target)

        if pipe is not None:
            build(pipe)
        elif records or drop:
            self._bookkeeping(build)

    def _bookkeeping(self, build: Callable[[Any], None]) -> None:
        """Writes that may be lost in a crash (stats, clean-up): on the caller's closing pipeline
        when there is one, else one round trip now."""
        deferred = getattr(self._local, "deferred", None)
        if deferred is not None:
            deferred.append(build)
        else:
            self.store.run(build)

    def _apply_updates(self, customer_id: str, run_id: str, revision: int, updates: list[PendingUpdate]) -> None:
        """Apply the updates a stored revision recorded (each at most once), then forget them and
        their re-drive timer.  A crash before the end leaves both: the timer applies the rest."""
        for update in updates:
            self.store.apply_update(update)

        def clear(pipe: Any) -> None:
            self.store.clear_pending(customer_id, run_id, revision, pipe)
            self.timers.cancel(customer_id, UPDATE_RUN_PREFIX + run_id, revision, pipe=pipe)

        self._bookkeeping(clear)

    def redrive_updates(self, customer_id: str, run_id: str, revision: int) -> str:
        """The re-drive timer of a revision's profile updates fired: apply what is still pending."""
        updates = self.store.pending_updates(customer_id, run_id, revision)
        if not updates:
            return "stale"
        for update in updates:
            self.store.apply_update(update)
        self.store.clear_pending(customer_id, run_id, revision)
        return "updated"

    def _decide_and_store(
        self,
        customer_id: str,
        run_id: str,
        decide: Callable[[StoredEnrollment], Decision | None],
        first: StoredEnrollment | None = None,
        notes: Iterable[tuple[str, str | None, str, int]] = (),
        before: Callable[[Any], None] | None = None,
    ) -> bool:
        """Decide and store; re-read and decide again when a compare-and-set loses (bounded).

        ``notes`` (stats already earned, e.g. by a delivery) are counted exactly once either way,
        and ``before`` (unconditional writes) runs exactly once, with the first write or alone.
        """
        stored = first
        pending = list(notes)
        try:
            for _ in range(CAS_ATTEMPTS):
                if stored is None:
                    stored = self.store.get_enrollment(customer_id, run_id)
                if stored is None:
                    return False
                decision = decide(stored)
                if decision is None or (decision.enrollment is stored.enrollment):
                    return False
                once, before = before, None
                try:
                    written = self.carry_out(stored, decision, notes=pending, before=once)
                    pending = []
                    return written
                except StateConflict:
                    stored = None
            log.info("enrollment kept moving; giving up this nudge", extra={"run_id": run_id})
            return False
        finally:
            if pending or before is not None:
                leftover, records = before, pending

                def flush(pipe: Any) -> None:
                    if leftover is not None:
                        leftover(pipe)
                    self.store.record_many(records, pipe=pipe)

                self.store.run(flush)

    def journey_of(self, enrollment: Enrollment) -> Journey | None:
        return self.journeys.get(enrollment.journey_id, enrollment.journey_version)

    # --- entering ------------------------------------------------------------------------------
    def enter(
        self,
        journey: Journey,
        profile: Profile,
        *,
        run_id: str,
        trigger: dict[str, Any],
        inline: bool | None = None,
        live: dict[str, str] | None = None,
        last: dict[str, datetime] | None = None,
    ) -> bool:
        """Enter one customer (the caller checked trigger and audience); the re-entry rule is applied here.

        ``live`` and ``last`` (the customer's live runs and last entries) save a read when known.
        """
        now = self.clock()
        if live is None or last is None:
            live, last = self.store.entry_state([profile.id])[profile.id]
        mine = [run for run, journey_id in live.items() if journey_id == journey.id]
        if run_id in live:
            return False
        if not engine.may_enter(journey, has_live=bool(mine), last_entered_at=last.get(journey.id), now=now):
            return False
        if journey.re_entry == "restart":
            for old in mine:
                self._end(profile.id, old, "restarted")
        decision = engine.enter(journey, profile, trigger=trigger, run_id=run_id, now=now, settings_timezone=self.tz)
        return self.carry_out(None, decision, inline=inline, profile=profile)

    def _end(self, customer_id: str, run_id: str, reason: str) -> None:
        def decide(stored: StoredEnrollment) -> Decision | None:
            if stored.enrollment.finished:
                return None
            ended = stored.enrollment.model_copy(deep=True)
            ended.revision += 1
            ended.status, ended.exit_reason, ended.updated_at = "exited", reason, self.clock()
            return Decision(ended, (Record(None, reason), Finish("exited", reason)))

        self._decide_and_store(customer_id, run_id, decide)

    def enter_batch(self, journey_id: str, customer_ids: list[str], run_key: str, trigger: dict[str, Any]) -> int:
        """Enter a chunk of a cohort in three round trips: profiles with their entry state read by
        one script call per customer, every enrollment written in one pipeline, stats summed in one;
        sends then run inline.  Returns how many entered."""
        journey = self.journeys.current.get(journey_id)
        if journey is None:
            return 0
        now = self.clock()
        zone = trigger.get("zone")
        known = self.store.customers(customer_ids)
        eligible = [
            (profile, live, last)
            for profile, live, last in known.values()
            if (zone is None or home_zone(profile, self.tz) == zone) and engine.in_audience(journey, profile, now)
        ]
        if not eligible:
            return 0
        planned: list[tuple[Decision, SendAction | None, tuple[int, float] | None, Profile]] = []
        entered = 0
        for profile, live, last in eligible:
            run_id = run_id_for(journey.id, profile.id, run_key)
            if journey.re_entry == "restart" and any(j == journey.id for j in live.values()):
                entered += self.enter(journey, profile, run_id=run_id, trigger=trigger, live=live, last=last)
                continue
            mine = any(j == journey.id for j in live.values())
            if run_id in live or not engine.may_enter(
                journey, has_live=mine, last_entered_at=last.get(journey.id), now=now
            ):
                continue
            decision = engine.enter(
                journey, profile, trigger=trigger, run_id=run_id, now=now, settings_timezone=self.tz
            )
            send, timer = self._plan(None, decision)
            planned.append((decision, send, timer, profile))

        updates = [pending_updates(decision) for decision, _s, _t, _p in planned]
        redrive_at = now.timestamp() + self.send_lease

        def write(pipe: Any) -> None:
            # Timers first (one ZADD per shard for the whole chunk), then the compare-and-sets (one
            # script call per slot group: one for the chunk on a single Redis).
            self.timers.schedule_many(
                [
                    (d.enrollment.customer_id, d.enrollment.run_id, t[0], t[1])
                    for d, _s, t, _p in planned
                    if t is not None and not d.enrollment.finished
                ]
                + [
                    (
                        d.enrollment.customer_id,
                        UPDATE_RUN_PREFIX + d.enrollment.run_id,
                        d.enrollment.revision,
                        redrive_at,
                    )
                    for (d, _s, _t, _p), mine in zip(planned, updates, strict=True)
                    if mine
                ],
                pipe=pipe,
            )
            groups[:] = self.store.create_enrollments(
                pipe,
                [
                    (d.enrollment, send, timer, pending_json(mine) if mine else "")
                    for (d, send, timer, _p), mine in zip(planned, updates, strict=True)
                ],
            )

        groups: list[list[int]] = []
        replies = [0] * len(planned)
        if planned:
            written = self.store.run(write)[-len(groups) :]
            for group, oks in zip(groups, written, strict=True):
                for index, ok in zip(group, oks, strict=True):
                    replies[index] = ok
        done = [item for item, ok in zip(planned, replies, strict=True) if ok]
        if done:
            self._batch_effects([decision for decision, _send, _timer, _profile in done])
        for (decision, _s, _t, _p), todo, ok in zip(planned, updates, replies, strict=True):
            if ok and todo:
                enrollment = decision.enrollment
                self._apply_updates(enrollment.customer_id, enrollment.run_id, enrollment.revision, todo)
        for decision, send, timer, profile in done:
            if send is not None and decision.enrollment.status == "sending":
                self._send(StoredEnrollment(decision.enrollment, send, timer), profile, True)
        return entered + len(done)

    def _batch_effects(self, decisions: list[Decision]) -> None:
        """Stats of many new runs summed into one HINCRBY each."""
        totals: Counter[tuple[str, str | None, str]] = Counter()
        for decision in decisions:
            journey_id = decision.enrollment.journey_id
            recorded = set()
            for action in decision.actions:
                if isinstance(action, Record):
                    totals[(journey_id, action.step_id, action.stat)] += 1
                    recorded.add((action.step_id, action.stat))
                elif isinstance(action, Finish) and (None, action.status) not in recorded:
                    totals[(journey_id, None, action.status)] += 1
        self.store.record_many((journey, step, stat, amount) for (journey, step, stat), amount in totals.items())
        for (journey_id, step_id, stat), amount in totals.items():
            if step_id is None and stat == "entered":
                metrics.entered(journey_id, amount)

    # --- events --------------------------------------------------------------------------------
    def handle_event(
        self, customer_id: str, name: str, properties: dict[str, Any], event_id: str, timestamp: datetime
    ) -> str:
        """Apply an event once: profile first, then goals/exits of live runs, then triggers.

        Returns ``duplicate`` or ``handled``.  A redelivered event whose profile part was applied
        but whose journey part was not finishes the journey part (entries are keyed by event id).
        """
        seen = self.store.apply_event(
            customer_id,
            event_id,
            lambda p: derive_profile(p, name, properties, timestamp),
            read_only=name not in ORDER_EVENTS,
        )
        if seen.state == "done":
            self.store.count("events_duplicate")
            metrics.event("duplicate")
            return "duplicate"
        now = self.clock()
        event = EventArrived(name, dict(properties), event_id, timestamp)
        # Stats and replaced-timer clean-up of everything this event causes are written with the
        # closing pipeline below: they are bookkeeping, not state, and a crash before it only
        # loses counts (and leaves stale timers, which are harmless).
        deferred: list[Callable[[Any], None]] = []
        self._local.deferred = deferred
        try:
            self._journeys_see(customer_id, name, properties, event_id, event, seen, now)
        finally:
            self._local.deferred = None

        def finished(pipe: Any) -> None:
            for build in deferred:
                build(pipe)
            self.store.finish_event(customer_id, event_id, pipe)
            self.store.count("events_handled", 1, pipe)

        self.store.run(finished)
        metrics.event("handled")
        return "handled"

    def _journeys_see(
        self,
        customer_id: str,
        name: str,
        properties: dict[str, Any],
        event_id: str,
        event: EventArrived,
        seen: EventState,
        now: datetime,
    ) -> None:
        profile = seen.profile
        live = seen.live
        if live:
            self._live_runs_see(profile, event, live)
            live = self.store.live_runs(customer_id)
        for journey in self.journeys.current.values():
            if engine.matches_trigger(journey, name, properties, profile, now=now) and engine.in_audience(
                journey, profile, now
            ):
                run_id = run_id_for(journey.id, customer_id, event_id)
                self.enter(journey, profile, run_id=run_id, trigger=dict(properties), live=live, last=seen.last)

    def _live_runs_see(self, profile: Profile, event: EventArrived | None, live: dict[str, str] | None = None) -> None:
        """Goals and exits first (a purchase ends the cart-abandonment run), then event waits."""
        now = self.clock()
        runs = live if live is not None else self.store.live_runs(profile.id)
        for stored in self.store.get_enrollments(profile.id, runs):

            def decide(current: StoredEnrollment) -> Decision | None:
                journey = self.journey_of(current.enrollment)
                if journey is None or current.enrollment.finished:
                    return None
                exit_decision = engine.check_exit(journey, current.enrollment, profile, event, now=now)
                if exit_decision is not None:
                    return exit_decision
                if event is not None and current.enrollment.waiting_for == event.name:
                    return engine.advance(
                        journey, current.enrollment, profile, event, now=now, settings_timezone=self.tz
                    )
                return None

            self._decide_and_store(profile.id, stored.enrollment.run_id, decide, first=stored)

    def profile_changed(self, customer_id: str) -> None:
        """After ``identify``: profile-condition goals and exits may now hold."""
        profile = self.store.get_profile(customer_id)
        if profile is not None:
            self._live_runs_see(profile, None)

    # --- timers --------------------------------------------------------------------------------
    def fire_timer(self, customer_id: str, run_id: str, revision: int) -> str:
        """A timer came due: advance a wait, re-drive a send, or enter a date-triggered journey."""
        if run_id.startswith(DATE_RUN_PREFIX):
            return self._fire_date(customer_id, run_id)
        if run_id.startswith(UPDATE_RUN_PREFIX):
            return self.redrive_updates(customer_id, run_id[len(UPDATE_RUN_PREFIX) :], revision)
        stored = self.store.get_enrollment(customer_id, run_id)
        if stored is None or stored.enrollment.revision != revision or stored.enrollment.finished:
            return "stale"
        if stored.enrollment.status == "sending":
            return self.deliver(customer_id, run_id, revision)
        profile = self.store.get_profile(customer_id) or Profile(id=customer_id)
        now = self.clock()

        def decide(current: StoredEnrollment) -> Decision | None:
            journey = self.journey_of(current.enrollment)
            if journey is None:
                return None
            exit_decision = engine.check_exit(journey, current.enrollment, profile, None, now=now)
            if exit_decision is not None:
                return exit_decision
            return engine.advance(
                journey, current.enrollment, profile, TimerFired(revision), now=now, settings_timezone=self.tz
            )

        return "advanced" if self._decide_and_store(customer_id, run_id, decide) else "stale"

    def _fire_date(self, customer_id: str, run_id: str) -> str:
        _, journey_id, year = run_id.split(":", 2)
        journey = self.journeys.current.get(journey_id)
        profile = self.store.get_profile(customer_id)
        if journey is None or profile is None or not isinstance(journey.trigger, DateTrigger):
            return "stale"
        if not engine.in_audience(journey, profile, self.clock()):
            return "stale"
        trigger = {"date": journey.trigger.date, "year": int(year)}
        entered = self.enter(
            journey, profile, run_id=run_id_for(journey_id, customer_id, f"date:{year}"), trigger=trigger
        )
        return "entered" if entered else "stale"

    # --- delivering ----------------------------------------------------------------------------
    def deliver(
        self,
        customer_id: str,
        run_id: str,
        revision: int,
        *,
        stored: StoredEnrollment | None = None,
        profile: Profile | None = None,
        claimed: str | None = None,
    ) -> str:
        """Decide and carry out the pending send of an enrollment in ``sending`` at ``revision``.

        ``stored``/``profile`` are passed when the caller just wrote them (an inline send), and
        ``claimed`` when that write also claimed the send for this worker.
        """
        if stored is None:
            stored = self.store.get_enrollment(customer_id, run_id)
        if stored is None or stored.send is None:
            return "stale"
        enrollment = stored.enrollment
        if enrollment.revision != revision or enrollment.status != "sending":
            return "stale"
        journey = self.journey_of(enrollment)
        if journey is None:
            return "stale"
        now = self.clock()
        if profile is None or profile.id != customer_id:
            profile = self.store.get_profile(customer_id) or Profile(id=customer_id)
        recipient = profile if stored.send.recipient_id == customer_id else None
        result = self.delivery.attempt(journey, enrollment, stored.send, now=now, profile=recipient, claimed=claimed)
        if result.retry_at is not None:
            due = result.retry_at.timestamp()

            def later(pipe: Any) -> None:
                self.timers.schedule(customer_id, run_id, revision, due, pipe=pipe)
                self.store.set_timer_field(customer_id, run_id, revision, due, pipe=pipe)
                self.store.record_many(result.notes, pipe=pipe)

            self.store.run(later)
            return "retry"
        outcome = result.outcome
        signal = Delivered(stored.send.step_id, outcome, result.channel)  # type: ignore[arg-type]
        seen = profile

        def decide(current: StoredEnrollment) -> Decision | None:
            if current.enrollment.revision != revision:
                return None
            return engine.advance(journey, current.enrollment, seen, signal, now=now, settings_timezone=self.tz)

        self._decide_and_store(customer_id, run_id, decide, first=stored, notes=result.notes, before=result.writes)
        return outcome


DATE_RUN_PREFIX = "@date:"
#: The pseudo run id of the timer that re-drives a revision's profile updates after a crash.
UPDATE_RUN_PREFIX = "@update:"


def pending_updates(decision: Decision) -> list[PendingUpdate]:
    """The decision's profile updates, each keyed by run id and step id (applied at most once)."""
    enrollment = decision.enrollment
    found = [a for a in decision.actions if isinstance(a, UpdateProfile)]
    return [
        PendingUpdate(
            f"{enrollment.run_id}:{action.step_id or f'{enrollment.revision}#{index}'}",
            action.customer_id,
            dict(action.set),
            dict(action.increment),
        )
        for index, action in enumerate(found)
    ]


def date_timer_run(journey_id: str, year: int) -> str:
    """The pseudo run id a date-trigger timer carries (``@date:<journey>:<year>``)."""
    return f"{DATE_RUN_PREFIX}{journey_id}:{year}"


def home_zone(profile: Profile, default: str) -> str:
    """The zone a customer's local-time broadcast fires in (the default when theirs is unknown)."""
    return str(engine.resolve_zone(profile.timezone, default).key)


def run_id_for(journey_id: str, customer_id: str, key: str) -> str:
    """A deterministic run id: the same event (or fire time) entering twice is the same run.

    The customer is part of it because run ids make idempotency keys, which must be unique
    across customers (the outbox and providers drop a repeated key).
    """
    digest = hashlib.sha256(f"{journey_id}\0{customer_id}\0{key}".encode()).hexdigest()[:16]
    return f"{journey_id}-{digest}"


# The wiring lives in its own module; importing it from here keeps ``runtime.build_runtime`` working.
from orchestrator.wiring import CachedRenderer, build_runtime  # noqa: E402

__all__ = ["CachedRenderer", "build_runtime"]
