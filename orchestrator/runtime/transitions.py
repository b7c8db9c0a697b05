"""Carrying a Decision out: the compare-and-set first, then its effects (timers, stats, profile
updates, the send).  See :mod:`orchestrator.runtime.runtime` for the ordering rules this keeps."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from orchestrator import engine, metrics
from orchestrator.engine.enrollment import (
    Decision,
    Enrollment,
    Finish,
    Record,
    ScheduleTimer,
    SendAction,
    UpdateProfile,
)
from orchestrator.engine.measuring import Tally, tally
from orchestrator.engine.run_ids import UPDATE_RUN_PREFIX
from orchestrator.errors import StateConflict
from orchestrator.language.journey import Journey
from orchestrator.language.profile import Profile
from orchestrator.runtime.delivery import Delivery
from orchestrator.runtime.drain_slots import DrainSlots
from orchestrator.runtime.journey_book import JourneyBook
from orchestrator.runtime.referrals import Referrals
from orchestrator.settings import Settings
from orchestrator.store import FigureArgs, PendingUpdate, Store, StoredEnrollment, conflict, pending_json
from orchestrator.store.timers import Timers

#: Named after the public face, as before the split (log filters and dashboards match on it).
log = logging.getLogger("orchestrator.runtime")

#: How long a worker may hold an enrollment in ``sending`` before the send is re-driven (the
#: default of ``Settings.send_lease``, ``LOYALOOP_SEND_LEASE``, which a composed runtime uses).
SEND_LEASE: float = Settings.model_fields["send_lease"].default
#: Attempts at a compare-and-set that keeps losing before the nudge is dropped (another worker won).
CAS_ATTEMPTS = 5

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Dispatcher(Protocol):
    """How the runtime hands work to other workers (Dramatiq actors, or direct calls when embedded)."""

    def deliver(self, customer_id: str, run_id: str, revision: int) -> None: ...

    def drain(self, shard: int) -> None:
        """Nudge a drain of an event shard (an event this worker queued for another customer)."""
        ...


@dataclass
class DecisionRunner:
    """The runtime's parts and the carrying out of decisions every other part builds on."""

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
    #: The process's event-drain slots and sender threads, built by compose from the settings and
    #: owned here so ``Runtime.close`` can stop the threads (nothing module-level, nothing leaked).
    slots: DrainSlots = field(kw_only=True, repr=False)
    senders: ThreadPoolExecutor = field(kw_only=True, repr=False)
    #: Sends in turn, never on the sender threads (a simulated clock: see compose.build_runtime).
    serial_sends: bool = field(default=False, kw_only=True, repr=False)
    #: Referral attribution (runtime/referrals.py); None leaves referral codes to the shop.
    referrals: Referrals | None = field(default=None, kw_only=True, repr=False)

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
        self._queue_timers(pipe, decision, timer, updates)
        self._queue_cas(pipe, stored, decision, send, timer, claim, updates)

    def _queue_timers(
        self, pipe: Any, decision: Decision, timer: tuple[int, float] | None, updates: list[PendingUpdate] | None
    ) -> None:
        """The decision's live timer and, with profile updates, their re-drive timer; and the
        figures shard its compare-and-set counts in, listed in the index first."""
        enrollment = decision.enrollment
        self.store.index_figures(pipe, {self.store.figures_member(enrollment)})
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

    def _queue_cas(
        self,
        pipe: Any,
        stored: StoredEnrollment | None,
        decision: Decision,
        send: SendAction | None,
        timer: tuple[int, float] | None,
        claim: tuple[str, float] | None,
        updates: list[PendingUpdate] | None,
    ) -> None:
        """The compare-and-set of the decision's enrollment (its reply: 1 written, 0 lost)."""
        enrollment = decision.enrollment
        expected = -1 if stored is None else stored.enrollment.revision
        self.store.write_enrollment(
            pipe,
            enrollment,
            expected=expected,
            send=send,
            timer=timer,
            claim=claim,
            pending=pending_json(updates) if updates else "",
            figures=FigureArgs.of(self._tally(decision, created=stored is None), enrollment.run_id),
        )

    def _tally(self, decision: Decision, *, created: bool) -> Tally:
        """The measurement counts a decision earns, written by its own compare-and-set."""
        journey = self.journey_of(decision.enrollment)
        return tally(journey, decision, created=created, rules=self.settings.measure)

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
        self.observe_stored([decision])
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
        tally = getattr(self._local, "tally", None)
        if tally is not None and pipe is None:
            # A batch sums its stats and writes one HINCRBY per counter on its closing pipeline.
            for journey_id, step_id, stat, amount in records:
                tally[(journey_id, step_id, stat)] += amount
            records = []

        def build(target: Any) -> None:
            if drop and old is not None:
                self.timers.cancel(enrollment.customer_id, enrollment.run_id, old[0], pipe=target)
            self.store.record_many(records, pipe=target)

        if pipe is not None:
            build(pipe)
        elif records or drop:
            self._bookkeeping(build)

    def observe_stored(self, decisions: Iterable[Decision]) -> None:
        """Tell the delivery's observer (the customer journal, or ``loyaloop simulate``'s recorder)
        of stored decisions."""
        observer = self.delivery.observer
        if observer is not None:
            now = self.clock()
            for decision in decisions:
                observer.stored(decision, now)

    @contextmanager
    def closing_pipeline(self) -> Iterator[list[Callable[[Any], None]]]:
        """Queue the bookkeeping (stats, replaced-timer clean-up) of everything done inside, and
        write it at the end in one round trip with whatever the caller adds to the yielded list
        (also after an exception: what was done stays counted).  A batch of fired timers closes
        with its acknowledgement there (:func:`orchestrator.workers.actors.fire_claimed`) instead
        of a round trip per timer.  Inside another closing pipeline it joins that one."""
        outer: list[Callable[[Any], None]] | None = getattr(self._local, "deferred", None)
        if outer is not None:
            yield outer
            return
        closing: list[Callable[[Any], None]] = []
        self._local.deferred = closing
        try:
            yield closing
        finally:
            self._local.deferred = None

            def close(pipe: Any) -> None:
                for build in closing:
                    build(pipe)

            if closing:
                self.store.run(close)

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
        profile: Profile | None = None,
    ) -> bool:
        """Decide and store; re-read and decide again when a compare-and-set loses (bounded).

        ``notes`` (stats already earned, e.g. by a delivery) are counted exactly once either way,
        and ``before`` (unconditional writes) runs exactly once, with the first write or alone.
        ``profile`` is the profile ``decide`` sees: a send the decision starts inline uses it
        instead of reading it again, unless the decision also updates the profile (the send must
        see the update, so it reads the profile after it).
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
                    seen = profile if profile is not None and not pending_updates(decision) else None
                    written = self.carry_out(stored, decision, notes=pending, before=once, profile=seen)
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
            step_id = stored.send.step_id
            deferred = (enrollment, step_id, now.timestamp()) if result.outcome == "deferred" else None

            def later(pipe: Any) -> None:
                self.timers.schedule(customer_id, run_id, revision, due, pipe=pipe)
                self.store.set_timer_field(customer_id, run_id, revision, due, pipe=pipe, deferred=deferred)
                self.store.record_many(result.notes, pipe=pipe)

            self.store.run(later)
            return "retry"
        outcome = result.outcome
        signal = result.delivered(stored.send.step_id)
        seen = profile

        def decide(current: StoredEnrollment) -> Decision | None:
            if current.enrollment.revision != revision:
                return None
            return engine.advance(journey, current.enrollment, seen, signal, now=now, settings_timezone=self.tz)

        self._decide_and_store(customer_id, run_id, decide, first=stored, notes=result.notes, before=result.writes)
        return outcome


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
