"""Entering customers into journeys: one at a time (events, dates) or a cohort chunk at once."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from orchestrator import engine, metrics
from orchestrator.engine.enrollment import (
    Decision,
    Finish,
    Record,
    SendAction,
)
from orchestrator.engine.run_ids import UPDATE_RUN_PREFIX, home_zone, run_id_for
from orchestrator.language.journey import Journey
from orchestrator.language.profile import Profile
from orchestrator.runtime.transitions import DecisionRunner, pending_updates
from orchestrator.store import StoredEnrollment, entry_figures, pending_json


class EntryRunner(DecisionRunner):
    """Entries, with the re-entry rule applied."""

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
        event_id: str | None = None,
        event_time: datetime | None = None,
    ) -> bool:
        """Enter one customer (the caller checked trigger and audience); the re-entry rule is applied here.

        ``live`` and ``last`` (the customer's live runs and last entries) save a read when known;
        ``event_id`` is the trigger event's, so a redelivery of it is never taken for a goal or an
        exit of the run it started; ``event_time`` its timestamp, which the first waits count from.
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
        decision = engine.enter(
            journey,
            profile,
            trigger=trigger,
            run_id=run_id,
            now=now,
            settings_timezone=self.tz,
            event_id=event_id,
            global_holdout=self.settings.global_holdout,
            event_time=event_time,
        )
        return self.carry_out(None, decision, inline=inline, profile=profile)

    def too_old(self, journey: Journey, event_time: datetime, now: datetime) -> bool:
        """Whether a trigger event is past the journey's ``max_event_age`` (counted as ``too_old``)."""
        limit = journey.max_event_age or self.settings.max_event_age
        if now - event_time <= limit:
            return False
        self.store.record(journey.id, None, "too_old")
        return True

    def end_run(self, customer_id: str, run_id: str, reason: str) -> bool:
        """End a live run now as ``exited`` with ``reason`` (support staff removing a customer from a
        journey): the same compare-and-set path as a restart, so its timers and pending sends find
        a newer revision and do nothing.  False when the run is unknown or already finished."""
        return self._end(customer_id, run_id, reason)

    def _end(self, customer_id: str, run_id: str, reason: str) -> bool:
        def decide(stored: StoredEnrollment) -> Decision | None:
            if stored.enrollment.finished:
                return None
            ended = stored.enrollment.model_copy(deep=True)
            ended.revision += 1
            ended.status, ended.exit_reason, ended.updated_at = "exited", reason, self.clock()
            return Decision(ended, (Record(None, reason), Finish("exited", reason)))

        return self._decide_and_store(customer_id, run_id, decide)

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
                journey,
                profile,
                trigger=trigger,
                run_id=run_id,
                now=now,
                settings_timezone=self.tz,
                global_holdout=self.settings.global_holdout,
            )
            send, timer = self._plan(None, decision)
            planned.append((decision, send, timer, profile))

        updates = [pending_updates(decision) for decision, _s, _t, _p in planned]
        redrive_at = now.timestamp() + self.send_lease
        # Each first send is claimed for this worker by the compare-and-set that creates its run.
        lease_end = self.clock().timestamp() + self.delivery.claim_lease
        claims: list[tuple[str, float] | None] = [
            (send.idempotency_key, lease_end)
            if send is not None and d.enrollment.status == "sending" and send.recipient_id == d.enrollment.customer_id
            else None
            for d, send, _t, _p in planned
        ]

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
                claims,
                entry_figures((d for d, _s, _t, _p in planned), lambda d: self._tally(d, created=True)),
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
        self.deliver_sends(
            [
                (StoredEnrollment(d.enrollment, send, timer), profile, claim[0] if claim else None)
                for (d, send, timer, profile), claim, ok in zip(planned, claims, replies, strict=True)
                if ok and send is not None and d.enrollment.status == "sending"
            ]
        )
        return entered + len(done)

    def deliver_sends(self, items: list[tuple[StoredEnrollment, Profile | None, str | None]]) -> None:
        """Deliver fresh sends (run in ``sending``, the customer's profile, the key claimed for this
        worker or None) here and now; :class:`orchestrator.runtime.batch.BatchRunner` does it for
        many at a time."""
        for stored, profile, claimed in items:
            enrollment = stored.enrollment
            run = (enrollment.customer_id, enrollment.run_id, enrollment.revision)
            self.deliver(*run, stored=stored, profile=profile, claimed=claimed)

    def _batch_effects(self, decisions: list[Decision]) -> None:
        """Stats of many new runs summed into one HINCRBY each."""
        totals: Counter[tuple[str, str | None, str]] = Counter()
        self.observe_stored(decisions)
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
