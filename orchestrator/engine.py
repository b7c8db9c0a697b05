"""The journey state machine: (journey, enrollment, profile, signal, now) → (enrollment, actions).

This is the functional core.  It reads no clock, no Redis, no files: the runtime hands it the
time and the state, stores the returned enrollment with a compare-and-set on ``revision`` and
carries the actions out.  That is what lets tests, ``simulate`` and ``demo`` run weeks in seconds
on exactly the code production runs, and what makes at-least-once delivery harmless: a signal
that no longer fits the stored state (an old timer, a repeated delivery report) changes nothing.

Determinism matters as much as purity.  Holdout membership and split arms come from a sha256 of
stable ids, never from a random generator, so a re-run after a crash takes the same path.

The calendar functions the scheduler needs (``next_schedule_fire``, ``next_date_fire``,
``schedule_zone``) live in :mod:`orchestrator.localtime` and are re-exported here.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any, Literal
from zoneinfo import ZoneInfo

from jinja2 import Template
from jinja2 import TemplateError as JinjaTemplateError
from jinja2.exceptions import SecurityError

from orchestrator import conditions
from orchestrator.enrollment import (
    NON_FINAL_OUTCOMES,
    Action,
    CancelTimer,
    Decision,
    Delivered,
    Enrollment,
    EventArrived,
    Finish,
    Record,
    ScheduleTimer,
    SendAction,
    Signal,
    Started,
    TimerFired,
    UpdateProfile,
)
from orchestrator.errors import TemplateError
from orchestrator.journey import (
    BranchStep,
    DateTrigger,
    EventTrigger,
    ExitStep,
    Goal,
    Journey,
    ScheduleTrigger,
    SendStep,
    SplitStep,
    StepBase,
    UpdateStep,
    WaitForEvent,
    WaitStep,
    WaitUntil,
)
from orchestrator.localtime import (
    aware,
    local_instant,
    next_date_fire,
    next_local_time,
    next_schedule_fire,
    resolve_zone,
    schedule_zone,
)
from orchestrator.profile import Profile

__all__ = [
    "MAX_STEPS_PER_ADVANCE",
    "advance",
    "bucket",
    "check_exit",
    "context",
    "enter",
    "in_audience",
    "is_holdout",
    "matches_trigger",
    "may_enter",
    "next_date_fire",
    "next_local_time",
    "next_schedule_fire",
    "resolve_zone",
    "schedule_zone",
    "split_arm",
]

#: One advance runs at most this many steps.  The loader refuses cycles without a wait, but a
#: journey edited around the loader (or a loader bug) must never pin a worker in a loop.
MAX_STEPS_PER_ADVANCE = 1000

FinishStatus = Literal["completed", "converted", "exited"]

_WHOLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\{\{|\}\}).)*)\}\}\s*$", re.DOTALL)


# ----------------------------------------------------------------------------------------------
# Deterministic chance: holdout and splits.


def bucket(*parts: str, size: int = 100) -> int:
    """A stable bucket in ``0..size-1`` for the given ids.

    Parts are joined with a separator so ``("ab", "c")`` and ``("a", "bc")`` do not collide.
    """
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") % size


def is_holdout(journey_id: str, customer_id: str, percent: float) -> bool:
    """Whether the customer belongs to the journey's control group (basis points, so 2.5% works)."""
    if percent <= 0:
        return False
    return bucket(journey_id, customer_id, size=10_000) < round(percent * 100)


def split_arm(journey_id: str, customer_id: str, step: SplitStep) -> str:
    """The name of the arm this customer takes at ``step`` (same answer every time)."""
    point = bucket(journey_id, customer_id, step.id)
    threshold = 0
    for arm in step.split:
        threshold += arm.percent
        if point < threshold:
            return arm.name
    return step.split[-1].name  # unreachable when percentages sum to 100, kept for safety


# ----------------------------------------------------------------------------------------------
# Conditions: one context for branches, goals, trigger filters and templates.


