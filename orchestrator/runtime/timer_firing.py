"""Due timers: a timer advances a wait, enters a date-triggered journey, re-drives profile updates,
or re-drives the send of an enrollment in ``sending`` (the send itself is
:meth:`~orchestrator.runtime.transitions.DecisionRunner.deliver`)."""

from __future__ import annotations

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
    """Due timers."""

    def fire_timer(
        self,
        customer_id: str,
        run_id: str,
        revision: int,
        *,
        read: StoredEnrollment | None = None,
        profile: Profile | None = None,
    ) -> str:
        """A timer came due: advance a wait, re-drive a send, or enter a date-triggered journey.

        ``read`` is the run as the caller read it moments ago (a batch of fired timers reads its
        runs together to order them): used when it is at the timer's revision and still going,
        else the run is read again.  Should it have moved on since, the compare-and-set finds out,
        and the run read afresh is decided only if it is still at the timer's revision.  ``profile``
        likewise: the customer's profile as the batch read it (:func:`~orchestrator.runtime.fire_order.fresh_profile`),
        else it is read here.
        """
        if run_id.startswith(DATE_RUN_PREFIX):
            return self._fire_date(customer_id, run_id)
        if run_id.startswith(UPDATE_RUN_PREFIX):
            return self.redrive_updates(customer_id, run_id[len(UPDATE_RUN_PREFIX) :], revision)
        stored = read if read is not None and _current(read, revision) else None
        if stored is None:
            stored = self.store.get_enrollment(customer_id, run_id)
        if stored is None or not _current(stored, revision):
            return "stale"
        if stored.enrollment.status == "sending":
            return self.deliver(customer_id, run_id, revision)
        if profile is None:
            profile = self.store.get_profile(customer_id) or Profile(id=customer_id)
        now = self.clock()

        def decide(current: StoredEnrollment) -> Decision | None:
            journey = self.journey_of(current.enrollment)
            if journey is None or not _current(current, revision):
                return None
            exit_decision = engine.check_exit(journey, current.enrollment, profile, None, now=now)
            if exit_decision is not None:
                return exit_decision
            return engine.advance(
                journey, current.enrollment, profile, TimerFired(revision), now=now, settings_timezone=self.tz
            )

        written = self._decide_and_store(customer_id, run_id, decide, first=stored, profile=profile)
        return "advanced" if written else "stale"

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


def _current(stored: StoredEnrollment, revision: int) -> bool:
    """Whether a timer of ``revision`` still concerns the run: at that revision and not finished."""
    return stored.enrollment.revision == revision and not stored.enrollment.finished
