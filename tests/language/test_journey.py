"""The typed journey model: every step kind, trigger kind and wait kind builds from YAML-shaped data."""

from __future__ import annotations

from datetime import time, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from orchestrator.language.journey import (
    BranchStep,
    DateTrigger,
    EventTrigger,
    ExitStep,
    Journey,
    QuietWindow,
    ScheduleTrigger,
    SendStep,
    SplitStep,
    UpdateStep,
    WaitAt,
    WaitForEvent,
    WaitStep,
    WaitUntil,
    step_kind,
)


def journey(**overrides: Any) -> Journey:
    data: dict[str, Any] = {
        "id": "sample",
        "name": "Sample",
        "trigger": {"event": "order.placed"},
        "steps": [{"id": "hello", "send": "email", "template": "welcome"}],
    }
    data.update(overrides)
    return Journey.model_validate(data)


ALL_KINDS = [
    {"id": "hello", "send": "push", "template": "welcome", "fallback": ["email", "push"], "on_capped": "defer"},
    {"id": "pause", "wait": "2d"},
    {"id": "morning", "wait": {"until": "09:00", "weekdays": ["mon", "fri"]}},
    {"id": "opened", "wait": {"event": "app.opened", "timeout": "3d", "on_event": "bye", "on_timeout": "check"}},
    {"id": "moment", "wait": {"at": "now + days(3)", "before": "1d"}},
    {"id": "check", "branch": [{"if": "profile.orders_count == 0", "goto": "ab"}], "else": "bye"},
    {"id": "ab", "split": [{"name": "a", "percent": 50, "goto": "award"}, {"name": "b", "percent": 50, "goto": "bye"}]},
    {"id": "award", "update": {"increment": {"points": 100}, "set": {"vip": True}, "to": "event.friend_id"}},
    {"id": "bye", "exit": "converted"},
]


def test_every_step_kind_builds_into_its_class() -> None:
    """One kind key per step picks the class; the engine dispatches on these types."""
    built = journey(steps=ALL_KINDS)
    kinds = [type(step) for step in built.steps]
    assert kinds == [SendStep, WaitStep, WaitStep, WaitStep, WaitStep, BranchStep, SplitStep, UpdateStep, ExitStep]
    assert [step_kind(step) for step in built.steps] == [
        "send", "wait", "wait", "wait", "wait", "branch", "split", "update", "exit",
    ]  # fmt: skip


def test_wait_kinds() -> None:
    """A duration, a local time with weekdays, an event with a timeout, and a computed moment."""
    steps = journey(steps=ALL_KINDS).steps
    waits = [step.wait for step in steps if isinstance(step, WaitStep)]
    assert waits[0] == timedelta(days=2)
    assert isinstance(waits[1], WaitUntil) and waits[1].until == time(9) and waits[1].weekdays == [0, 4]
    assert isinstance(waits[2], WaitForEvent) and waits[2].timeout == timedelta(days=3)
    assert isinstance(waits[3], WaitAt) and waits[3].before == timedelta(days=1)


def test_send_channels_put_the_primary_first_without_duplicates() -> None:
    """Fallbacks follow the primary channel; repeating the primary is ignored."""
    step = journey(steps=ALL_KINDS).steps[0]
    assert isinstance(step, SendStep)
    assert step.channels == ["push", "email"]


def test_next_step_follows_file_order_unless_next_is_given() -> None:
    """``next`` overrides the following step; the last step has none."""
    built = journey(
        steps=[
            {"id": "a", "wait": "1h", "next": "c"},
            {"id": "b", "wait": "1h"},
            {"id": "c", "exit": True},
        ]
    )
    assert built.first_step_id == "a"
    assert built.next_step_id("a") == "c"
    assert built.next_step_id("b") == "c"
    assert built.next_step_id("c") is None
    assert isinstance(built.step("b"), WaitStep)
    with pytest.raises(KeyError):
        built.step("zzz")


def test_trigger_kinds() -> None:
    """Event, schedule and date triggers, each with an optional ``if``."""
    assert isinstance(journey().trigger, EventTrigger)
    scheduled = journey(trigger={"schedule": "0 9 * * mon", "timezone": "local"}).trigger
    assert isinstance(scheduled, ScheduleTrigger) and scheduled.timezone == "local"
    dated = journey(trigger={"date": "birthday", "at": "08:30"}).trigger
    assert isinstance(dated, DateTrigger) and dated.at == time(8, 30)


def test_a_trigger_with_two_kinds_is_refused() -> None:
    with pytest.raises(ValidationError, match="exactly one of 'event', 'schedule' or 'date'"):
        journey(trigger={"event": "order.placed", "date": "birthday"})


def test_journey_options() -> None:
    """re_entry words or a cooldown, goals, holdout, category, priority and quiet-hours override."""
    built = journey(
        re_entry="30d",
        goals=[{"event": "order.placed", "if": "event.total > 0"}, {"if": "profile.orders_count > 1"}],
        exit_when=[{"if": "profile.tier == 'gold'"}],
        holdout=10,
        category="transactional",
        priority=90,
        quiet_hours={"sms": "22:00-07:00", "push": None},
    )
    assert built.re_entry == timedelta(days=30)
    assert journey(re_entry="restart").re_entry == "restart"
    assert built.goals[0].if_ == "event.total > 0"
    assert built.quiet_hours == {"sms": QuietWindow(start=time(22), end=time(7)), "push": None}
    assert journey(quiet_hours=False).quiet_hours is False


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"goals": [{}]}, "a goal needs an 'event', an 'if' condition, or both"),
        ({"steps": [{"id": "u", "update": {"to": "event.x"}}]}, "an update needs 'set' or 'increment'"),
        (
            {
                "steps": [
                    {
                        "id": "s",
                        "split": [{"name": "a", "percent": 70, "goto": "s"}, {"name": "b", "percent": 20, "goto": "s"}],
                    }
                ]
            },
            "add up to 90, not 100",
        ),
        ({"quiet_hours": {"sms": "22:00"}}, "is not a window"),
        ({"steps": []}, "at least 1 item"),
        ({"holdout": -1}, "greater than or equal to 0"),
    ],
)
def test_model_level_rules(overrides: dict[str, Any], message: str) -> None:
    """Rules that span fields are enforced by the model itself, with a message saying the fix."""
    with pytest.raises(ValidationError, match=message):
        journey(**overrides)


def test_journeys_are_frozen() -> None:
    """The engine may share one journey between threads: nobody can change it in place."""
    built = journey()
    with pytest.raises(ValidationError):
        built.name = "Changed"  # type: ignore[misc]
