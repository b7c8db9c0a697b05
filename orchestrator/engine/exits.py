"""Goals and exit conditions: ending a live run early, as converted or exited."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from orchestrator.engine.context import context, holds_quietly
from orchestrator.engine.enrollment import CancelTimer, Decision, Enrollment, EventArrived
from orchestrator.engine.entry import matches_trigger
from orchestrator.engine.steps import FinishStatus, Run, bumped
from orchestrator.language.journey import Goal, Journey
from orchestrator.language.profile import Profile

__all__ = ["check_exit"]


def _goal_met(goal: Goal, event: EventArrived | None, ctx: dict[str, Any]) -> bool:
    if goal.event is not None and (event is None or event.name != goal.event):
        return False
    return holds_quietly(goal.if_, ctx)


def check_exit(
    journey: Journey,
    enrollment: Enrollment,
    profile: Profile,
    event: EventArrived | None,
    *,
    now: datetime,
) -> Decision | None:
    """End a live enrollment when a goal is reached (converted) or an ``exit_when`` holds (exited).

    Called on every event for the customer and on profile changes (``event=None``).  A goal or
    exit condition that cannot be evaluated for this customer counts as not met: a typo must not
    end every run, and the validator is where such mistakes are caught.

    One event may end a run for several reasons at once; they are taken in a fixed order, the
    same on every code path and whatever the run did before: a **goal** met by the event ends it
    as ``converted``/``goal``, else an ``exit_when`` rule as ``exited``/``exit_when``, else the
    event triggering a ``re_entry: restart`` journey (win-back, replenishment) as
    ``exited``/``restarted``.  The runtime asks this before the event's entries
    (:meth:`orchestrator.runtime.events.EventRunner._journeys_see`), so an order that is both the
    goal and the restart first converts the live run, then enters the customer anew.  Whether the
    run had messaged the customer yet plays no part: a held-out run (which never sends) converts
    exactly as a treated one, and the run's end agrees with the measurement, which counts every
    goal event within the window after entry as a conversion, whatever became of the run
    (docs/measuring.md, "Intention to treat").
    """
    if enrollment.finished:
        return None
    if event is not None and event.event_id == enrollment.trigger_event_id:
        return None  # the event that started this run, seen again (at-least-once redelivery)
    ctx = context(profile, enrollment, event, now, journey)
    restarting = (
        journey.re_entry == "restart"
        and event is not None
        and matches_trigger(journey, event.name, event.properties, profile, now=now)
    )
    outcome: tuple[FinishStatus, str] | None = None
    if any(_goal_met(goal, event, ctx) for goal in journey.goals):
        outcome = ("converted", "goal")
    elif any(_goal_met(rule, event, ctx) for rule in journey.exit_when):
        outcome = ("exited", "exit_when")
    elif restarting:
        outcome = ("exited", "restarted")
    if outcome is None:
        return None
    status, reason = outcome
    run = Run(journey, bumped(enrollment, now), profile, now, "UTC", event)
    run.actions.append(CancelTimer())
    run.record(None, status)
    run.finish(status, reason)
    return run.decision()
