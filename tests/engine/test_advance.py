"""The pure journey state machine, driven with a fixed clock: every step, every signal, every rule."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator import engine
from orchestrator.engine import (
    advance,
    check_exit,
    context,
    enter,
    in_audience,
    matches_trigger,
    may_enter,
)
from orchestrator.engine.enrollment import (
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
from orchestrator.language.journey import Journey, SplitStep
from orchestrator.language.profile import Profile

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday


def journey(steps: list[dict[str, Any]], **fields: Any) -> Journey:
    data: dict[str, Any] = {"id": "flow", "name": "Flow", "trigger": {"event": "customer.signed_up"}, "steps": steps}
    data.update(fields)
    data.setdefault("version", "v1")
    return Journey.model_validate(data)


def profile(customer_id: str = "c1", **fields: Any) -> Profile:
    return Profile(id=customer_id, **fields)


def of_type(decision: Decision, kind: type) -> list[Any]:
    return [action for action in decision.actions if isinstance(action, kind)]


def only(decision: Decision, kind: type) -> Any:
    found = of_type(decision, kind)
    assert len(found) == 1, decision.actions
    return found[0]


def start(flow: Journey, who: Profile | None = None, *, trigger: dict[str, Any] | None = None) -> Decision:
    return enter(flow, who or profile(), trigger=trigger or {}, run_id="run1", now=NOW)


def event(name: str, **properties: Any) -> EventArrived:
    return EventArrived(name=name, properties=properties, event_id=f"e-{name}", timestamp=NOW)


def fire(flow: Journey, decision: Decision, who: Profile | None = None, *, at: datetime | None = None) -> Decision:
    """Fire the timer the decision scheduled, at its due time (or ``at``)."""
    timer = only(decision, ScheduleTimer)
    return advance(flow, decision.enrollment, who or profile(), TimerFired(timer.revision), now=at or timer.due)


def deliver(flow: Journey, decision: Decision, outcome: Any = "sent", who: Profile | None = None) -> Decision:
    send = only(decision, SendAction)
    return advance(flow, decision.enrollment, who or profile(), Delivered(send.step_id, outcome), now=NOW)


WELCOME = journey(
    [
        {"id": "hello", "send": "email", "template": "welcome"},
        {"id": "pause", "wait": "2d"},
        {"id": "points", "send": "push", "template": "points", "fallback": ["email"]},
        {"id": "pause2", "wait": "3d"},
        {"id": "ordered", "branch": [{"if": "profile.orders_count == 0", "goto": "offer"}]},
        {"id": "done", "exit": "already_ordered"},
        {"id": "offer", "send": "sms", "template": "first_order"},
    ]
)


# ----------------------------------------------------------------------------------------------
# Entering.


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


def test_started_on_an_enrollment_that_already_moved_is_stale() -> None:
    """A redelivered start message does nothing once the run is under way."""
    decision = start(WELCOME)
    again = advance(WELCOME, decision.enrollment, profile(), Started(), now=NOW)
    assert again.enrollment is decision.enrollment and again.actions == ()


# ----------------------------------------------------------------------------------------------
# The welcome flow end to end.


def test_welcome_flow_without_an_order_reaches_the_offer_and_completes() -> None:
    """send → 2d → send (with fallback) → 3d → branch → SMS offer → completed."""
    d = start(WELCOME)
    d = deliver(WELCOME, d)
    assert d.enrollment.status == "waiting" and d.enrollment.sent == 1
    assert only(d, ScheduleTimer).due == NOW + timedelta(days=2)
    d = fire(WELCOME, d)
    assert only(d, SendAction).channels == ("push", "email")
    d = deliver(WELCOME, d)
    assert only(d, ScheduleTimer).due == NOW + timedelta(days=3)
    d = fire(WELCOME, d)
    assert Record("ordered", "branch:offer") in d.actions
    assert only(d, SendAction).template == "first_order"
    d = deliver(WELCOME, d)
    assert d.enrollment.status == "completed"
    assert only(d, Finish) == Finish("completed", "completed")
    assert d.enrollment.outcomes == {"hello": "sent", "points": "sent", "offer": "sent"}
    assert d.enrollment.sent == 3


def test_welcome_flow_with_an_order_exits_at_the_exit_step_with_its_reason() -> None:
    """The branch falls through to the next step, an exit with a reason."""
    buyer = profile(orders_count=1)
    d = deliver(WELCOME, start(WELCOME, buyer), who=buyer)
    d = deliver(WELCOME, fire(WELCOME, d, buyer), who=buyer)
    d = fire(WELCOME, d, buyer)
    assert Record("ordered", "branch:done") in d.actions
    assert only(d, Finish) == Finish("exited", "already_ordered")
    assert d.enrollment.status == "exited" and d.enrollment.exit_reason == "already_ordered"
    assert not of_type(d, SendAction)


def test_every_non_stale_decision_bumps_revision_and_stamps_the_clock() -> None:
    """The store's compare-and-set relies on revision growing by exactly one per change."""
    d = start(WELCOME)
    later = NOW + timedelta(hours=1)
    d2 = advance(WELCOME, d.enrollment, profile(), Delivered("hello", "sent"), now=later)
    assert d2.enrollment.revision == d.enrollment.revision + 1
    assert d2.enrollment.updated_at == later
    assert d.enrollment.status == "sending", "the input enrollment is never mutated"


