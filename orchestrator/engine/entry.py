"""Who enters a journey, and how a run starts: triggers, audience, the re-entry rule, :func:`enter`.

The runtime asks these in order (:func:`matches_trigger` for an event, :func:`in_audience`,
:func:`may_enter`) and only then calls :func:`enter`; each is a separate question so the
scheduler's cohorts and the event path can share them.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from orchestrator.engine.advance import advance
from orchestrator.engine.bucketing import is_global_control, is_holdout
from orchestrator.engine.context import context, holds_quietly
from orchestrator.engine.enrollment import Action, Decision, Enrollment, Record, Started
from orchestrator.engine.localtime import aware
from orchestrator.language.journey import DateTrigger, EventTrigger, Journey, ScheduleTrigger
from orchestrator.language.profile import Profile

__all__ = ["enter", "in_audience", "matches_trigger", "may_enter"]


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
    return holds_quietly(trigger.if_, context(profile, properties, properties, now, journey))


def in_audience(journey: Journey, profile: Profile, now: datetime) -> bool:
    """Whether the customer may be entered: the ``audience`` and, for schedule and date triggers,
    the trigger's own ``if`` (those filter profiles; an event trigger's ``if`` is checked by
    :func:`matches_trigger` because it talks about the event)."""
    trigger = journey.trigger
    filtered = isinstance(trigger, ScheduleTrigger | DateTrigger) and trigger.if_ is not None
    if journey.audience is None and not filtered:
        return True  # nothing to check: no context to build (a cohort pays this per customer)
    ctx = context(profile, None, None, now, journey)
    if not holds_quietly(journey.audience, ctx):
        return False
    if isinstance(trigger, ScheduleTrigger | DateTrigger):
        return holds_quietly(trigger.if_, ctx)
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


def enter(
    journey: Journey,
    profile: Profile,
    *,
    trigger: dict[str, Any],
    run_id: str,
    now: datetime,
    settings_timezone: str = "UTC",
    event_id: str | None = None,
    global_holdout: float = 0.0,
    event_time: datetime | None = None,
) -> Decision:
    """Start a new run for ``profile`` and drive it to its first pause (``revision`` becomes 1).

    The caller has already checked :func:`matches_trigger` / :func:`in_audience` / :func:`may_enter`.
    Pass the trigger event's ``event_id`` so a redelivered trigger event is never taken for a
    goal or a restart of the run it just started (see :func:`check_exit`).

    ``global_holdout`` is the settings' programme-wide control group (percent): its members walk a
    marketing journey like a holdout (every send held), counted in the ``control`` arm.

    ``event_time`` is the trigger event's own timestamp: the run's first waits count from it, not
    from when a worker got to the event (docs/journeys.md, "Waits count from the event's time").
    """
    control = journey.category == "marketing" and is_global_control(profile.id, global_holdout)
    holdout = control or is_holdout(journey.id, profile.id, journey.holdout)
    enrollment = Enrollment(
        run_id=run_id,
        journey_id=journey.id,
        journey_version=journey.version,
        customer_id=profile.id,
        status="active",
        entered_at=now,
        updated_at=now,
        holdout=holdout,
        control=control,
        trigger=dict(trigger),
        trigger_event_id=event_id,
    )
    decision = advance(
        journey, enrollment, profile, Started(), now=now, settings_timezone=settings_timezone, wait_from=event_time
    )
    head: list[Action] = [Record(None, "entered")]
    if control:
        head.append(Record(None, "control"))
    elif holdout:
        head.append(Record(None, "holdout"))
    return Decision(decision.enrollment, (*head, *decision.actions), decision.reached)