def context(
    profile: Profile,
    enrollment_or_trigger: Enrollment | dict[str, Any] | None,
    event: EventArrived | dict[str, Any] | None,
    now: datetime | None,
    journey: Journey | None,
) -> dict[str, Any]:
    """The names a condition or template sees: ``profile``, ``event``, ``trigger``, ``now``, ``journey``.

    ``event`` is the event at hand, or the trigger's properties when there is none, so a step
    deep in a journey can still say ``event.total`` about the order that started it.  After an
    event wait, the awaited event's properties are laid over the trigger's (the validator lets
    steps use the fields of both).
    """
    awaited: dict[str, Any] | None = None
    if isinstance(enrollment_or_trigger, Enrollment):
        trigger = dict(enrollment_or_trigger.trigger)
        awaited = enrollment_or_trigger.awaited_event
    else:
        trigger = dict(enrollment_or_trigger or {})
    if isinstance(event, EventArrived):
        properties = dict(event.properties)
    elif event is not None:
        properties = dict(event)
    elif awaited is not None:
        properties = {**trigger, **awaited}
    else:
        properties = dict(trigger)
    return {
        "profile": profile.context(),
        "event": properties,
        "trigger": trigger,
        "now": now,
        "journey": {"id": journey.id, "name": journey.name} if journey is not None else {"id": "", "name": ""},
    }


@lru_cache(maxsize=1024)
def _template(source: str) -> Template:
    return conditions.environment().from_string(source)


def render_value(value: Any, ctx: dict[str, Any]) -> Any:
    """An ``update`` value: strings with ``{{`` (or ``{%``) are rendered in the condition sandbox.

    A value that is exactly one ``{{ expression }}`` keeps the expression's type (so
    ``{{ profile.points + 10 }}`` stores a number); anything else renders to a string.
    """
    if not isinstance(value, str) or ("{{" not in value and "{%" not in value):
        return value
    whole = _WHOLE_EXPRESSION.match(value)
    if whole is not None:
        result = conditions.evaluate(whole.group("expr"), ctx)
        if result is None or isinstance(result, str | int | float | bool | list | dict):
            return result
        return result.isoformat() if isinstance(result, datetime | date) else str(result)
    try:
        return _template(value).render(**ctx)
    except SecurityError as exc:
        raise TemplateError(f"value {value!r} tried something unsafe: {exc}") from exc
    except (JinjaTemplateError, TypeError, ValueError, ArithmeticError, LookupError) as exc:
        raise TemplateError(f"value {value!r} failed to render: {exc}") from exc


def _holds_quietly(expression: str | None, ctx: dict[str, Any]) -> bool:
    """For entry and exit checks: a condition that cannot be evaluated for this customer is not met."""
    try:
        return conditions.holds(expression, ctx)
    except TemplateError:
        return False


def matches_trigger(
    journey: Journey,
    event_name: str,
    properties: dict[str, Any],
    profile: Profile,
    *,
    now: datetime | None = None,
) -> bool:
    """Whether this event starts the journey: an event trigger with that name whose ``if`` holds.

    A filter that cannot be evaluated (a missing property) does not match; pass ``now`` when a
    filter may compare against it.
    """
    trigger = journey.trigger
    if not isinstance(trigger, EventTrigger) or trigger.event != event_name:
        return False
    return _holds_quietly(trigger.if_, context(profile, properties, properties, now, journey))


def in_audience(journey: Journey, profile: Profile, now: datetime) -> bool:
    """Whether the customer may be entered: the ``audience`` and, for schedule and date triggers,
    the trigger's own ``if`` (those filter profiles; an event trigger's ``if`` is checked by
    :func:`matches_trigger` because it talks about the event)."""
    ctx = context(profile, None, None, now, journey)
    if not _holds_quietly(journey.audience, ctx):
        return False
    trigger = journey.trigger
    if isinstance(trigger, ScheduleTrigger | DateTrigger):
        return _holds_quietly(trigger.if_, ctx)
    return True


def may_enter(journey: Journey, *, has_live: bool, last_entered_at: datetime | None, now: datetime) -> bool:
    """The re-entry rule.  ``restart`` always says yes: the runtime first ends the live run via
    :func:`check_exit`, so there is still never more than one live enrollment."""
    rule = journey.re_entry
    if rule == "restart":
        return True
    if has_live:
        return False
    if rule == "never":
        return last_entered_at is None
    if rule == "always":
        return True
    assert isinstance(rule, timedelta)
    return last_entered_at is None or aware(now) - aware(last_entered_at) >= rule


# ----------------------------------------------------------------------------------------------
# Running steps.


