"""What each kind of step does to a run: send, wait, branch, split, update, exit.

A step handler changes the run's scratch state (:class:`Run`) and says where to go next: a step
id, ``None`` for the end of the journey, :data:`PAUSE` when it handed control to the runtime (a
send or a wait) or :data:`DONE` when it already finished the run.  The loop that calls them, and
the rules about which signal may move a run, live in :mod:`orchestrator.engine.advance`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from orchestrator.engine import conditions
from orchestrator.engine.bucketing import split_arm
from orchestrator.engine.context import context, render_value
from orchestrator.engine.enrollment import (
    ACTION_CHANNEL,
    Action,
    Decision,
    Enrollment,
    EventArrived,
    Finish,
    Record,
    ScheduleTimer,
    SendAction,
    UpdateProfile,
)
from orchestrator.engine.localtime import aware, local_instant, next_local_time, resolve_zone
from orchestrator.errors import TemplateError
from orchestrator.language.journey import (
    ActionStep,
    BranchStep,
    ExitStep,
    Journey,
    SendStep,
    SplitStep,
    StepBase,
    UpdateStep,
    WaitForEvent,
    WaitStep,
    WaitUntil,
)
from orchestrator.language.profile import Profile

__all__ = ["DONE", "PAUSE", "FinishStatus", "Run", "bumped", "execute"]

FinishStatus = Literal["completed", "converted", "exited", "failed"]


@dataclass
class Run:
    """The mutable scratch state of one advance; only its result leaves the engine."""

    journey: Journey
    enrollment: Enrollment
    profile: Profile
    now: datetime
    settings_timezone: str
    event: EventArrived | None
    actions: list[Action] = field(default_factory=list)
    reached: list[str] = field(default_factory=list)
    #: The moment waits count from when it is earlier than ``now``: the trigger event's own time
    #: on entry, so a late-arriving event's waits are not stretched by its delay.
    wait_from: datetime | None = None

    def wait_base(self) -> datetime:
        return self.now if self.wait_from is None else min(aware(self.now), aware(self.wait_from))

    def ctx(self) -> dict[str, Any]:
        return context(self.profile, self.enrollment, self.event, self.now, self.journey)

    def record(self, step_id: str | None, stat: str, channel: str | None = None) -> None:
        self.actions.append(Record(step_id, stat, channel))

    def stop_waiting(self) -> None:
        self.enrollment.wait_until = None
        self.enrollment.waiting_for = None

    def finish(self, status: FinishStatus, reason: str) -> None:
        self.enrollment.status = status
        self.enrollment.exit_reason = reason
        self.stop_waiting()
        self.actions.append(Finish(status, reason))

    def complete(self, reason: str) -> None:
        """End the run as designed (its last step, an ``exit: true`` step): ``completed``, or
        ``failed`` when its last decided send failed, so a run whose message never went out is
        not counted as one that did what it was built for."""
        outcomes = self.enrollment.outcomes
        last = next(reversed(outcomes.values()), None) if outcomes else None
        if last == "failed":
            self.finish("failed", "send_failed")
        else:
            self.finish("completed", reason)

    def abort(self, step_id: str | None, reason: str) -> Decision:
        """End the run as ``exited`` for a fault (a missing step, a broken condition), counted under ``reason``."""
        self.record(step_id, reason)
        self.finish("exited", reason)
        return self.decision()

    def decision(self) -> Decision:
        return Decision(self.enrollment, tuple(self.actions), tuple(self.reached))


class _Pause:
    """A step that hands control to the runtime (a send or a wait)."""


PAUSE = _Pause()
DONE = object()  # the run already finished (exit step, capped exit)


def bumped(enrollment: Enrollment, now: datetime) -> Enrollment:
    """The next revision of ``enrollment``, for one advance or exit to change."""
    # Shallow copy plus fresh containers for the fields the engine mutates: the caller's
    # enrollment must stay untouched (it is the compare-and-set's expected state).
    copy = enrollment.model_copy(update={"outcomes": dict(enrollment.outcomes), "trigger": dict(enrollment.trigger)})
    copy.revision = enrollment.revision + 1
    copy.updated_at = now
    return copy


def _held(run: Run, step: SendStep | ActionStep) -> bool:
    """A holdout (or control) customer's send or action is recorded as held and never carried out."""
    if not run.enrollment.holdout:
        return False
    run.enrollment.outcomes[step.id] = "holdout"
    run.record(step.id, "holdout")
    return True


