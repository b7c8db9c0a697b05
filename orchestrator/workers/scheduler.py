"""``loyaloop scheduler``: turns due timers, cron schedules and anniversaries into work for workers,
and re-drives event shards whose drainer died.

Any number of schedulers may run.  Timers are claimed atomically (see :mod:`orchestrator.store.timers`),
so two schedulers never hand out the same one; a cron fire is claimed with HSETNX on its fire
time, so a broadcast starts once; date triggers are planned once per UTC day (SET NX).

Date triggers (birthdays) are a daily planning pass rather than a standing timer per customer:
once a day the pass reads the customers whose date falls near the day (the date index,
:mod:`orchestrator.store.date_index`) and puts a timer for every anniversary falling in the next
36 hours (at the customer's local time).  A standing timer per customer would have to be moved on
every profile edit and journey edit; the daily pass reads the truth each day, costs a week's
worth of birthdays per day, and the timer wheel still fires each one on the minute.  The entry run id is
derived from the journey and year, so a timer planned twice (overlapping passes, two schedulers)
still enters once.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from orchestrator import engine, metrics
from orchestrator.engine.run_ids import date_timer_run
from orchestrator.language.journey import DateTrigger, ScheduleTrigger
from orchestrator.runtime.compose import SchedulerParts
from orchestrator.runtime.event_drain import OUTAGE
from orchestrator.runtime.event_queue import EventQueue
from orchestrator.store import date_index, keys
from orchestrator.store.timers import Timer

log = logging.getLogger(__name__)

CLAIM_BATCH = 1000
FIRE_CHUNK = 200
COHORT_CHUNK = 500
DATE_HORIZON = timedelta(hours=36)
DATE_LOOKBACK = timedelta(hours=12)
SWEEP_EVERY = 5.0
#: Longest pause between two scheduler passes that failed on a Redis outage (see outage_pause).
OUTAGE_PAUSE_MAX = 5.0

FireTimers = Callable[[list[str]], object]
EnterBatch = Callable[[str, list[str], str, dict[str, Any]], object]


@dataclass
class TickReport:
    """What one pass did (the demo and ``status`` print these; tests assert on them)."""

    fired: int = 0
    reaped: int = 0
    broadcasts: int = 0
    planned: int = 0
    max_lateness: float = 0.0
    #: Event shards whose drain was lost (a killed drainer, a lost message) and was sent again.
    redriven: int = 0


class Scheduler:
    """One scheduler.  ``fire_timers`` and ``enter_batch`` hand work to workers (actors' ``send``)."""

    def __init__(
        self,
        parts: SchedulerParts,
        fire_timers: FireTimers,
        enter_batch: EnterBatch,
        *,
        claim_batch: int = CLAIM_BATCH,
        fire_chunk: int = FIRE_CHUNK,
        cohort_chunk: int = COHORT_CHUNK,
        scheduler_id: str | None = None,
        drain_events: Callable[[int], object] | None = None,
    ) -> None:
        self.parts = parts
        self.drain_events = drain_events
        self.events = EventQueue(parts.store.redis)
        self.fire_timers = fire_timers
        self.enter_batch = enter_batch
        self.claim_batch = claim_batch
        self.fire_chunk = fire_chunk
        self.cohort_chunk = cohort_chunk
        self.id = scheduler_id or uuid.uuid4().hex[:12]
        self.redis = parts.store.redis
        self._fires: dict[tuple[str, str, float], datetime] = {}

    def tick(self, now: datetime | None = None) -> TickReport:
        """One pass: re-drive expired leases and stalled event shards, fire due timers, start due
        broadcasts, plan birthdays."""
        now = now or self.parts.clock()
        report = TickReport()
        report.reaped = self.parts.timers.reap(now.timestamp())
        report.redriven = self.redrive_events()
        self.fire_due(now, report)
        report.broadcasts = self.start_broadcasts(now)
        report.planned = self.plan_dates(now)
        return report

    def fire_due(self, now: datetime, report: TickReport | None = None) -> int:
        """Claim every due timer (in batches) and hand them to workers in chunks."""
        report = report or TickReport()
        while self.fire_claim(now, report):
            pass
        return report.fired

    def fire_claim(self, now: datetime, report: TickReport | None = None) -> int:
        """One claim of due timers (up to ``claim_batch`` per shard), handed to workers in chunks;
        how many were claimed.  ``loyaloop simulate`` calls it alone: it knows from the timers'
        next due time whether another claim would find anything, and saves the empty one."""
        report = report or TickReport()
        epoch = now.timestamp()
        claimed = self.parts.timers.claim_due(epoch, self.claim_batch)
        if not claimed:
            return 0
        report.fired += len(claimed)
        report.max_lateness = max(report.max_lateness, epoch - claimed[0].due)
        metrics.timers_fired(len(claimed), epoch - claimed[0].due)
        for chunk in customer_chunks(claimed, self.fire_chunk):
            self.fire_timers([timer.member for timer in chunk])
        return len(claimed)

    def redrive_events(self) -> int:
        """Send a drain message to every event shard that has events and nobody draining it: its
        drainer died (the lease ran out) or its message was lost.  Cheap: one round trip."""
        if self.drain_events is None:
            return 0
        stalled = self.events.stalled()
        for shard in stalled:
            self.drain_events(shard)
        return len(stalled)

    # --- cron broadcasts -----------------------------------------------------------------------
    def start_broadcasts(self, now: datetime) -> int:
        """Start every schedule-triggered journey whose cron time has come, once per fire time.

        ``timezone: local`` fires once per zone customers live in, entering only that zone's
        customers, so everyone gets it at the cron time on their own clock.
        """
        started = 0
        for journey in self.parts.journeys.current.values():
            trigger = journey.trigger
            if not isinstance(trigger, ScheduleTrigger):
                continue
            for zone in self.zones_for(trigger):
                started += self._broadcast(journey.id, trigger, zone, now)
        return started

    def _next_fire(self, trigger: ScheduleTrigger, last: float, zone: str) -> datetime:
        """The next cron fire after ``last``, memoised: cron arithmetic is the costly part of a pass."""
        memo = (trigger.schedule, zone, last)
        fire = self._fires.get(memo)
        if fire is None:
            if len(self._fires) > 10_000:
                self._fires.clear()
            fire = self._fires[memo] = engine.next_schedule_fire(trigger, datetime.fromtimestamp(last, UTC), zone)
        return fire

    def next_broadcast(self, now: datetime) -> datetime | None:
        """The earliest coming cron fire of any schedule-triggered journey (the demo jumps there)."""
        soonest: datetime | None = None
        for journey in self.parts.journeys.current.values():
            trigger = journey.trigger
            if not isinstance(trigger, ScheduleTrigger):
                continue
            for zone in self.zones_for(trigger):
                local = trigger.timezone == "local"
                raw = self.redis.hget(
                    keys.scheduler_state(), f"cron:{journey.id}:{zone}" if local else f"cron:{journey.id}"
                )
                fire = self._next_fire(trigger, float(raw) if raw else now.timestamp(), zone)
                soonest = fire if soonest is None else min(soonest, fire)
        return soonest

    def zones_for(self, trigger: ScheduleTrigger) -> list[str]:
        default = self.parts.settings.default_timezone
        if trigger.timezone == "settings":
            return [default]
        if trigger.timezone == "local":
            return sorted({default, *self.redis.smembers(keys.timezones())})
        return [trigger.timezone]

    def _broadcast(self, journey_id: str, trigger: ScheduleTrigger, zone: str, now: datetime) -> int:
        local = trigger.timezone == "local"
        field = f"cron:{journey_id}:{zone}" if local else f"cron:{journey_id}"
        last_raw = self.redis.hget(keys.scheduler_state(), field)
        if last_raw is None:
            # First sight of this journey (or zone): count from now, no back-fill of past fires.
            self.redis.hsetnx(keys.scheduler_state(), field, repr(now.timestamp()))
            return 0
        fire = self._next_fire(trigger, float(last_raw), zone)
        if fire > now:
            return 0
        # Fires missed while no scheduler ran collapse into the latest one.
        while (following := engine.next_schedule_fire(trigger, fire, zone)) <= now:
            fire = following
        self.redis.hset(keys.scheduler_state(), field, repr(fire.timestamp()))
        epoch = int(fire.timestamp())
        if not self.redis.hsetnx(keys.schedule_fired(journey_id), f"{epoch}|{zone}" if local else str(epoch), self.id):
            return 0  # another scheduler fired it
        trigger_data: dict[str, Any] = {"fired_at": fire.isoformat()}
        if local:
            trigger_data["zone"] = zone
        store = self.parts.store
        # A local-time fire reads its zone's customers from the zone index, not every profile.
        chunks = (
            store.customers_in_zone(zone, self.parts.settings.default_timezone, self.cohort_chunk)
            if local
            else store.scan_customers(self.cohort_chunk)
        )
        for ids in chunks:
            self.enter_batch(journey_id, ids, f"schedule:{epoch}", trigger_data)
        store.record(journey_id, None, "broadcast")
        return 1

    # --- anniversaries -------------------------------------------------------------------------
    def plan_dates(self, now: datetime) -> int:
        """Once per UTC day, put a timer for every anniversary in the next :data:`DATE_HORIZON`.

        The customers come from the date index (:mod:`orchestrator.store.date_index`): those whose
        date falls within a few days of today (time zones, 29 February), about 7/365 of them.  A
        date trigger on an attribute the index does not hold is planned by a scan of every profile.
        Every candidate's profile is read and its fire computed, so a member left over in the
        index plans nothing.
        """
        journeys = [j for j in self.parts.journeys.current.values() if isinstance(j.trigger, DateTrigger)]
        if not journeys:
            return 0
        today = now.astimezone(UTC).date()
        if not self.redis.set(keys.date_plan(today.isoformat()), self.id, nx=True, ex=3 * 86400):
            return 0
        triggers = [(j.id, j.trigger) for j in journeys if isinstance(j.trigger, DateTrigger)]
        on_index = [(jid, t) for jid, t in triggers if date_index.indexed(t.date)]
        scanned = [(jid, t) for jid, t in triggers if not date_index.indexed(t.date)]
        planned = 0
        if on_index:
            store = self.parts.store
            found = sorted(store.customers_on_days({t.date for _j, t in on_index}, date_index.near_days(today)))
            for start in range(0, len(found), self.cohort_chunk):
                planned += self._plan(found[start : start + self.cohort_chunk], on_index, now)
        if scanned:
            for ids in self.parts.store.scan_customers(self.cohort_chunk):
                planned += self._plan(ids, scanned, now)
        return planned

    def _plan(self, ids: list[str], triggers: list[tuple[str, DateTrigger]], now: datetime) -> int:
        """Timers for the anniversaries of ``triggers`` these customers have within the horizon."""
        tz = self.parts.settings.default_timezone
        horizon = now + DATE_HORIZON
        entries: list[tuple[str, str, int, float]] = []
        for profile in self.parts.store.get_profiles(ids).values():
            for journey_id, trigger in triggers:
                fire = engine.next_date_fire(trigger, profile, now - DATE_LOOKBACK, tz)
                if fire is not None and fire <= horizon:
                    entries.append((profile.id, date_timer_run(journey_id, fire.year), 0, fire.timestamp()))
        self.parts.timers.schedule_many(entries)
        return len(entries)

    # --- running -------------------------------------------------------------------------------
    def run_forever(
        self,
        stop: threading.Event,
        *,
        idle: float = 0.2,
        sweep: Callable[[], object] | None = None,
        sweep_every: float = SWEEP_EVERY,
    ) -> None:
        """Tick until ``stop`` is set; sleep ``idle`` seconds only when a pass found nothing due.

        ``sweep`` (see :func:`orchestrator.workers.broker.dead_worker_sweeper`) runs every ``sweep_every``
        seconds so the messages a killed worker had prefetched go back to their queues.
        """
        next_sweep = 0.0
        failures = 0
        while not stop.is_set():
            try:
                if sweep is not None and time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + sweep_every
                    sweep()
                report = self.tick()
            except OUTAGE as exc:  # Redis down or failing over: one line, no traceback, back off
                failures += 1
                pause = outage_pause(failures)
                log.warning("scheduler pass met a Redis outage (%s); retrying in %.2f s", type(exc).__name__, pause)
                stop.wait(pause)
                continue
            except Exception:  # a bug in one pass must not end the scheduler either
                failures += 1
                log.exception("scheduler pass failed; retrying")
                stop.wait(outage_pause(failures))
                continue
            failures = 0
            if report.fired == 0:
                stop.wait(idle)


def outage_pause(failures: int) -> float:
    """Seconds to wait after ``failures`` failed passes in a row: 0.25 s doubling up to 5 s, so a
    Redis Cluster failover (a few seconds) is retried promptly and a long outage is not hammered."""
    return float(min(OUTAGE_PAUSE_MAX, 0.25 * 2 ** min(failures - 1, 8)))


def customer_chunks(items: list[Timer], size: int) -> Iterable[list[Timer]]:
    """Chunks of about ``size`` timers that never split one customer's timers of a claim.

    One worker thread fires a chunk in priority order (:mod:`orchestrator.runtime.fire_order`); a
    customer's sends due at the same moment must therefore travel together, or two workers would
    race for the customer's last free slot.  A chunk grows past ``size`` only for one customer
    with more due timers than that.
    """
    groups: dict[str, list[Timer]] = {}
    for timer in items:
        groups.setdefault(timer.customer_id, []).append(timer)
    chunk: list[Timer] = []
    for group in groups.values():
        if chunk and len(chunk) + len(group) > size:
            yield chunk
            chunk = []
        chunk.extend(group)
    if chunk:
        yield chunk