@dataclass
class _Run:
    """The mutable scratch state of one advance; only its result leaves the engine."""

    journey: Journey
    enrollment: Enrollment
    profile: Profile
    now: datetime
    settings_timezone: str
    event: EventArrived | None
    actions: list[Action] = field(default_factory=list)

    def ctx(self) -> dict[str, Any]:
        return context(self.profile, self.enrollment, self.event, self.now, self.journey)

    def record(self, step_id: str | None, stat: str) -> None:
        self.actions.append(Record(step_id, stat))

    def finish(self, status: FinishStatus, reason: str) -> None:
        self.enrollment.status = status
        self.enrollment.exit_reason = reason
        self.enrollment.wait_until = None
        self.enrollment.waiting_for = None
        self.actions.append(Finish(status, reason))

    def decision(self) -> Decision:
        return Decision(self.enrollment, tuple(self.actions))


class _Pause:
    """A step that hands control to the runtime (a send or a wait)."""


_PAUSE = _Pause()
_DONE = object()  # the run already finished (exit step, capped exit)


def _bumped(enrollment: Enrollment, now: datetime) -> Enrollment:
    # Shallow copy plus fresh containers for the fields the engine mutates: the caller's
    # enrollment must stay untouched (it is the compare-and-set's expected state).
    copy = enrollment.model_copy(update={"outcomes": dict(enrollment.outcomes), "trigger": dict(enrollment.trigger)})
    copy.revision = enrollment.revision + 1
    copy.updated_at = now
    return copy


def _step_send(run: _Run, step: SendStep) -> object:
    enrollment = run.enrollment
    if enrollment.holdout:
        enrollment.outcomes[step.id] = "holdout"
        run.record(step.id, "holdout")
        return run.journey.next_step_id(step.id)
    recipient = enrollment.customer_id
    if step.to is not None:
        target = conditions.evaluate(step.to, run.ctx())
        if target is None or str(target).strip() == "":
            enrollment.outcomes[step.id] = "no_recipient"
            run.record(step.id, "no_recipient")
            return run.journey.next_step_id(step.id)
        recipient = str(target)
    key = f"{enrollment.run_id}:{step.id}"
    if step.id in enrollment.outcomes:
        # A loop came back to this send: a fresh but still deterministic key, or the runtime's
        # idempotency check would swallow the second, intended message.
        key = f"{key}:r{enrollment.revision}"
    enrollment.status = "sending"
    enrollment.wait_until = None
    enrollment.waiting_for = None
    run.actions.append(
        SendAction(
            step_id=step.id,
            channels=tuple(step.channels),
            template=step.template,
            on_capped=step.on_capped,
            recipient_id=recipient,
            idempotency_key=key,
            holdout=enrollment.holdout,
        )
    )
    return _PAUSE


def _step_wait(run: _Run, step: WaitStep) -> object:
    enrollment = run.enrollment
    wait = step.wait
    enrollment.waiting_for = None
    zone = resolve_zone(run.profile.timezone, run.settings_timezone)
    if isinstance(wait, timedelta):
        due = aware(run.now) + wait
    elif isinstance(wait, WaitUntil):
        due = next_local_time(run.now, wait.until, zone, wait.weekdays)
    elif isinstance(wait, WaitForEvent):
        due = aware(run.now) + wait.timeout
        enrollment.waiting_for = wait.event
    else:
        # A moment computed from the customer's data (``wait: {at: …, before: 3d}``).
        moment = _moment(conditions.evaluate(wait.at, run.ctx()), zone)
        if moment is None:
            run.record(step.id, "no_moment")
            run.finish("exited", "no_moment")
            return _DONE
        due = moment - wait.before if wait.before is not None else moment
        if due <= aware(run.now):
            run.record(step.id, "moment_passed")
            return run.journey.next_step_id(step.id)
    enrollment.status = "waiting"
    enrollment.wait_until = due
    run.actions.append(ScheduleTimer(due=due, revision=enrollment.revision))
    return _PAUSE


