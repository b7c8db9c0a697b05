"""A journey walked for one profile on a virtual clock: every step it would take, in order.

``loyaloop render --all-steps`` uses this so a marketer sees a whole journey before launch: which
branch each condition takes for this customer, the waits between, every message.  It drives the
engine's own ``enter`` and ``advance`` (no second interpreter), answering each send as ``sent``,
each wait by firing its timer at its due time (an event wait by its timeout: the customer does
nothing), and applying the journey's own profile updates as it goes.  Gate, consent and caps are
not consulted: this is the journey's design, not a prediction for a day's traffic.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from orchestrator.engine.advance import advance
from orchestrator.engine.enrollment import (
    Decision,
    Delivered,
    Finish,
    Record,
    ScheduleTimer,
    SendAction,
    Signal,
    TimerFired,
    UpdateProfile,
)
from orchestrator.engine.entry import enter
from orchestrator.language.journey import BranchStep, Journey, SendStep, WaitForEvent, WaitStep
from orchestrator.language.profile import Profile

#: A walk longer than this is a loop the customer would go round for ever (``re_entry`` aside).
MAX_WALK = 200

WalkKind = Literal["send", "held", "wait", "branch", "split", "update", "end", "note"]


@dataclass(frozen=True)
class WalkItem:
    """One thing the customer's run does, at the virtual moment it does it."""

    at: datetime
    step_id: str | None
    kind: WalkKind
    detail: str
    send: SendAction | None = None
    #: The profile as that step sees it (after earlier ``update`` steps), for rendering a send.
    profile: Profile | None = None


def walk(
    journey: Journey,
    profile: Profile,
    *,
    trigger: dict[str, Any],
    start: datetime,
    settings_timezone: str = "UTC",
) -> list[WalkItem]:
    """Every step ``profile`` would take through ``journey`` entering at ``start``."""
    items: list[WalkItem] = []
    now = start
    decision = enter(journey, profile, trigger=trigger, run_id="preview", now=now, settings_timezone=settings_timezone)
    for _ in range(MAX_WALK):
        signal: Signal | None = None
        for action in decision.actions:
            signal, profile = _read(journey, action, now, profile, items, signal, decision.enrollment.step_id)
        if decision.enrollment.finished or signal is None:
            break
        if isinstance(signal, TimerFired):
            now = _due_of(decision)
        decision = advance(journey, decision.enrollment, profile, signal, now=now, settings_timezone=settings_timezone)
    else:
        items.append(WalkItem(now, None, "note", f"stopped after {MAX_WALK} steps: the journey loops"))
    return items


def _due_of(decision: Decision) -> datetime:
    return next(a.due for a in decision.actions if isinstance(a, ScheduleTimer))


def _read(
    journey: Journey,
    action: object,
    now: datetime,
    profile: Profile,
    items: list[WalkItem],
    signal: Signal | None,
    current_step: str | None,
) -> tuple[Signal | None, Profile]:
    """Note one action of a decision; the signal that moves the run on, and the profile after it."""
    if isinstance(action, SendAction):
        detail = f"{' → '.join(action.channels)} template {action.template!r}"
        items.append(WalkItem(now, action.step_id, "send", detail, action, profile))
        return Delivered(action.step_id, "sent", action.channels[0]), profile
    if isinstance(action, ScheduleTimer):
        items.append(WalkItem(now, current_step, "wait", _wait_text(journey, current_step, now, action.due)))
        return TimerFired(action.revision), profile
    if isinstance(action, Record) and action.stat == "holdout":
        step = journey.step(action.step_id) if action.step_id else None
        if isinstance(step, SendStep):
            items.append(WalkItem(now, step.id, "held", f"{' → '.join(step.channels)} template {step.template!r}"))
        else:
            items.append(WalkItem(now, None, "note", "in this journey's holdout: its messages are held, never sent"))
    elif isinstance(action, Record) and action.stat.startswith(("branch:", "split:")):
        target = action.stat.partition(":")[2]
        if action.stat.startswith("branch:"):
            items.append(WalkItem(now, action.step_id, "branch", _branch_text(journey, action.step_id, target)))
        else:
            items.append(WalkItem(now, action.step_id, "split", f"arm {target}"))
    elif isinstance(action, UpdateProfile) and action.customer_id == profile.id:
        attributes = dict(profile.attributes)
        attributes.update(action.set)
        for name, amount in action.increment.items():
            current = attributes.get(name, 0)
            attributes[name] = (current if isinstance(current, int | float) else 0) + amount
        changes = [f"{k}={v!r}" for k, v in action.set.items()] + [f"{k}+={v:g}" for k, v in action.increment.items()]
        items.append(WalkItem(now, action.step_id, "update", ", ".join(changes)))
        return signal, profile.model_copy(update={"attributes": attributes})
    elif isinstance(action, Finish):
        items.append(WalkItem(now, None, "end", f"{action.status} ({action.reason})"))
    return signal, profile


def _branch_text(journey: Journey, step_id: str | None, target: str) -> str:
    """Which condition sent the customer where (the first that held), or that none did."""
    step = journey.step(step_id) if step_id else None
    if isinstance(step, BranchStep):
        for case in step.branch:
            if case.goto == target:
                return f"goes to {target}: {case.if_!s} holds"
        return f"goes to {target}: no condition holds"
    return f"goes to {target}"


def _wait_text(journey: Journey, step_id: str | None, now: datetime, due: datetime) -> str:
    hours = (due - now).total_seconds() / 3600
    span = f"{hours / 24:.1f} days" if hours >= 48 else f"{hours:.1f} hours"
    step = journey.step(step_id) if step_id else None
    if isinstance(step, WaitStep) and isinstance(step.wait, WaitForEvent):
        return f"waits up to {span} for {step.wait.event}; the customer does nothing, so it times out"
    return f"waits {span}"
