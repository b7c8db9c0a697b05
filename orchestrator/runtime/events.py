"""Events: applied to the profile once, then seen by live runs (goals, exits, waits) and triggers."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from orchestrator import engine, metrics
from orchestrator.engine.derive import ORDER_EVENTS, derive_profile
from orchestrator.engine.enrollment import (
    Decision,
    EventArrived,
)
from orchestrator.engine.measuring import epoch, event_hits
from orchestrator.engine.run_ids import run_id_for
from orchestrator.language.profile import Profile
from orchestrator.runtime.entries import EntryRunner
from orchestrator.runtime.event_record import UNKNOWN, event_entry
from orchestrator.store import EventState, StoredEnrollment, decode_windows, event_log


class EventRunner(EntryRunner):
    """Events and profile changes."""

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
            now=self.clock().timestamp(),
        )
        if seen.state == "done":
            self.store.count("events_duplicate")
            metrics.event("duplicate")
            return "duplicate"
        if self.referrals is not None:
            self.referrals.see(customer_id, name, properties, seen.profile, timestamp)
        now = self.clock()
        event = EventArrived(name, dict(properties), event_id, timestamp)
        # Stats and replaced-timer clean-up of everything this event causes are written with the
        # closing pipeline below: they are bookkeeping, not state, and a crash before it only
        # loses counts (and leaves stale timers, which are harmless).
        deferred: list[Callable[[Any], None]] = []
        counted = self._counted(customer_id, seen, event, now)
        self._local.deferred = deferred
        try:
            self._journeys_see(customer_id, name, properties, event_id, event, seen, now)
        finally:
            self._local.deferred = None

        count_unknown = self.unknown_counter([name])
        logged = self.event_entry(name, event_id, timestamp, properties, now)

        def finished(pipe: Any) -> None:
            for build in deferred:
                build(pipe)
            if counted is not None:
                counted(pipe)
            self.store.finish_event(customer_id, event_id, pipe)
            event_log.append(pipe, customer_id, [logged])
            self.store.count("events_handled", 1, pipe)
            count_unknown(pipe)

        self.store.run(finished)
        metrics.event("handled")
        return "handled"

    def event_entry(
        self, name: str, event_id: str, timestamp: datetime, properties: dict[str, Any], now: datetime
    ) -> str:
        """The customer's event log entry of a handled event (marked when no journey listens to it),
        written with the event's ``done`` mark: once per event, on the pipeline that closes it."""
        mark = "" if name in self.journeys.known_events else UNKNOWN
        return event_entry(name, event_id, timestamp, properties, now, mark)

    def unknown_counter(self, names: Iterable[str]) -> Callable[[Any], None]:
        """What to add to the closing pipeline for the handled events ``names``: a count per name no
        current journey listens to (exact: written with the event's done mark, so a redelivered
        event is not counted twice).  Reads Redis only when there is an unknown name."""
        unknown = Counter(name for name in names if name not in self.journeys.known_events)
        if not unknown:
            return lambda pipe: None
        fields = self.store.unknown_names(unknown)
        counts: Counter[str] = Counter()
        for name, amount in unknown.items():
            counts[fields[name]] += amount
        metrics.event("unknown", unknown.total())
        return lambda pipe: self.store.count_unknown(dict(counts), pipe)

    def _counted(
        self, customer_id: str, seen: EventState, event: EventArrived, now: datetime
    ) -> Callable[[Any], None] | None:
        """What the event does to the customer's open measurement windows (conversions, KPIs), to
        queue before the event's ``done`` mark; None when it does nothing.  The script counts an
        event once, so a redelivery that redoes the journeys part counts nothing again."""
        if not seen.windows:
            return None
        windows = decode_windows(seen.windows)
        hits = event_hits(windows, self.journeys.get, event, seen.profile, self.settings.measure, now)
        if not hits:
            return None
        at = epoch(now)
        return lambda pipe: self.store.measure_event(pipe, customer_id, event.event_id, at, hits, windows)

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
        """The event's journey part, in a fixed order: the live runs first (each ends on a goal as
        converted, else on ``exit_when``, else on a restart: :func:`orchestrator.engine.check_exit`),
        then the entries, against the live runs read again.  So an event that is both a run's goal
        and its journey's ``restart`` trigger converts the run, then enters the customer anew; an
        entry's own restart ending (:meth:`enter`) only meets runs the event did not end."""
        profile = seen.profile
        live = seen.live
        if live:
            self._live_runs_see(profile, event, live)
            live = self.store.live_runs(customer_id)
        for journey in self.journeys.current.values():
            if engine.matches_trigger(journey, name, properties, profile, now=now) and engine.in_audience(
                journey, profile, now
            ):
                if self.too_old(journey, event.timestamp, now):
                    continue
                run_id = run_id_for(journey.id, customer_id, event_id)
                self.enter(
                    journey,
                    profile,
                    run_id=run_id,
                    trigger=dict(properties),
                    live=live,
                    last=seen.last,
                    event_id=event_id,
                    event_time=event.timestamp,
                )

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
