"""The wait step in its four forms: a duration, a local time of day (``until``), an event with a
timeout, and a moment computed from the customer's data (``at``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from orchestrator.engine import advance, enter
from orchestrator.engine.enrollment import CancelTimer, Finish, Record, ScheduleTimer, SendAction
from orchestrator.language.journey import Journey
from tests.engine.builders import EVENT_WAIT, NOW, WELCOME, deliver, event, fire, journey, of_type, only, profile, start

# ----------------------------------------------------------------------------------------------
# A duration.


def test_wait_schedules_a_timer_for_the_new_revision() -> None:
    """The timer carries the revision it was set at so the runtime can tell stale from fresh."""
    d = deliver(WELCOME, start(WELCOME))
    timer = only(d, ScheduleTimer)
    assert timer.revision == d.enrollment.revision
    assert d.enrollment.wait_until == timer.due


# ----------------------------------------------------------------------------------------------
# An event, or its timeout.


def test_event_wait_sets_waiting_for_and_a_timeout_timer() -> None:
    """Waiting for an event records its name and schedules the timeout."""
    d = start(EVENT_WAIT)
    assert d.enrollment.status == "waiting" and d.enrollment.waiting_for == "app.opened"
    assert only(d, ScheduleTimer).due == NOW + timedelta(days=3)


def test_matching_event_cancels_the_timer_and_goes_to_on_event() -> None:
    """The awaited event (passing its ``if``) ends the wait early and takes the event path."""
    d = start(EVENT_WAIT)
    out = advance(EVENT_WAIT, d.enrollment, profile(), event("app.opened", platform="ios"), now=NOW)
    assert out.actions[0] == CancelTimer()
    assert Record("await_open", "event") in out.actions
    assert only(out, SendAction).step_id == "thanks"
    assert out.enrollment.waiting_for is None and out.enrollment.wait_until is None


def test_event_wait_timeout_goes_to_on_timeout() -> None:
    """No event before the timeout: the timeout path."""
    out = fire(EVENT_WAIT, start(EVENT_WAIT))
    assert Record("await_open", "timeout") in out.actions
    assert only(out, SendAction).step_id == "nudge"


def test_event_wait_defaults_to_the_next_step_both_ways() -> None:
    """Without ``on_event``/``on_timeout`` both outcomes continue at the next step."""
    flow = journey(
        [
            {"id": "await_open", "wait": {"event": "app.opened", "timeout": "1h"}},
            {"id": "next_one", "send": "email", "template": "x"},
        ]
    )
    d = start(flow)
    assert only(fire(flow, d), SendAction).step_id == "next_one"
    assert only(advance(flow, d.enrollment, profile(), event("app.opened"), now=NOW), SendAction).step_id == "next_one"


def test_event_wait_condition_error_exits_and_cancels() -> None:
    """A filter that cannot be evaluated on the arriving event ends the run cleanly."""
    d = start(EVENT_WAIT)
    out = advance(EVENT_WAIT, d.enrollment, profile(), event("app.opened"), now=NOW)
    assert CancelTimer() in out.actions
    assert Record("await_open", "condition_error") in out.actions
    assert only(out, Finish) == Finish("exited", "condition_error")


# ----------------------------------------------------------------------------------------------
# A local time of day, in the customer's zone.


def test_wait_until_uses_the_profile_zone() -> None:
    """``until: 09:00`` is the customer's 09:00, the next one strictly after now."""
    flow = journey([{"id": "morning", "wait": {"until": "09:00"}}, {"id": "hi", "send": "email", "template": "x"}])
    d = start(flow, profile(timezone="Asia/Kolkata"))
    # NOW is 15:30 in Kolkata: tomorrow 09:00 IST = 03:30 UTC.
    assert only(d, ScheduleTimer).due == datetime(2026, 3, 3, 3, 30, tzinfo=UTC)


def test_wait_until_falls_back_to_the_settings_zone_then_utc() -> None:
    """A missing or invalid profile zone uses the settings zone; an invalid one of those, UTC."""
    flow = journey([{"id": "morning", "wait": {"until": "09:00"}}])
    for zone in (None, "Mars/Olympus", "not a zone"):
        d = enter(flow, profile(timezone=zone), trigger={}, run_id="r", now=NOW, settings_timezone="America/New_York")
        assert only(d, ScheduleTimer).due == datetime(2026, 3, 2, 14, 0, tzinfo=UTC)  # 09:00 EST, later today
    d = enter(flow, profile(timezone="bogus"), trigger={}, run_id="r", now=NOW, settings_timezone="bogus/too")
    assert only(d, ScheduleTimer).due == datetime(2026, 3, 3, 9, 0, tzinfo=UTC)