def test_exit_step_without_reason_says_exit_step() -> None:
    """``exit: true`` ends the run with the reason ``exit_step``."""
    d = start(journey([{"id": "stop", "exit": True}, {"id": "never", "send": "email", "template": "x"}]))
    assert only(d, Finish) == Finish("exited", "exit_step")
    assert not of_type(d, SendAction)


def test_end_of_steps_completes() -> None:
    """Running off the last step completes the run."""
    flow = journey([{"id": "mark", "update": {"set": {"seen": True}}}])
    d = start(flow)
    assert only(d, Finish) == Finish("completed", "completed")
    assert d.enrollment.status == "completed"


def test_explicit_next_jumps() -> None:
    """A step's ``next`` overrides the following step."""
    flow = journey(
        [
            {"id": "first", "update": {"set": {"a": 1}}, "next": "last"},
            {"id": "skipped", "send": "email", "template": "x"},
            {"id": "last", "send": "sms", "template": "y"},
        ]
    )
    assert only(start(flow), SendAction).step_id == "last"


# ----------------------------------------------------------------------------------------------
# Sends and delivery reports.


def test_duplicate_delivered_is_ignored() -> None:
    """At-least-once: the second report for the same send changes nothing."""
    d = start(WELCOME)
    first = deliver(WELCOME, d)
    second = advance(WELCOME, first.enrollment, profile(), Delivered("hello", "sent"), now=NOW)
    assert second.enrollment is first.enrollment and second.actions == ()
    assert first.enrollment.sent == 1


def test_delivered_for_another_step_is_ignored() -> None:
    """A report for a step the run is not sending at is stale."""
    d = start(WELCOME)
    other = advance(WELCOME, d.enrollment, profile(), Delivered("points", "sent"), now=NOW)
    assert other.enrollment is d.enrollment and other.actions == ()


@pytest.mark.parametrize("outcome", ["capped", "suppressed", "no_consent", "no_address", "failed", "undeliverable"])
def test_unsent_outcomes_are_recorded_and_the_run_moves_on(outcome: str) -> None:
    """Anything but ``sent`` is recorded, not counted as sent, and the journey continues."""
    d = deliver(WELCOME, start(WELCOME), outcome)
    assert d.enrollment.outcomes == {"hello": outcome}
    assert d.enrollment.sent == 0
    assert Record("hello", outcome) in d.actions
    assert d.enrollment.status == "waiting"


