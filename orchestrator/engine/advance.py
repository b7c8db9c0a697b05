"""Moving a run on: which signal fits the stored state, and the loop that runs steps until a pause.

A signal that no longer fits (an old timer, a repeated delivery report, an event nobody waits
for) changes nothing: :func:`advance` hands back the very enrollment it was given, which is how
the runtime knows to store nothing and why at-least-once delivery is harmless.
"""

from __future__ import annotations

from datetime import datetime

from orchestrator.engine import conditions
from orchestrator.engine.enrollment import (
    NON_FINAL_OUTCOMES,
    CancelTimer,
    Decision,
    Delivered,
    Enrollment,
    EventArrived,
    Signal,
    Started,
    TimerFired,
)
from orchestrator.engine.steps import DONE, PAUSE, Run, bumped, execute
from orchestrator.errors import TemplateError
from orchestrator.language.journey import ActionStep, Journey, SendStep, StepBase, WaitForEvent, WaitStep
from orchestrator.language.profile import Profile

__all__ = ["MAX_STEPS_PER_ADVANCE", "advance"]

#: One advance runs at most this many steps.  The loader refuses cycles without a wait, but a
#: journey edited around the loader (or a loader bug) must never pin a worker in a loop.
MAX_STEPS_PER_ADVANCE = 1000


def _run_from(run: Run, step_id: str | None) -> Decision:
    """Run steps from ``step_id`` until one pauses or the journey ends."""
    current = step_id
    for _ in range(MAX_STEPS_PER_ADVANCE):
        if current is None:
            run.complete("completed")
            return run.decision()
        try:
            step = run.journey.step(current)
        except KeyError:
            return run.abort(current, "step_missing")
        run.enrollment.step_id = current
        run.enrollment.status = "active"
        run.reached.append(current)
        try:
            outcome = execute(run, step)
        except TemplateError:
            return run.abort(step.id, "condition_error")
        if outcome is PAUSE or outcome is DONE:
            return run.decision()
        assert outcome is None or isinstance(outcome, str)
        current = outcome
    return run.abort(current, "loop_guard")


def _current_step(journey: Journey, enrollment: Enrollment) -> StepBase | None:
    if enrollment.step_id is None:
        return None
    try:
        return journey.step(enrollment.step_id)
    except KeyError:
        return None


def _stale(enrollment: Enrollment) -> Decision:
    return Decision(enrollment, ())


def advance(
    journey: Journey,
    enrollment: Enrollment,
    profile: Profile,
    signal: Signal,
    *,
    now: datetime,
    settings_timezone: str = "UTC",
    wait_from: datetime | None = None,
) -> Decision:
    """Move an enrollment on after ``signal`` until it must pause or ends.

    ``wait_from`` (an earlier moment) is what waits count from instead of ``now``: the trigger
    event's time when a run starts, so an event that arrives late fires its overdue waits at once.

    A signal that does not fit the stored state returns the same enrollment object and no
    actions: the runtime sees ``decision.enrollment is enrollment`` and stores nothing.
    """
    if enrollment.finished:
        return _stale(enrollment)
    step = _current_step(journey, enrollment)
    # The profile is never mutated: an update step replaces the run's copy (see steps._apply_update).
    run = Run(journey, bumped(enrollment, now), profile, now, settings_timezone, None, wait_from=wait_from)

    if isinstance(signal, Started):
        if enrollment.status != "active" or enrollment.step_id is not None:
            return _stale(enrollment)
        return _run_from(run, journey.first_step_id)

    if isinstance(signal, TimerFired):
        if enrollment.status != "waiting" or signal.revision != enrollment.revision:
            return _stale(enrollment)
        if not isinstance(step, WaitStep):
            return run.abort(enrollment.step_id, "step_missing")
        wait = step.wait
        if isinstance(wait, WaitForEvent):
            run.record(step.id, "timeout")
            target = wait.on_timeout if wait.on_timeout is not None else journey.next_step_id(step.id)
        else:
            target = journey.next_step_id(step.id)
        run.stop_waiting()
        return _run_from(run, target)

    if isinstance(signal, EventArrived):
        if enrollment.status != "waiting" or enrollment.waiting_for != signal.name:
            return _stale(enrollment)
        if signal.event_id == enrollment.trigger_event_id:
            return _stale(enrollment)
        if not isinstance(step, WaitStep) or not isinstance(step.wait, WaitForEvent):
            return _stale(enrollment)
        wait = step.wait
        run.event = signal
        try:
            matched = conditions.holds(wait.if_, run.ctx())
        except TemplateError:
            run.actions.append(CancelTimer())
            return run.abort(step.id, "condition_error")
        if not matched:
            return _stale(enrollment)
        run.actions.append(CancelTimer())
        run.record(step.id, "event")
        run.stop_waiting()
        run.enrollment.awaited_event = dict(signal.properties)
        run.event = None  # from here on ``event`` is the trigger's properties with the awaited ones on top
        target = wait.on_event if wait.on_event is not None else journey.next_step_id(step.id)
        return _run_from(run, target)

    if isinstance(signal, Delivered):
        if enrollment.status != "sending" or signal.step_id != enrollment.step_id:
            return _stale(enrollment)
        if not isinstance(step, SendStep | ActionStep):
            # The journey lost this send (edited under the run): end it rather than leave it sending.
            return run.abort(enrollment.step_id, "step_missing")
        outcome = signal.outcome
        # Re-inserted, not updated in place: the last entry is always the last decided send
        # (a loop back to a step must not leave its old position), which Run.complete reads.
        run.enrollment.outcomes.pop(step.id, None)
        run.enrollment.outcomes[step.id] = outcome
        run.record(step.id, outcome, signal.channel)
        if outcome in NON_FINAL_OUTCOMES:
            return run.decision()  # still sending: the runtime re-drives the delivery later
        if not isinstance(step, SendStep):
            return _run_from(run, journey.next_step_id(step.id))  # an action: ``sent`` counts messages
        if outcome == "sent":
            run.enrollment.sent += 1
        if outcome == "capped" and step.on_capped == "exit":
            run.finish("exited", "capped")
            return run.decision()
        return _run_from(run, journey.next_step_id(step.id))

    raise TypeError(f"unknown signal {signal!r}")  # pragma: no cover