def test_wait_until_on_weekdays() -> None:
    """Only the listed weekdays count."""
    flow = journey([{"id": "weekly", "wait": {"until": "09:00", "weekdays": ["sat", "sun"]}}])
    d = start(flow, profile(timezone="Europe/Amsterdam"))
    assert only(d, ScheduleTimer).due == datetime(2026, 3, 7, 8, 0, tzinfo=UTC)  # Saturday 09:00 CET


def test_wait_until_in_a_journey_across_dst() -> None:
    """The same rule applies when the wait is a step (New York profile, spring forward)."""
    flow = journey([{"id": "early", "wait": {"until": "02:30"}}])
    d = enter(
        flow, profile(timezone="America/New_York"), trigger={}, run_id="r", now=datetime(2026, 3, 7, 12, tzinfo=UTC)
    )
    assert only(d, ScheduleTimer).due == datetime(2026, 3, 8, 7, 0, tzinfo=UTC)


# ----------------------------------------------------------------------------------------------
# A moment computed from the customer's data (replenishment).


def moment_flow(at: str, before: str | None = None) -> Journey:
    wait: dict[str, Any] = {"at": at}
    if before is not None:
        wait["before"] = before
    return journey([{"id": "until_due", "wait": wait}, {"id": "remind", "send": "email", "template": "reorder"}])


def test_wait_at_a_product_run_out_date_minus_before() -> None:
    """``at`` reads the profile's replenishment date; ``before`` moves the timer earlier."""
    runs_out = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)
    who = profile(products={"sku1": {"sku": "sku1", "last_bought_at": NOW, "replenish_at": runs_out}})
    flow = moment_flow("profile.products['sku1'].replenish_at", "3d")
    d = start(flow, who)
    assert d.enrollment.status == "waiting"
    assert only(d, ScheduleTimer).due == runs_out - timedelta(days=3)
    assert only(fire(flow, d, who), SendAction).step_id == "remind"


def test_wait_at_expression_with_duration_globals() -> None:
    """``now + days(n)`` from the trigger's items works as a moment."""
    flow = moment_flow("now + days(event.replenish_days)")
    d = start(flow, trigger={"replenish_days": 30})
    assert only(d, ScheduleTimer).due == NOW + timedelta(days=30)


def test_wait_at_naive_text_is_the_customers_wall_time() -> None:
    """An ISO string without offset means that wall time in the profile's zone."""
    d = start(moment_flow("'2026-04-10T09:00'"), profile(timezone="Europe/Amsterdam"))
    assert only(d, ScheduleTimer).due == datetime(2026, 4, 10, 7, 0, tzinfo=UTC)
    d = start(moment_flow("'2026-04-10T09:00+00:00'"), profile(timezone="Europe/Amsterdam"))
    assert only(d, ScheduleTimer).due == datetime(2026, 4, 10, 9, 0, tzinfo=UTC)


def test_wait_at_a_past_moment_continues_at_once() -> None:
    """A moment already gone does not wait at all."""
    d = start(moment_flow("'2026-01-01T00:00+00:00'"))
    assert Record("until_due", "moment_passed") in d.actions
    assert only(d, SendAction).step_id == "remind"
    assert not of_type(d, ScheduleTimer)


def test_wait_at_nothing_ends_the_run() -> None:
    """No moment (the product has no replenishment date) ends the enrollment."""
    d = start(moment_flow("event.runs_out"), trigger={"runs_out": None})
    assert only(d, Finish) == Finish("exited", "no_moment")
    assert not of_type(d, SendAction)


@pytest.mark.parametrize("at", ["'next tuesday'", "42", "event.missing"])
def test_wait_at_garbage_is_a_condition_error(at: str) -> None:
    """Text that is not ISO-8601, a number, or a missing field end the run as ``condition_error``."""
    d = start(moment_flow(at))
    assert only(d, Finish) == Finish("exited", "condition_error")
