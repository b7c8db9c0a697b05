"""The order in which a worker fires a batch of due timers: journey priority decides who gets a slot.

The gate decides one send at a time, so when several of one customer's sends come due at the same
moment (quiet hours deferring several journeys' messages to 08:00, waits that end together, capped
sends retried when the same slot frees) the first one to reach the gate takes the free slot.
Firing timers in arrival order would hand it to whichever timer the claim returned first.  So a
worker first reads the batch's enrollments (one pipelined round trip; firing reuses them), then fires each customer's
timers in order of (due time, journey priority high first, journey id, step id): the highest
priority journey reaches the gate first, every time, whatever order the timers were written in.

This holds because the scheduler keeps one customer's timers of a claim in one batch (see
:func:`orchestrator.workers.scheduler.customer_chunks`) and a batch is fired by one thread, one timer
after the other (sends run inline, in the thread that fired the timer).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from orchestrator.engine.run_ids import DATE_RUN_PREFIX, UPDATE_RUN_PREFIX
from orchestrator.language.profile import Profile
from orchestrator.runtime.runtime import Runtime
from orchestrator.store import StoredEnrollment


@dataclass(frozen=True, slots=True)
class DueTimer:
    """A fired timer with what orders it; ``due`` is ``inf`` when unknown (pseudo runs, gone runs)."""

    customer_id: str
    run_id: str
    revision: int
    due: float
    priority: int
    journey_id: str
    step_id: str
    #: The run as read to order the batch (None for pseudo runs and gone runs): firing reuses it.
    stored: StoredEnrollment | None = field(default=None, compare=False, repr=False)
    #: The customer's profile, read with the run, and the store's profile-write count then
    #: (``Store.profile_writes``): firing reuses it while nothing wrote a profile since.
    profile: Profile | None = field(default=None, compare=False, repr=False)
    profile_mark: int = field(default=-1, compare=False, repr=False)

    def key(self) -> tuple[float, int, str, str, str, int]:
        return (self.due, -self.priority, self.journey_id, self.step_id, self.run_id, self.revision)


def due_order(runtime: Runtime, timers: Sequence[tuple[str, str, int]]) -> list[DueTimer]:
    """The timers in firing order: customers in order of first appearance, and each customer's
    timers by (due time, priority desc, journey id, step id).  Costs one pipelined read, which also
    reads the customers' profiles (see :func:`fresh_profile`)."""
    real = [(c, r, v) for c, r, v in timers if not r.startswith((DATE_RUN_PREFIX, UPDATE_RUN_PREFIX))]
    stored: dict[tuple[str, str], StoredEnrollment | None] = {}
    profiles: dict[str, Profile] = {}
    mark = runtime.store.profile_writes
    if real:
        runs = [(customer_id, run_id) for customer_id, run_id, _ in real]
        found, profiles = runtime.store.get_runs_and_profiles(runs)
        stored.update(zip(runs, found, strict=True))
    first_seen: dict[str, int] = {}
    ordered: list[tuple[int, tuple[float, int, str, str, str, int], DueTimer]] = []
    for customer_id, run_id, revision in timers:
        due_timer = _describe(runtime, customer_id, run_id, revision, stored.get((customer_id, run_id)))
        if customer_id in profiles:
            due_timer = replace(due_timer, profile=profiles[customer_id], profile_mark=mark)
        position = first_seen.setdefault(customer_id, len(first_seen))
        ordered.append((position, due_timer.key(), due_timer))
    ordered.sort(key=lambda item: (item[0], item[1]))
    return [item[2] for item in ordered]


def _describe(
    runtime: Runtime, customer_id: str, run_id: str, revision: int, found: StoredEnrollment | None
) -> DueTimer:
    if found is None:
        # A date entry (``@date:<journey>:<year>``) or an update re-drive: no enrollment to read; a
        # date entry still answers to its journey's priority.
        journey_id = run_id.split(":", 2)[1] if run_id.startswith(DATE_RUN_PREFIX) else ""
        journey = runtime.journeys.current.get(journey_id)
        return DueTimer(customer_id, run_id, revision, math.inf, journey.priority if journey else 0, journey_id, "")
    enrollment = found.enrollment
    journey = runtime.journey_of(enrollment)
    due = found.timer[1] if found.timer is not None and found.timer[0] == revision else math.inf
    step = found.send.step_id if found.send is not None else (enrollment.step_id or "")
    priority = journey.priority if journey is not None else 0
    return DueTimer(customer_id, run_id, revision, due, priority, enrollment.journey_id, step, found)


def fresh_profile(runtime: Runtime, timer: DueTimer, fired: set[str]) -> Profile | None:
    """The profile the batch read for ``timer``'s customer, while it is still theirs: for their
    first timer of the batch (``fired`` holds the customers already fired: a decision may have
    changed their profile) and only if no profile was written through this store since the read.
    None means read it again.  A write by another process in between is as possible as between
    any read and decision: the run's compare-and-set, not the profile, guards the state."""
    if timer.profile is None or timer.customer_id in fired or runtime.store.profile_writes != timer.profile_mark:
        return None
    return timer.profile