def test_capped_with_on_capped_exit_ends_the_run() -> None:
    """``on_capped: exit`` makes a capped send the end of the journey."""
    flow = journey(
        [
            {"id": "promo", "send": "email", "template": "promo", "on_capped": "exit"},
            {"id": "after", "send": "sms", "template": "x"},
        ]
    )
    d = start(flow)
    assert only(d, SendAction).on_capped == "exit"
    d = deliver(flow, d, "capped")
    assert only(d, Finish) == Finish("exited", "capped")
    assert Record("promo", "capped") in d.actions
    assert not of_type(d, SendAction)


def test_capped_with_on_capped_skip_continues() -> None:
    """The default ``skip`` moves on to the next step."""
    flow = journey([{"id": "promo", "send": "email", "template": "p"}, {"id": "after", "send": "sms", "template": "x"}])
    assert only(deliver(flow, start(flow), "capped"), SendAction).step_id == "after"


def test_deferred_keeps_the_run_sending() -> None:
    """Deferral is the runtime's: the engine records it and keeps waiting for the final report."""
    d = start(WELCOME)
    deferred = deliver(WELCOME, d, "deferred")
    assert deferred.enrollment.status == "sending" and deferred.enrollment.step_id == "hello"
    assert deferred.actions == (Record("hello", "deferred"),)
    assert deferred.enrollment.revision == d.enrollment.revision + 1
    final = advance(WELCOME, deferred.enrollment, profile(), Delivered("hello", "sent"), now=NOW)
    assert final.enrollment.status == "waiting" and final.enrollment.sent == 1


def test_send_to_another_profile_uses_the_evaluated_recipient() -> None:
    """``to`` names another customer, e.g. the referrer in a two-sided reward."""
    flow = journey(
        [{"id": "reward", "send": "email", "template": "reward", "to": "event.referrer_id"}],
        trigger={"event": "referral.converted"},
    )
    d = start(flow, trigger={"referrer_id": "c99"})
    send = only(d, SendAction)
    assert send.recipient_id == "c99"
    assert send.idempotency_key == "run1:reward"


def test_send_to_an_empty_recipient_is_recorded_and_skipped() -> None:
    """No referrer, no message: the run carries on instead of messaging the wrong person."""
    flow = journey(
        [
            {"id": "reward", "send": "email", "template": "reward", "to": "event.referrer_id"},
            {"id": "thanks", "send": "email", "template": "thanks"},
        ]
    )
    d = start(flow, trigger={"referrer_id": None})
    assert Record("reward", "no_recipient") in d.actions
    assert only(d, SendAction).step_id == "thanks"


def test_a_send_visited_again_in_a_loop_gets_a_new_idempotency_key() -> None:
    """A loop through a wait may send the same step twice on purpose; the keys must differ."""
    flow = journey(
        [
            {"id": "remind", "send": "email", "template": "r"},
            {"id": "pause", "wait": "1d"},
            {"id": "again", "branch": [{"if": "profile.orders_count == 0", "goto": "remind"}]},
        ]
    )
    d = start(flow)
    first = only(d, SendAction).idempotency_key
    d = fire(flow, deliver(flow, d))
    second = only(d, SendAction).idempotency_key
    assert first == "run1:remind" and second != first
    replay = fire(flow, deliver(flow, start(flow)))
    assert only(replay, SendAction).idempotency_key == second, "the key is deterministic"


# ----------------------------------------------------------------------------------------------
# Holdout.


def test_holdout_members_walk_the_journey_but_never_get_a_send_action() -> None:
    """A control group is enrolled, waits like everyone else and is measured, never messaged."""
    flow = WELCOME.model_copy(update={"holdout": 50.0})
    held = [f"c{i}" for i in range(200) if engine.is_holdout("flow", f"c{i}", 50)]
    assert 60 < len(held) < 140
    for customer in held[:20]:
        who = profile(customer)
        d = start(flow, who)
        assert d.enrollment.holdout
        assert d.actions[:2] == (Record(None, "entered"), Record(None, "holdout"))
        steps = 0
        while not d.enrollment.finished:
            assert not of_type(d, SendAction)
            d = fire(flow, d, who)
            steps += 1
        assert not of_type(d, SendAction)
        assert steps == 2, "both waits were taken"
        assert d.enrollment.outcomes == {"hello": "holdout", "points": "holdout", "offer": "holdout"}
        assert d.enrollment.sent == 0