def _moment(value: Any, zone: ZoneInfo) -> datetime | None:
    """An instant from what a ``wait: {at: …}`` expression gave; naive values are the customer's wall time.

    Nothing (None, empty text) gives None; anything that is not a date, a datetime or ISO-8601
    text is a :class:`TemplateError`, handled like any broken condition.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError as exc:
            raise TemplateError(f"wait moment {value!r} is not an ISO-8601 date or time") from exc
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            return value.astimezone(UTC)
        local = local_instant(value.date(), value.time(), zone)
        return local
    if isinstance(value, date):
        return local_instant(value, time(0, 0), zone)
    raise TemplateError(f"wait moment {value!r} is not a date or time")


def _step_branch(run: _Run, step: BranchStep) -> object:
    ctx = run.ctx()
    target: str | None = None
    for case in step.branch:
        if conditions.holds(case.if_, ctx):
            target = case.goto
            break
    else:
        target = step.else_ if step.else_ is not None else run.journey.next_step_id(step.id)
    run.record(step.id, f"branch:{target or 'end'}")
    return target


def _step_split(run: _Run, step: SplitStep) -> object:
    name = split_arm(run.journey.id, run.enrollment.customer_id, step)
    arm = next(arm for arm in step.split if arm.name == name)
    run.record(step.id, f"split:{arm.name}")
    return arm.goto


def _step_update(run: _Run, step: UpdateStep) -> object:
    # Set values are templates: they see what a message template sees (``step``, too).
    ctx = {**run.ctx(), "step": {"id": step.id}, "unsubscribe_url": ""}
    spec = step.update
    target = run.enrollment.customer_id
    if spec.to is not None:
        value = conditions.evaluate(spec.to, ctx)
        if value is None or str(value).strip() == "":
            run.record(step.id, "no_recipient")
            return run.journey.next_step_id(step.id)
        target = str(value)
    values = {name: render_value(value, ctx) for name, value in spec.set.items()}
    increments = dict(spec.increment)
    run.actions.append(UpdateProfile(customer_id=target, set=values, increment=increments, step_id=step.id))
    if target == run.profile.id:
        run.profile = _apply_update(run.profile, values, increments)
    run.record(step.id, "updated")
    return run.journey.next_step_id(step.id)


def _apply_update(profile: Profile, values: dict[str, Any], increments: dict[str, float]) -> Profile:
    """Mirror an update on the engine's copy so later conditions in the same advance see it."""
    attributes = dict(profile.attributes)
    attributes.update(values)
    for name, amount in increments.items():
        current = attributes.get(name, 0)
        base = current if isinstance(current, int | float) and not isinstance(current, bool) else 0
        total = base + amount
        attributes[name] = int(total) if float(total).is_integer() else total  # as the store does it
    return profile.model_copy(update={"attributes": attributes})


def _step_exit(run: _Run, step: ExitStep) -> object:
    run.finish("exited", step.exit if isinstance(step.exit, str) else "exit_step")
    return _DONE


def _execute(run: _Run, step: StepBase) -> object:
    if isinstance(step, SendStep):
        return _step_send(run, step)
    if isinstance(step, WaitStep):
        return _step_wait(run, step)
    if isinstance(step, BranchStep):
        return _step_branch(run, step)
    if isinstance(step, SplitStep):
        return _step_split(run, step)
    if isinstance(step, UpdateStep):
        return _step_update(run, step)
    if isinstance(step, ExitStep):
        return _step_exit(run, step)
    raise TypeError(f"unknown step type {type(step).__name__!r}")  # pragma: no cover


