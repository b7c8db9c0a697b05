"""Ending a live run early: goals convert it, ``exit_when`` exits it, and a ``restart`` journey's
trigger ends the old run (converted when it is also a goal, before any send or after, held out or
not; restarted when it is not)."""

from __future__ import annotations

from dataclasses import replace

from orchestrator.engine import advance, check_exit, enter, may_enter
from orchestrator.engine.enrollment import CancelTimer, EventArrived, Finish, Record, TimerFired
from tests.engine.builders import NOW, WINBACK, deliver, event, fire, journey, only, profile, start


def test_goal_exit_cancels_the_wait() -> None:
    """Reaching the goal converts the run and drops its timer."""
    flow = journey(
        [{"id": "pause", "wait": "3d"}, {"id": "nudge", "send": "push", "template": "n"}],
        goals=[{"event": "app.opened"}],
    )
    d = start(flow)
    out = check_exit(flow, d.enrollment, profile(), event("app.opened"), now=NOW)
    assert out is not None
    assert CancelTimer() in out.actions and Record(None, "converted") in out.actions
    assert only(out, Finish) == Finish("converted", "goal")
    assert out.enrollment.status == "converted" and out.enrollment.revision == d.enrollment.revision + 1
    assert out.enrollment.wait_until is None
    late = advance(flow, out.enrollment, profile(), TimerFired(d.enrollment.revision), now=NOW)
    assert late.actions == ()


def test_goal_with_condition_and_profile_goal() -> None:
    """An event goal's ``if`` filters it; a condition-only goal fires on a profile change."""
    flow = journey(
        [{"id": "pause", "wait": "3d"}],
        goals=[{"event": "order.placed", "if": "event.total >= 20"}, {"if": "profile.orders_count >= 3"}],
    )
    d = start(flow)
    assert check_exit(flow, d.enrollment, profile(), event("order.placed", total=5), now=NOW) is None
    assert check_exit(flow, d.enrollment, profile(), event("order.placed", total=25), now=NOW) is not None
    assert check_exit(flow, d.enrollment, profile(), None, now=NOW) is None
    converted = check_exit(flow, d.enrollment, profile(orders_count=3), None, now=NOW)
    assert converted is not None and only(converted, Finish).status == "converted"


def test_exit_when_exits_without_conversion() -> None:
    """``exit_when`` ends the run as exited, counted as such."""
    d = deliver(WINBACK, fire(WINBACK, start(WINBACK)))
    out = check_exit(WINBACK, d.enrollment, profile(consent={"email": False}), None, now=NOW)
    assert out is not None
    assert only(out, Finish) == Finish("exited", "exit_when")
    assert Record(None, "exited") in out.actions


def test_goal_condition_that_cannot_be_evaluated_is_not_met() -> None:
    """A goal about a field this customer lacks does not end their run."""
    flow = journey([{"id": "pause", "wait": "3d"}], goals=[{"if": "profile.tier == 'gold'"}])
    assert check_exit(flow, start(flow).enrollment, profile(), None, now=NOW) is None


def test_a_goal_that_also_restarts_converts_before_any_send() -> None:
    """Win-back: a new order during the 60-day countdown is the goal: the run converts (as the
    measurement counts it), then the same order enters the customer anew."""
    d = start(WINBACK)
    assert d.enrollment.sent == 0
    out = check_exit(WINBACK, d.enrollment, profile(), event("order.placed"), now=NOW)
    assert out is not None
    assert only(out, Finish) == Finish("converted", "goal")
    assert CancelTimer() in out.actions and Record(None, "converted") in out.actions
    assert may_enter(WINBACK, has_live=False, last_entered_at=NOW, now=NOW)


def test_restart_after_a_send_converts() -> None:
    """An order after the 'we miss you' e-mail is the goal: converted."""
    d = deliver(WINBACK, fire(WINBACK, start(WINBACK)))
    assert d.enrollment.sent == 1
    out = check_exit(WINBACK, d.enrollment, profile(), event("order.placed"), now=NOW)
    assert out is not None and only(out, Finish) == Finish("converted", "goal")


def test_a_held_out_run_converts_as_a_treated_one() -> None:
    """A holdout run past its send step has sent nothing (the send was held): the goal still
    converts it, so the two arms' runs end alike."""
    began = start(WINBACK)
    d = fire(WINBACK, replace(began, enrollment=began.enrollment.model_copy(update={"holdout": True})))
    assert d.enrollment.sent == 0 and d.enrollment.outcomes == {"miss_you": "holdout"}
    out = check_exit(WINBACK, d.enrollment, profile(), event("order.placed"), now=NOW)
    assert out is not None and only(out, Finish) == Finish("converted", "goal")


def test_restart_journey_without_a_matching_goal_still_restarts() -> None:
    """A restart journey whose goal is another event still ends the live run on its trigger."""
    flow = journey(
        [{"id": "pause", "wait": "30d"}],
        trigger={"event": "cart.updated"},
        re_entry="restart",
        goals=[{"event": "order.placed"}],
    )
    d = start(flow)
    out = check_exit(flow, d.enrollment, profile(), event("cart.updated"), now=NOW)
    assert out is not None and only(out, Finish) == Finish("exited", "restarted")
    assert check_exit(flow, d.enrollment, profile(), event("page.viewed"), now=NOW) is None


def test_the_trigger_event_redelivered_never_ends_its_own_run() -> None:
    """At-least-once: the order that started a win-back countdown, handled again, is not a restart or a goal."""
    d = enter(WINBACK, profile(), trigger={}, run_id="run1", now=NOW, event_id="evt-1")
    assert d.enrollment.trigger_event_id == "evt-1"
    same = EventArrived("order.placed", {}, "evt-1", NOW)
    assert check_exit(WINBACK, d.enrollment, profile(), same, now=NOW) is None
    other = EventArrived("order.placed", {}, "evt-2", NOW)
    assert check_exit(WINBACK, d.enrollment, profile(), other, now=NOW) is not None
    flow = journey([{"id": "await_it", "wait": {"event": "order.placed", "timeout": "1d"}}])
    waiting = enter(flow, profile(), trigger={}, run_id="r", now=NOW, event_id="evt-1")
    assert advance(flow, waiting.enrollment, profile(), same, now=NOW).actions == ()
    assert advance(flow, waiting.enrollment, profile(), other, now=NOW).actions != ()