def test_holdout_zero_and_hundred() -> None:
    """0% holds nobody out, 100% holds everyone out."""
    assert not any(engine.is_holdout("j", f"c{i}", 0) for i in range(500))
    assert all(engine.is_holdout("j", f"c{i}", 100) for i in range(500))


def test_holdout_is_deterministic_and_near_its_percentage() -> None:
    """The same customer is always in (or out of) the control group; 10% is about 10%."""
    ids = [f"cust-{i}" for i in range(10_000)]
    share = sum(engine.is_holdout("winback", i, 10) for i in ids) / len(ids)
    assert 0.085 < share < 0.115
    assert [engine.is_holdout("winback", i, 10) for i in ids[:100]] == [
        engine.is_holdout("winback", i, 10) for i in ids[:100]
    ]


# ----------------------------------------------------------------------------------------------
# Waits.


def test_stale_timer_is_ignored() -> None:
    """A timer for an older revision (e.g. a redelivered or superseded wake-up) changes nothing."""
    d = deliver(WELCOME, start(WELCOME))
    timer = only(d, ScheduleTimer)
    stale = advance(WELCOME, d.enrollment, profile(), TimerFired(timer.revision - 1), now=timer.due)
    assert stale.enrollment is d.enrollment and stale.actions == ()
    moved = fire(WELCOME, d)
    replay = advance(WELCOME, moved.enrollment, profile(), TimerFired(timer.revision), now=timer.due)
    assert replay.enrollment is moved.enrollment and replay.actions == ()


def test_timer_on_a_sending_enrollment_is_ignored() -> None:
    """Only a waiting run wakes up from a timer."""
    d = start(WELCOME)
    out = advance(WELCOME, d.enrollment, profile(), TimerFired(d.enrollment.revision), now=NOW)
    assert out.enrollment is d.enrollment and out.actions == ()


def test_wait_schedules_a_timer_for_the_new_revision() -> None:
    """The timer carries the revision it was set at so the runtime can tell stale from fresh."""
    d = deliver(WELCOME, start(WELCOME))
    timer = only(d, ScheduleTimer)
    assert timer.revision == d.enrollment.revision
    assert d.enrollment.wait_until == timer.due


EVENT_WAIT = journey(
    [
        {
            "id": "await_open",
            "wait": {
                "event": "app.opened",
                "if": "event.platform == 'ios'",
                "timeout": "3d",
                "on_event": "thanks",
                "on_timeout": "nudge",
            },
        },
        {"id": "nudge", "send": "push", "template": "nudge", "fallback": ["email"]},
        {"id": "end", "exit": "nudged"},
        {"id": "thanks", "send": "email", "template": "thanks"},
    ]
)


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


def test_event_failing_the_filter_or_another_event_is_stale() -> None:
    """A different event, or the right one failing the ``if``, leaves the wait alone."""
    d = start(EVENT_WAIT)
    for signal in (event("app.opened", platform="android"), event("order.placed")):
        out = advance(EVENT_WAIT, d.enrollment, profile(), signal, now=NOW)
        assert out.enrollment is d.enrollment and out.actions == ()


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
# Branch, split, update.


def test_branch_takes_the_first_true_case_else_else() -> None:
    """Cases are tried in order; ``else`` when none holds."""
    flow = journey(
        [
            {
                "id": "tier",
                "branch": [
                    {"if": "profile.total_spent > 1000", "goto": "platinum"},
                    {"if": "profile.total_spent > 100", "goto": "gold"},
                ],
                "else": "basic",
            },
            {"id": "platinum", "send": "email", "template": "p"},
            {"id": "gold", "send": "email", "template": "g"},
            {"id": "basic", "send": "email", "template": "b"},
        ]
    )
    for spent, target in ((5000.0, "platinum"), (500.0, "gold"), (5.0, "basic")):
        d = start(flow, profile(total_spent=spent))
        assert Record("tier", f"branch:{target}") in d.actions
        assert only(d, SendAction).step_id == target


