"""Starting a run: which event triggers a journey, who is in its audience, the re-entry rule,
and what a new enrollment looks like after its first steps."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from orchestrator.engine import in_audience, matches_trigger, may_enter
from orchestrator.engine.enrollment import Record, SendAction
from tests.engine.builders import NOW, WELCOME, journey, only, profile, start


def test_enter_builds_an_active_enrollment_and_runs_the_first_step() -> None:
    """A new run pins the journey version, keeps the trigger and stops at the first send."""
    decision = start(WELCOME, trigger={"source": "app"})
    enrollment = decision.enrollment
    assert (enrollment.journey_id, enrollment.journey_version, enrollment.customer_id) == ("flow", "v1", "c1")
    assert enrollment.trigger == {"source": "app"}
    assert enrollment.revision == 1
    assert enrollment.entered_at == NOW and enrollment.updated_at == NOW
    assert enrollment.status == "sending" and enrollment.step_id == "hello"
    assert decision.actions[0] == Record(None, "entered")
    assert only(decision, SendAction) == SendAction(
        step_id="hello",
        channels=("email",),
        template="welcome",
        on_capped="skip",
        recipient_id="c1",
        idempotency_key="run1:hello",
        holdout=False,
    )


def test_matches_trigger_checks_name_and_filter() -> None:
    """The event name must match and the trigger's ``if`` hold; a broken filter does not match."""
    flow = journey([{"id": "s", "exit": True}], trigger={"event": "tier.changed", "if": "event.tier in ['gold']"})
    assert matches_trigger(flow, "tier.changed", {"tier": "gold"}, profile())
    assert not matches_trigger(flow, "tier.changed", {"tier": "silver"}, profile())
    assert not matches_trigger(flow, "order.placed", {"tier": "gold"}, profile())
    assert not matches_trigger(flow, "tier.changed", {}, profile())
    scheduled = journey([{"id": "s", "exit": True}], trigger={"schedule": "0 9 * * 1"})
    assert not matches_trigger(scheduled, "tier.changed", {"tier": "gold"}, profile())


def test_in_audience_checks_audience_and_profile_trigger_filters() -> None:
    """``audience`` always; a schedule or date trigger's ``if`` too (it filters profiles)."""
    flow = journey(
        [{"id": "s", "exit": True}],
        trigger={"schedule": "0 9 * * 1", "if": "profile.tier == 'gold'"},
        audience="profile.consent.email",
    )
    assert in_audience(flow, profile(consent={"email": True}, attributes={"tier": "gold"}), NOW)
    assert not in_audience(flow, profile(consent={"email": True}, attributes={"tier": "silver"}), NOW)
    assert not in_audience(flow, profile(consent={"email": False}, attributes={"tier": "gold"}), NOW)
    assert not in_audience(flow, profile(consent={"email": True}), NOW), "a filter that cannot evaluate is no"
    evented = journey([{"id": "s", "exit": True}], trigger={"event": "x.y", "if": "event.a == 1"})
    assert in_audience(evented, profile(), NOW), "an event filter is matches_trigger's business"


@pytest.mark.parametrize(
    ("rule", "has_live", "last", "expected"),
    [
        ("never", False, None, True),
        ("never", False, NOW - timedelta(days=400), False),
        ("never", True, NOW, False),
        ("always", False, NOW, True),
        ("always", True, NOW, False),
        ("restart", True, NOW, True),
        ("restart", False, None, True),
        ("30d", False, None, True),
        ("30d", False, NOW - timedelta(days=29), False),
        ("30d", False, NOW - timedelta(days=30), True),
        ("30d", True, NOW - timedelta(days=90), False),
    ],
)
def test_re_entry_rules(rule: str, has_live: bool, last: datetime | None, expected: bool) -> None:
    """never / always / restart / cooldown, and never two live runs (except restart, which ends the old)."""
    flow = journey([{"id": "s", "exit": True}], re_entry=rule)
    assert may_enter(flow, has_live=has_live, last_entered_at=last, now=NOW) is expected
