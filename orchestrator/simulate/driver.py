"""The simulation's loop: a virtual clock moved from one thing that can happen to the next.

The clock jumps to the earliest of: the next line of the history, the next due timer (to the
second, as a scheduler polling every fraction of a second would fire it), the next cron fire of a
broadcast journey, the next UTC midnight when a journey has a date trigger (the scheduler plans
anniversaries once a day), and ``until``.  At each stop it feeds the history's lines for that moment,
then asks production's :class:`~orchestrator.workers.scheduler.Scheduler` for what a pass at that
moment would do — a whole pass when a cron fire or a new UTC day is due, else only the due timers
(fired through production's :func:`~orchestrator.workers.actors.fire_claimed`, one claim at a time
until the next due time is later than now), else nothing.  It reads the next due time only after
something that can move the timers (lines fed, a pass, a firing): one round trip per stop saved.

What carries the work is a :class:`Pump`:

- :class:`DirectPump` (the simulator's default) calls the same Runtime a worker's actors call, in
  this thread, on an in-process Redis (fakeredis: the embedded mode's): events go to
  ``Runtime.handle_events`` as a drained batch does, identify lines through the public client,
  timers through the scheduler and ``fire_claimed``, broadcasts to ``Runtime.enter_batch``;
- :class:`WorkerPump` hands everything to an :class:`~orchestrator.workers.embedded.Embedded`
  system: real Dramatiq workers, on a real Redis when it is given one.  The equivalence test
  replays one history through both and finds the same messages and decisions.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

from orchestrator.errors import InputError
from orchestrator.language.journey import DateTrigger, Journey, ScheduleTrigger
from orchestrator.runtime.event_drain import drain
from orchestrator.runtime.event_queue import DRAIN_BATCH, EventQueue, QueuedEvent
from orchestrator.runtime.intake import Loyaloop
from orchestrator.runtime.runtime import Runtime
from orchestrator.simulate.source import Line
from orchestrator.store.timers import parse_member
from orchestrator.workers.actors import fire_claimed
from orchestrator.workers.embedded import Embedded, SimClock
from orchestrator.workers.scheduler import Scheduler

#: progress(virtual now, lines fed so far)
Progress = Callable[[datetime, int], None]


class Pump(Protocol):
    """How the simulation's work reaches a runtime."""

    runtime: Runtime
    scheduler: Scheduler

    def track(self, events: list[QueuedEvent]) -> None: ...
    def identify(self, customer_id: str, attributes: dict[str, Any]) -> None: ...
    def tick(self, now: datetime) -> None: ...
    def fire_due(self, now: datetime) -> None:
        """Fire (at least) one claim of the timers due at ``now``; the driver calls it again while
        the next due time is not later than ``now``."""
        ...


class _DirectNudges:
    """The client's nudges, carried out at once in this thread (no queue between)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def nudge_drain(self, shard: int) -> None:  # the direct pump never queues events
        raise AssertionError(f"the direct pump hands events to the runtime itself (shard {shard})")

    def nudge_profile(self, customer_id: str) -> None:
        self.runtime.profile_changed(customer_id)


class DirectPump:
    """The runtime driven in this thread, as production's actors drive it."""

    def __init__(self, runtime: Runtime, client: Any, clock: SimClock, consent_channels: frozenset[str]) -> None:
        self.runtime = runtime
        self.api = Loyaloop(_DirectNudges(runtime), client, clock=clock, consent_channels=consent_channels)
        self.scheduler = Scheduler(runtime, self._fire, runtime.enter_batch)
        # Events the runtime queues itself (``referral.converted`` when a referred friend first
        # orders) are drained here, at once, as a worker's drain message would in production.
        self.queue = EventQueue(client)
        self.queued: set[int] = set()
        if runtime.referrals is not None:
            runtime.referrals.nudge = self.queued.add

    def _fire(self, members: list[str]) -> None:
        fire_claimed(self.runtime, [parse_member(member) for member in members])

    def track(self, events: list[QueuedEvent]) -> None:
        self.runtime.handle_events(events)
        while self.queued:
            drain(self.runtime, self.queue, self.queued.pop(), self.queued.add)

    def identify(self, customer_id: str, attributes: dict[str, Any]) -> None:
        self.api.identify(customer_id, attributes)

    def tick(self, now: datetime) -> None:
        self.scheduler.tick(now)

    def fire_due(self, now: datetime) -> None:
        self.scheduler.fire_claim(now)


class WorkerPump:
    """Everything through an Embedded system's Dramatiq workers, waiting for them after each step."""

    def __init__(self, system: Embedded) -> None:
        self.system = system
        self.runtime = system.runtime
        self.scheduler = system.scheduler

    def track(self, events: list[QueuedEvent]) -> None:
        for event in events:
            self.system.api.track(
                event.customer_id, event.name, event.properties, event_id=event.event_id, timestamp=event.timestamp
            )
        self.system.settle()

    def identify(self, customer_id: str, attributes: dict[str, Any]) -> None:
        self.system.api.identify(customer_id, attributes)
        self.system.settle()

    def tick(self, now: datetime) -> None:
        self.system.tick(now)

    def fire_due(self, now: datetime) -> None:
        self.system.scheduler.fire_due(now)
        self.system.settle()