def test_branch_sees_event_trigger_now_and_journey() -> None:
    """Conditions read the trigger's properties as ``event`` and also ``trigger``, ``now``, ``journey``."""
    flow = journey(
        [
            {
                "id": "check",
                "branch": [
                    {
                        "if": "event.total > 50 and trigger.total == event.total and now.year == 2026"
                        " and journey.id == 'flow'",
                        "goto": "big",
                    }
                ],
            },
            {"id": "small", "exit": "small"},
            {"id": "big", "exit": "big"},
        ]
    )
    assert only(start(flow, trigger={"total": 80}), Finish).reason == "big"
    assert only(start(flow, trigger={"total": 20}), Finish).reason == "small"


def test_condition_error_exits_without_crashing() -> None:
    """A condition that fails on this customer's data ends the run as ``condition_error``."""
    flow = journey(
        [
            {"id": "check", "branch": [{"if": "profile.no_such_field > 3", "goto": "x"}]},
            {"id": "x", "send": "email", "template": "x"},
        ]
    )
    d = start(flow)
    assert Record("check", "condition_error") in d.actions
    assert only(d, Finish) == Finish("exited", "condition_error")
    assert d.enrollment.status == "exited"


def test_sandbox_escape_in_a_condition_is_a_condition_error() -> None:
    """An unsafe expression is refused by the sandbox and handled like any other bad condition."""
    flow = journey([{"id": "check", "branch": [{"if": "''.__class__.__mro__", "goto": "check"}]}])
    assert only(start(flow), Finish).reason == "condition_error"


SPLIT = journey(
    [
        {
            "id": "ab",
            "split": [
                {"name": "a", "percent": 20, "goto": "send_a"},
                {"name": "b", "percent": 30, "goto": "send_b"},
                {"name": "c", "percent": 50, "goto": "send_c"},
            ],
        },
        {"id": "send_a", "send": "email", "template": "a"},
        {"id": "send_b", "send": "email", "template": "b"},
        {"id": "send_c", "send": "email", "template": "c"},
    ]
)


def test_split_is_deterministic_per_customer() -> None:
    """The same customer always takes the same arm, and the record names it."""
    for i in range(50):
        who = profile(f"c{i}")
        first, second = start(SPLIT, who), start(SPLIT, who)
        arm = only(first, SendAction).step_id
        assert arm == only(second, SendAction).step_id
        assert Record("ab", f"split:{arm.removeprefix('send_')}") in first.actions


def test_split_distribution_follows_the_percentages() -> None:
    """Over 10,000 customers each arm gets its share within two percentage points."""
    step = SPLIT.step("ab")
    assert isinstance(step, SplitStep)
    counts = Counter(engine.split_arm("flow", f"customer-{i}", step) for i in range(10_000))
    assert abs(counts["a"] / 10_000 - 0.20) < 0.02
    assert abs(counts["b"] / 10_000 - 0.30) < 0.02
    assert abs(counts["c"] / 10_000 - 0.50) < 0.02


def test_split_arms_are_independent_per_step_and_journey() -> None:
    """Different journeys bucket the same customer independently (no correlated A/B tests)."""
    step = SPLIT.step("ab")
    assert isinstance(step, SplitStep)
    same = sum(engine.split_arm("one", f"c{i}", step) == engine.split_arm("two", f"c{i}", step) for i in range(2000))
    assert same < 1500  # fully correlated would be 2000; independent is about 0.2²+0.3²+0.5² = 38%


