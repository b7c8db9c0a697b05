"""Waits count from the trigger event's own time: a late event's overdue wait is due at once."""

from __future__ import annotations

from datetime import timedelta

from orchestrator.engine import enter
from orchestrator.engine.enrollment import ScheduleTimer
from tests.engine.builders import NOW, journey, only, profile

CART = journey([{"id": "an_hour", "wait": "1h"}, {"id": "remind", "send": "email", "template": "cart"}])


def test_a_wait_counts_from_the_event_not_from_when_a_worker_got_to_it() -> None:
    stamped = NOW - timedelta(hours=26)
    decision = enter(CART, profile(), trigger={}, run_id="r1", now=NOW, event_time=stamped)
    assert only(decision, ScheduleTimer).due == stamped + timedelta(hours=1)  # overdue: fires at once
    assert decision.enrollment.entered_at == NOW  # entry itself is when it happened here


def test_an_event_from_the_future_or_without_a_time_waits_from_now() -> None:
    ahead = enter(CART, profile(), trigger={}, run_id="r1", now=NOW, event_time=NOW + timedelta(minutes=5))
    plain = enter(CART, profile(), trigger={}, run_id="r1", now=NOW)
    assert only(ahead, ScheduleTimer).due == only(plain, ScheduleTimer).due == NOW + timedelta(hours=1)