def _run_from(run: _Run, step_id: str | None) -> Decision:
    """Run steps from ``step_id`` until one pauses or the journey ends."""
    current = step_id
    for _ in range(MAX_STEPS_PER_ADVANCE):
        if current is None:
            run.finish("completed", "completed")
            return run.decision()
        try:
            step = run.journey.step(current)
        except KeyError:
            run.record(current, "step_missing")
            run.finish("exited", "step_missing")
            return run.decision()
        run.enrollment.step_id = current
        run.enrollment.status = "active"
        try:
            outcome = _execute(run, step)
        except TemplateError:
            run.record(step.id, "condition_error")
            run.finish("exited", "condition_error")
            return run.decision()
        if outcome is _PAUSE or outcome is _DONE:
            return run.decision()
        assert outcome is None or isinstance(outcome, str)
        current = outcome
    run.record(current, "loop_guard")
    run.finish("exited", "loop_guard")
    return run.decision()


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
) -> Decision:
    """Move an enrollment on after ``signal`` until it must pause or ends.

    A signal that does not fit the stored state returns the same enrollment object and no
    actions: the runtime sees ``decision.enrollment is enrollment`` and stores nothing.
    """
    if enrollment.finished:
        return _stale(enrollment)
    step = _current_step(journey, enrollment)
    # The profile is never mutated: an update step replaces the run's copy (see _apply_update).
    run = _Run(journey, _bumped(enrollment, now), profile, now, settings_timezone, None)

    if isinstance(signal, Started):
        if enrollment.status != "active" or enrollment.step_id is not None:
            return _stale(enrollment)
        return _run_from(run, journey.first_step_id)

    if isinstance(signal, TimerFired):
        if enrollment.status != "waiting" or signal.revision != enrollment.revision:
            return _stale(enrollment)
        if not isinstance(step, WaitStep):
            run.record(enrollment.step_id, "step_missing")
            run.finish("exited", "step_missing")
            return run.decision()
        wait = step.wait
        if isinstance(wait, WaitForEvent):
            run.record(step.id, "timeout")
            target = wait.on_timeout if wait.on_timeout is not None else journey.next_step_id(step.id)
        else:
            target = journey.next_step_id(step.id)
        run.enrollment.wait_until = None
        run.enrollment.waiting_for = None
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
            run.record(step.id, "condition_error")
            run.finish("exited", "condition_error")
            return run.decision()
        if not matched:
            return _stale(enrollment)
        run.actions.append(CancelTimer())
        run.record(step.id, "event")
        run.enrollment.wait_until = None
        run.enrollment.waiting_for = None
        run.enrollment.awaited_event = dict(signal.properties)
        run.event = None  # from here on ``event`` is the trigger's properties with the awaited ones on top
        target = wait.on_event if wait.on_event is not None else journey.next_step_id(step.id)
        return _run_from(run, target)

    if isinstance(signal, Delivered):
        if enrollment.status != "sending" or signal.step_id != enrollment.step_id:
            return _stale(enrollment)
        if not isinstance(step, SendStep):
            # The journey lost this send (edited under the run): end it rather than leave it sending.
            run.record(enrollment.step_id, "step_missing")
            run.finish("exited", "step_missing")
            return run.decision()
        outcome = signal.outcome
        run.enrollment.outcomes[step.id] = outcome
        run.record(step.id, outcome)
        if outcome in NON_FINAL_OUTCOMES:
            return run.decision()  # still sending: the runtime re-drives the delivery later
        if outcome == "sent":
            run.enrollment.sent += 1
        if outcome == "capped" and step.on_capped == "exit":
            run.finish("exited", "capped")
            return run.decision()
        return _run_from(run, journey.next_step_id(step.id))

    raise TypeError(f"unknown signal {signal!r}")  # pragma: no cover


def enter(
    journey: Journey,
    profile: Profile,
    *,
    trigger: dict[str, Any],
    run_id: str,
    now: datetime,
    settings_timezone: str = "UTC",
    event_id: str | None = None,
) -> Decision:
    """Start a new run for ``profile`` and drive it to its first pause (``revision`` becomes 1).

    The caller has already checked :func:`matches_trigger` / :func:`in_audience` / :func:`may_enter`.
    Pass the trigger event's ``event_id`` so a redelivered trigger event is never taken for a
    goal or a restart of the run it just started (see :func:`check_exit`).
    """
    holdout = is_holdout(journey.id, profile.id, journey.holdout)
    enrollment = Enrollment(
        run_id=run_id,
        journey_id=journey.id,
        journey_version=journey.version,
        customer_id=profile.id,
        status="active",
        entered_at=now,
        updated_at=now,
        holdout=holdout,
        trigger=dict(trigger),
        trigger_event_id=event_id,
    )
    decision = advance(journey, enrollment, profile, Started(), now=now, settings_timezone=settings_timezone)
    head: list[Action] = [Record(None, "entered")]
    if holdout:
        head.append(Record(None, "holdout"))
    return Decision(decision.enrollment, (*head, *decision.actions))


# ----------------------------------------------------------------------------------------------
# Goals and exit conditions.


def _goal_met(goal: Goal, event: EventArrived | None, ctx: dict[str, Any]) -> bool:
    if goal.event is not None and (event is None or event.name != goal.event):
        return False
    return _holds_quietly(goal.if_, ctx)


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

    ``re_entry: restart`` journeys (win-back): an event that also triggers the journey restarts
    the countdown.  A run that already messaged the customer and sees a goal converts; one that
    sent nothing yet was merely overtaken and ends as ``exited``/``restarted``.
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
        outcome = ("exited", "restarted") if restarting and enrollment.sent == 0 else ("converted", "goal")
    elif any(_goal_met(rule, event, ctx) for rule in journey.exit_when):
        outcome = ("exited", "exit_when")
    elif restarting:
        outcome = ("exited", "restarted")
    if outcome is None:
        return None
    status, reason = outcome
    run = _Run(journey, _bumped(enrollment, now), profile, now, "UTC", event)
    run.actions.append(CancelTimer())
    run.record(None, status)
    run.finish(status, reason)
    return run.decision()