def test_update_sets_and_increments_and_later_branch_sees_it() -> None:
    """An update is an action for the runtime and is visible to conditions later in the same advance."""
    flow = journey(
        [
            {"id": "award", "update": {"set": {"tier": "gold", "greeting": "Hi {{ profile.name }}"}}},
            {"id": "points", "update": {"increment": {"points": 50}}},
            {"id": "check", "branch": [{"if": "profile.tier == 'gold' and profile.points == 60", "goto": "vip"}]},
            {"id": "plain", "exit": "plain"},
            {"id": "vip", "exit": "vip"},
        ]
    )
    d = start(flow, profile(attributes={"name": "Ann", "points": 10}))
    updates = of_type(d, UpdateProfile)
    assert updates == [
        UpdateProfile(customer_id="c1", set={"tier": "gold", "greeting": "Hi Ann"}, increment={}),
        UpdateProfile(customer_id="c1", set={}, increment={"points": 50.0}),
    ]
    assert only(d, Finish).reason == "vip"


def test_update_of_another_profile_does_not_touch_the_local_copy() -> None:
    """``to`` rewards someone else (the referrer); this customer's conditions do not change."""
    flow = journey(
        [
            {"id": "reward", "update": {"to": "event.referrer_id", "increment": {"points": 100}}},
            {"id": "check", "branch": [{"if": "profile.points is defined", "goto": "oops"}]},
            {"id": "fine", "exit": "fine"},
            {"id": "oops", "exit": "oops"},
        ]
    )
    d = start(flow, trigger={"referrer_id": "c77"})
    assert only(d, UpdateProfile) == UpdateProfile(customer_id="c77", set={}, increment={"points": 100.0})
    assert only(d, Finish).reason == "fine"


def test_update_value_that_is_one_expression_keeps_its_type() -> None:
    """``{{ profile.points + 5 }}`` stores a number, not the string '15'."""
    flow = journey([{"id": "calc", "update": {"set": {"points": "{{ profile.points + 5 }}", "plain": 3}}}])
    d = start(flow, profile(attributes={"points": 10}))
    assert only(d, UpdateProfile).set == {"points": 15, "plain": 3}


def test_update_render_error_is_a_condition_error() -> None:
    """A value that cannot render for this customer ends the run cleanly."""
    flow = journey([{"id": "calc", "update": {"set": {"label": "x {{ profile.missing }}"}}}])
    d = start(flow)
    assert only(d, Finish).reason == "condition_error"
    assert not of_type(d, UpdateProfile)


# ----------------------------------------------------------------------------------------------
# Safety nets.


def test_loop_guard_stops_a_cycle_without_a_wait() -> None:
    """A cycle the loader should have refused still cannot spin a worker forever."""
    flow = journey(
        [
            {"id": "ping", "update": {"increment": {"n": 1}}},
            {"id": "pong", "branch": [{"if": "true", "goto": "ping"}]},
        ]
    )
    d = start(flow)
    assert only(d, Finish) == Finish("exited", "loop_guard")
    assert len(of_type(d, UpdateProfile)) == engine.MAX_STEPS_PER_ADVANCE // 2


def test_enrollment_on_a_step_the_journey_no_longer_has_exits() -> None:
    """A journey edited under a waiting run (a deleted step) ends it instead of crashing."""
    d = deliver(WELCOME, start(WELCOME))
    edited = journey([{"id": "other", "send": "email", "template": "x"}])
    out = fire(edited, d)
    assert only(out, Finish) == Finish("exited", "step_missing")


def test_finished_enrollments_ignore_every_signal() -> None:
    """Anything arriving after the end is stale."""
    d = start(journey([{"id": "stop", "exit": True}]))
    flow = journey([{"id": "stop", "exit": True}])
    for signal in (Started(), TimerFired(1), event("x.y"), Delivered("stop", "sent")):
        out = advance(flow, d.enrollment, profile(), signal, now=NOW)
        assert out.enrollment is d.enrollment and out.actions == ()
    assert check_exit(flow, d.enrollment, profile(), event("x.y"), now=NOW) is None


# ----------------------------------------------------------------------------------------------
# Goals, exit_when and restart.


