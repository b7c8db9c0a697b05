"""Moving a run on: a signal that no longer fits the stored state changes nothing, and the step
loop runs from step to step until a pause or the end, bumping the revision once per change."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator import engine
from orchestrator.engine import advance, check_exit, enter
from orchestrator.engine.enrollment import (
    Action,
    Delivered,
    Enrollment,
    Finish,
    Record,
    ScheduleTimer,
    SendAction,
    Signal,
    Started,
    TimerFired,
    UpdateProfile,
)
from orchestrator.language.journey import Journey
from tests.engine.builders import (
    EVENT_WAIT,
    NOW,
    SPLIT,
    WELCOME,
    WINBACK,
    deliver,
    event,
    fire,
    journey,
    of_type,
    only,
    profile,
    start,
)

# ----------------------------------------------------------------------------------------------
# Stale signals: the very same enrollment back, no actions.


def test_started_on_an_enrollment_that_already_moved_is_stale() -> None:
    """A redelivered start message does nothing once the run is under way."""
    decision = start(WELCOME)
    again = advance(WELCOME, decision.enrollment, profile(), Started(), now=NOW)
    assert again.enrollment is decision.enrollment and again.actions == ()


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


def test_event_failing_the_filter_or_another_event_is_stale() -> None:
    """A different event, or the right one failing the ``if``, leaves the wait alone."""
    d = start(EVENT_WAIT)
    for signal in (event("app.opened", platform="android"), event("order.placed")):
        out = advance(EVENT_WAIT, d.enrollment, profile(), signal, now=NOW)
        assert out.enrollment is d.enrollment and out.actions == ()


def test_finished_enrollments_ignore_every_signal() -> None:
    """Anything arriving after the end is stale, even an event that is one of the journey's goals."""
    flow = journey([{"id": "stop", "exit": True}], goals=[{"event": "x.y"}])
    d = start(flow)
    for signal in (Started(), TimerFired(1), event("x.y"), Delivered("stop", "sent")):
        out = advance(flow, d.enrollment, profile(), signal, now=NOW)
        assert out.enrollment is d.enrollment and out.actions == ()
    assert check_exit(flow, d.enrollment, profile(), event("x.y"), now=NOW) is None


# ----------------------------------------------------------------------------------------------
# The step loop, the welcome flow end to end.


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


def test_delivery_report_for_a_send_the_journey_no_longer_has_exits() -> None:
    """A run left ``sending`` on a step an edit removed ends instead of hanging forever."""
    d = start(WELCOME)
    edited = journey([{"id": "other", "send": "email", "template": "x"}])
    out = advance(edited, d.enrollment, profile(), Delivered("hello", "sent"), now=NOW)
    assert only(out, Finish) == Finish("exited", "step_missing")


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