@dataclass
class RunStats:
    """What the loop did (the CLI prints it; the benchmark records it)."""

    lines: int = 0
    refused: int = 0
    stops: int = 0
    seconds: float = 0.0


class Driver:
    """Moves the clock and feeds the pump; one use per history."""

    def __init__(
        self,
        pump: Pump,
        clock: SimClock,
        journeys: dict[str, Journey],
        *,
        warn: Callable[[str], None] = lambda text: None,
    ) -> None:
        self.pump = pump
        self.clock = clock
        self.warn = warn
        triggers = [journey.trigger for journey in journeys.values()]
        self.broadcasts = any(isinstance(trigger, ScheduleTrigger) for trigger in triggers)
        self.dates = any(isinstance(trigger, DateTrigger) for trigger in triggers)
        self._planned: date | None = None
        self._fire: datetime | None = None
        self._fire_known = False
        #: Time zones seen in identify lines: a new one may add a local-time broadcast fire.
        self._zones: set[str] = set()

    def run(self, lines: list[Line], *, until: datetime, progress: Progress | None = None) -> RunStats:
        stats = RunStats()
        began = time.perf_counter()
        position, total = 0, len(lines)
        timers = self.pump.runtime.timers
        self.clock.now = lines[0].at if lines else until
        self._tick(self.clock.now)  # a broadcast journey counts its cron fires from here
        due = timers.next_due()
        while True:
            moments = [until]
            if position < total:
                moments.append(lines[position].at)
            if due is not None:
                moments.append(datetime.fromtimestamp(math.ceil(due), UTC))
            if (fire := self._next_broadcast()) is not None:
                moments.append(fire)
            if self.dates:
                moments.append(datetime.combine(self.clock.now.date() + timedelta(days=1), datetime.min.time(), UTC))
            now = max(self.clock.now, min(moments))
            self.clock.now = now
            stats.stops += 1
            start = position
            while position < total and lines[position].at <= now:
                position += 1
            if position > start:  # only lines can have moved the timers since the last look
                self._feed(lines[start:position], stats)
                stats.lines = position
                due = timers.next_due()
            if self._pass_needed(now):
                self._tick(now)
                due = timers.next_due()
            # Firing can make more timers due now (a send retried at once, a zero wait): fire until
            # none is, as the scheduler's claim loop would (the next due time tells when to stop,
            # so no claim comes back empty).
            while due is not None and due <= now.timestamp():
                self.pump.fire_due(now)
                due = timers.next_due()
            if progress is not None:
                progress(now, position)
            if now >= until:
                break
        stats.seconds = time.perf_counter() - began
        return stats

    def _tick(self, now: datetime) -> None:
        self.pump.tick(now)
        self._fire_known = False  # a pass moves the broadcasts' state on

    def _next_broadcast(self) -> datetime | None:
        """The next cron fire, asked of the scheduler again only after a pass or a new time zone
        (only those change its answer); None without broadcast journeys."""
        if not self.broadcasts:
            return None
        if not self._fire_known:
            self._fire = self.pump.scheduler.next_broadcast(self.clock.now)
            self._fire_known = True
        return self._fire

    def _pass_needed(self, now: datetime) -> bool:
        """Whether a whole scheduler pass is due at ``now``: a cron fire, or the first pass of a UTC
        day (the anniversary plan).  Otherwise only due timers can be waiting, and firing them is
        all a pass would do (nothing is leased between stops, so the reaper finds nothing), so the
        loop asks for just that; with nothing due at all it asks for nothing, as production's
        scheduler would find nothing."""
        if (fire := self._next_broadcast()) is not None and fire <= now:
            return True
        day = now.date()
        if self.dates and day != self._planned:
            self._planned = day
            return True
        return False

    def _feed(self, lines: list[Line], stats: RunStats) -> None:
        """One moment's lines in the file's order: events in batches, an identify line in between
        sending what came before it first (as ``loyaloop import`` does)."""
        pending: list[QueuedEvent] = []
        for line in lines:
            if line.kind == "identify":
                if pending:
                    self.pump.track(pending)
                    pending = []
                zone = line.attributes.get("timezone")
                if isinstance(zone, str) and zone not in self._zones:
                    self._zones.add(zone)
                    self._fire_known = False
                try:
                    self.pump.identify(line.customer_id, line.attributes)
                except InputError as exc:
                    stats.refused += 1
                    self.warn(f"line {line.number}: {exc} (identify skipped)")
                continue
            pending.append(QueuedEvent(line.customer_id, line.event, line.properties, line.event_id or "", line.at))
            if len(pending) >= DRAIN_BATCH:
                self.pump.track(pending)
                pending = []
        if pending:
            self.pump.track(pending)