WINBACK = journey(
    [
        {"id": "quiet", "wait": "60d"},
        {"id": "miss_you", "send": "email", "template": "miss_you"},
        {"id": "pause", "wait": "7d"},
        {"id": "offer", "send": "sms", "template": "offer"},
    ],
    id="winback",
    trigger={"event": "order.placed"},
    re_entry="restart",
    goals=[{"event": "order.placed"}],
    exit_when=[{"if": "profile.consent.email == false"}],
)


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


def test_restart_before_any_send_is_not_a_conversion() -> None:
    """Win-back: a new order during the 60-day countdown restarts it rather than converting."""
    d = start(WINBACK)
    out = check_exit(WINBACK, d.enrollment, profile(), event("order.placed"), now=NOW)
    assert out is not None
    assert only(out, Finish) == Finish("exited", "restarted")
    assert CancelTimer() in out.actions
    assert may_enter(WINBACK, has_live=False, last_entered_at=NOW, now=NOW)


def test_restart_after_a_send_converts() -> None:
    """An order after the 'we miss you' e-mail is the goal: converted."""
    d = deliver(WINBACK, fire(WINBACK, start(WINBACK)))
    assert d.enrollment.sent == 1
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


# ----------------------------------------------------------------------------------------------
# Triggers, audience and re-entry.


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


def test_context_keys() -> None:
    """Conditions and templates see the same five names."""
    flow = journey([{"id": "s", "exit": True}])
    enrollment = start(flow, trigger={"total": 3}).enrollment
    ctx = context(profile(), enrollment, None, NOW, flow)
    assert set(ctx) == {"profile", "event", "trigger", "now", "journey"}
    assert ctx["event"] == {"total": 3} and ctx["trigger"] == {"total": 3}
    assert ctx["journey"] == {"id": "flow", "name": "Flow"}
    assert context(profile(), enrollment, event("a.b", x=1), NOW, flow)["event"] == {"x": 1}
    assert context(profile(), {"k": 1}, None, NOW, None)["trigger"] == {"k": 1}


# ----------------------------------------------------------------------------------------------
# Properties.


def _pausing(actions: tuple[Action, ...]) -> list[Action]:
    return [a for a in actions if isinstance(a, SendAction | ScheduleTimer)]


signals = st.one_of(
    st.just(Started()),
    st.integers(min_value=0, max_value=12).map(TimerFired),
    st.sampled_from(["app.opened", "order.placed"]).map(lambda name: event(name, platform="ios")),
    st.tuples(
        st.sampled_from(["hello", "points", "offer", "nudge", "thanks", "await_open"]),
        st.sampled_from(["sent", "capped", "deferred", "failed"]),
    ).map(lambda pair: Delivered(pair[0], pair[1])),  # type: ignore[arg-type]
    st.just("fresh_timer"),
    st.just("fresh_delivery"),
    st.just("goal_check"),
)


@settings(max_examples=150, deadline=None)
@given(
    flow=st.sampled_from([WELCOME, EVENT_WAIT, WINBACK, SPLIT, WELCOME.model_copy(update={"holdout": 50.0})]),
    customer=st.text(alphabet="abcdef0123456789", min_size=1, max_size=8),
    script=st.lists(signals, max_size=25),
)
def test_advance_keeps_its_invariants(flow: Journey, customer: str, script: list[Any]) -> None:
    """Whatever arrives in whatever order: revisions only grow by one, a stale signal returns the very
    same enrollment with no actions, a decision pauses at most once, and a finished run never pauses."""
    who = profile(customer)
    d = enter(flow, who, trigger={}, run_id="r", now=NOW)
    clock = NOW
    for item in script:
        before: Enrollment = d.enrollment
        signal: Signal
        if item == "fresh_timer":
            signal = TimerFired(before.revision)
        elif item == "fresh_delivery":
            signal = Delivered(before.step_id or "none", "sent")
        else:
            signal = item
        clock += timedelta(hours=1)
        if item == "goal_check":
            ended = check_exit(flow, before, who, event("order.placed"), now=clock)
            if ended is None:
                continue
            assert before.finished is False and ended.enrollment.finished
            assert ended.enrollment.revision == before.revision + 1
            d = ended
            continue
        d = advance(flow, before, who, signal, now=clock)
        if d.enrollment is before:
            assert d.actions == ()
            continue
        assert d.enrollment.revision == before.revision + 1
        assert d.enrollment.updated_at == clock
        assert len(_pausing(d.actions)) <= 1
        assert len(of_type(d, Finish)) <= 1
        if d.enrollment.finished:
            assert not _pausing(d.actions)
            assert of_type(d, Finish)
        else:
            assert d.enrollment.status in {"sending", "waiting"}, "a live run always rests at a send or a wait"
        if d.enrollment.holdout:
            assert not of_type(d, SendAction)
        if isinstance(signal, Delivered) and signal.outcome == "deferred":
            assert d.enrollment.status == "sending"


