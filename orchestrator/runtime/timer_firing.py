"""Due timers and deliveries: a timer advances a wait, enters a date-triggered journey, re-drives
profile updates, or re-drives the send of an enrollment in ``sending`` — so the send lives here too."""

from __future__ import annotations

from typing import Any

from orchestrator import engine
from orchestrator.engine.enrollment import (
    Decision,
    TimerFired,
)
from orchestrator.engine.run_ids import DATE_RUN_PREFIX, UPDATE_RUN_PREFIX, run_id_for
from orchestrator.language.journey import DateTrigger
from orchestrator.language.profile import Profile
from orchestrator.runtime.entries import EntryRunner
from orchestrator.store import StoredEnrollment


class TimerRunner(EntryRunner):
    """Timers and sends."""

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
        signal = result.delivered(stored.send.step_id)
        seen = profile

        def decide(current: StoredEnrollment) -> Decision | None:
            if current.enrollment.revision != revision:
                return None
            return engine.advance(journey, current.enrollment, seen, signal, now=now, settings_timezone=self.tz)

        self._decide_and_store(customer_id, run_id, decide, first=stored, notes=result.notes, before=result.writes)
        return outcome