def _send_key(run: Run, step_id: str) -> str:
    """The send's idempotency key: run and step, plus the revision when a loop came back to it (a
    fresh but still deterministic key, or the idempotency check would swallow the intended repeat)."""
    key = f"{run.enrollment.run_id}:{step_id}"
    return f"{key}:r{run.enrollment.revision}" if step_id in run.enrollment.outcomes else key


def _step_send(run: Run, step: SendStep) -> object:
    enrollment = run.enrollment
    if _held(run, step):
        return run.journey.next_step_id(step.id)
    recipient = enrollment.customer_id
    if step.to is not None:
        target = conditions.evaluate(step.to, run.ctx())
        if target is None or str(target).strip() == "":
            enrollment.outcomes[step.id] = "no_recipient"
            run.record(step.id, "no_recipient")
            return run.journey.next_step_id(step.id)
        recipient = str(target)
    key = _send_key(run, step.id)
    enrollment.status = "sending"
    run.stop_waiting()
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
    return PAUSE


def _step_wait(run: Run, step: WaitStep) -> object:
    enrollment = run.enrollment
    wait = step.wait
    enrollment.waiting_for = None
    zone = resolve_zone(run.profile.timezone, run.settings_timezone)
    base = run.wait_base()
    if isinstance(wait, timedelta):
        due = aware(base) + wait
    elif isinstance(wait, WaitUntil):
        due = next_local_time(base, wait.until, zone, wait.weekdays)
    elif isinstance(wait, WaitForEvent):
        due = aware(base) + wait.timeout
        enrollment.waiting_for = wait.event
    else:
        # A moment computed from the customer's data (``wait: {at: …, before: 3d}``).
        moment = _moment(conditions.evaluate(wait.at, run.ctx()), zone)
        if moment is None:
            run.abort(step.id, "no_moment")
            return DONE
        due = moment - wait.before if wait.before is not None else moment
        if due <= aware(run.now):
            run.record(step.id, "moment_passed")
            return run.journey.next_step_id(step.id)
    enrollment.status = "waiting"
    enrollment.wait_until = due
    run.actions.append(ScheduleTimer(due=due, revision=enrollment.revision))
    return PAUSE


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


def _step_branch(run: Run, step: BranchStep) -> object:
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


def _step_split(run: Run, step: SplitStep) -> object:
    name = split_arm(run.journey.id, run.enrollment.customer_id, step)
    arm = next(arm for arm in step.split if arm.name == name)
    run.record(step.id, f"split:{arm.name}")
    return arm.goto


def _step_action(run: Run, step: ActionStep) -> object:
    """An action goes out like a send (claimed, leased, done-marked by the runtime, the run in
    ``sending`` until it answers), so a crash never calls the shop twice for one run and step.
    A holdout customer's action is held like their messages: a reward is part of the treatment."""
    enrollment = run.enrollment
    if _held(run, step):
        return run.journey.next_step_id(step.id)
    key = _send_key(run, step.id)
    enrollment.status = "sending"
    run.stop_waiting()
    run.actions.append(
        SendAction(
            step_id=step.id,
            channels=(ACTION_CHANNEL,),
            template=step.action,
            on_capped="skip",
            recipient_id=enrollment.customer_id,
            idempotency_key=key,
        )
    )
    return PAUSE


def _step_update(run: Run, step: UpdateStep) -> object:
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


def _step_exit(run: Run, step: ExitStep) -> object:
    # ``exit: true`` is the journey's designed end (a happy path that stops here): completed.
    # ``exit: "<reason>"`` names why the customer left early: exited, under that reason.
    if isinstance(step.exit, str):
        run.finish("exited", step.exit)
    else:
        run.complete("exit_step")
    return DONE


def execute(run: Run, step: StepBase) -> object:
    """Do one step; a :class:`TemplateError` from a broken condition or value is the loop's to handle."""
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
    if isinstance(step, ActionStep):
        return _step_action(run, step)
    if isinstance(step, ExitStep):
        return _step_exit(run, step)
    raise TypeError(f"unknown step type {type(step).__name__!r}")  # pragma: no cover