# ----------------------------------------------------------------------------------------------
# Waiting for a moment computed from the customer's data (replenishment).


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


def test_inputs_are_never_mutated() -> None:
    """The enrollment passed in is the compare-and-set's expected state; the profile is the store's."""
    flow = journey(
        [
            {"id": "award", "update": {"set": {"tier": "gold"}, "increment": {"points": 5}}},
            {"id": "hello", "send": "email", "template": "x"},
            {"id": "pause", "wait": "1d"},
        ]
    )
    who = profile(attributes={"points": 1, "tags": ["a"]})
    before_profile = who.model_dump()
    d = start(flow, who, trigger={"items": [{"sku": "a"}]})
    before_enrollment = d.enrollment.model_dump()
    out = advance(flow, d.enrollment, who, Delivered("hello", "sent"), now=NOW)
    assert out.enrollment.outcomes == {"hello": "sent"}
    assert d.enrollment.model_dump() == before_enrollment
    assert who.model_dump() == before_profile


def test_delivery_report_for_a_send_the_journey_no_longer_has_exits() -> None:
    """A run left ``sending`` on a step an edit removed ends instead of hanging forever."""
    d = start(WELCOME)
    edited = journey([{"id": "other", "send": "email", "template": "x"}])
    out = advance(edited, d.enrollment, profile(), Delivered("hello", "sent"), now=NOW)
    assert only(out, Finish) == Finish("exited", "step_missing")


def test_awaited_event_properties_stay_visible_after_later_waits() -> None:
    """After ``wait: {event: …}`` the event's fields sit on top of the trigger's for every later step."""
    flow = journey(
        [
            {"id": "await_open", "wait": {"event": "app.opened", "timeout": "1d"}},
            {"id": "pause", "wait": "1h"},
            {
                "id": "check",
                "branch": [{"if": "event.platform == 'ios' and event.total == 80", "goto": "ios"}],
                "else": "other",
            },
            {"id": "ios", "exit": "ios"},
            {"id": "other", "exit": "other"},
        ]
    )
    d = start(flow, trigger={"total": 80, "platform": "web"})
    d = advance(flow, d.enrollment, profile(), event("app.opened", platform="ios"), now=NOW)
    assert d.enrollment.awaited_event == {"platform": "ios"}
    assert only(fire(flow, d), Finish).reason == "ios"
    timed_out = fire(flow, fire(flow, start(flow, trigger={"total": 80, "platform": "web"})))
    assert only(timed_out, Finish).reason == "other"


def test_update_values_are_templates_with_statements_and_the_step() -> None:
    """``{% if %}`` blocks render too, and ``step.id`` is available as in message templates."""
    flow = journey(
        [
            {
                "id": "label",
                "update": {
                    "set": {"tag": "{% if profile.orders_count > 0 %}buyer{% else %}lead{% endif %}-{{ step.id }}"}
                },
            }
        ]
    )
    assert only(start(flow, profile(orders_count=2)), UpdateProfile).set == {"tag": "buyer-label"}
    assert only(start(flow), UpdateProfile).set == {"tag": "lead-label"}


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
