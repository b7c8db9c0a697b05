"""A journey walked for one profile: the steps the engine takes for it, in order, on a virtual clock."""

from __future__ import annotations

from datetime import timedelta

from orchestrator.engine.walkthrough import MAX_WALK, walk
from tests.engine.builders import NOW, journey, profile

FLOW = journey(
    [
        {"id": "hello", "send": "email", "template": "hello"},
        {"id": "pause", "wait": "2d"},
        {"id": "vip_check", "branch": [{"if": "profile.tier == 'gold'", "goto": "gold"}], "else": "bye"},
        {"id": "gold", "update": {"increment": {"points": 500}}},
        {"id": "gold_mail", "send": "sms", "fallback": ["email"], "template": "gold"},
        {"id": "bye", "exit": True},
    ]
)


def summary(items: list) -> list[tuple[str | None, str]]:
    return [(item.step_id, item.kind) for item in items]


def test_a_gold_customer_walks_the_gold_branch_with_its_update_applied_before_the_next_message() -> None:
    gold = profile(attributes={"tier": "gold", "points": 100})
    items = walk(FLOW, gold, trigger={}, start=NOW)
    assert summary(items) == [
        ("hello", "send"),
        ("pause", "wait"),
        ("vip_check", "branch"),
        ("gold", "update"),
        ("gold_mail", "send"),
        (None, "end"),
    ]
    wait, branch, update, second = items[1], items[2], items[3], items[4]
    assert wait.detail == "waits 2.0 days" and branch.at == NOW + timedelta(days=2)
    assert branch.detail == "goes to gold: profile.tier == 'gold' holds"
    assert update.detail == "points+=500"
    assert second.profile is not None and second.profile.attributes["points"] == 600
    assert second.detail == "sms → email template 'gold'"


def test_another_customer_takes_the_else_and_leaves() -> None:
    items = walk(FLOW, profile(attributes={"tier": "silver"}), trigger={}, start=NOW)
    assert summary(items) == [("hello", "send"), ("pause", "wait"), ("vip_check", "branch"), (None, "end")]
    assert items[2].detail == "goes to bye: no condition holds"


def test_an_event_wait_is_walked_as_its_timeout() -> None:
    flow = journey(
        [
            {"id": "await", "wait": {"event": "app.opened", "timeout": "3d", "on_timeout": "nudge"}},
            {"id": "thanks", "send": "email", "template": "thanks", "next": "done"},
            {"id": "nudge", "send": "push", "template": "nudge"},
            {"id": "done", "exit": True},
        ]
    )
    items = walk(flow, profile(), trigger={}, start=NOW)
    assert summary(items)[:2] == [("await", "wait"), ("nudge", "send")]
    assert "waits up to 3.0 days for app.opened" in items[0].detail and items[1].at == NOW + timedelta(days=3)


def test_a_holdout_customer_is_shown_held() -> None:
    flow = journey([{"id": "hello", "send": "email", "template": "hello"}], holdout=100)
    items = walk(flow, profile(), trigger={}, start=NOW)
    assert summary(items) == [(None, "note"), ("hello", "held"), (None, "end")]
    assert "holdout" in items[0].detail and items[1].detail == "email template 'hello'"


def test_a_journey_that_loops_for_ever_is_cut_short_and_says_so() -> None:
    flow = journey(
        [{"id": "again", "wait": "1d"}, {"id": "ping", "send": "email", "template": "ping", "next": "again"}]
    )
    items = walk(flow, profile(), trigger={}, start=NOW)
    assert items[-1].kind == "note" and "loops" in items[-1].detail
    assert len(items) > MAX_WALK // 2  # it went round many times before being stopped
