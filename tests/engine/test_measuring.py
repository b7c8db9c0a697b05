"""The pure half of proof of effect: what a decision counts, and what an event does to open windows."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from orchestrator.engine import advance, enter
from orchestrator.engine.bucketing import is_global_control, is_holdout
from orchestrator.engine.enrollment import Delivered, EventArrived, Record
from orchestrator.engine.measuring import Tally, Window, arm_of, entry_shape, event_hits, number_at, tally, trigger_tag
from orchestrator.settings import MeasureSettings
from tests.engine.builders import NOW, journey, profile, start

RULES = MeasureSettings()
FLOW = journey(
    [
        {"id": "hello", "send": "email", "template": "welcome"},
        {"id": "pause", "wait": "1d"},
    ],
    goals=[
        {"event": "order.placed", "within": "7d", "value": "properties.total", "if": "event.total > 1"},
        {"event": "referral.converted", "within": "2d"},
    ],
)


def test_an_entry_counts_one_entrant_in_its_arm_and_opens_a_window() -> None:
    decision = start(FLOW)
    counted = tally(FLOW, decision, created=True, rules=RULES)
    assert counted.arms == (("treated", "2026-03-02", "entrants", 1),)
    assert counted.steps == (("hello", "2026-03-02", "reached", 1),)
    window = counted.window
    assert window is not None and window.arms == ("treated",)
    assert window.goal_window == timedelta(days=7).total_seconds()
    assert window.expires == NOW.timestamp() + timedelta(days=30).total_seconds()
    assert tally(FLOW, decision, created=False, rules=RULES).window is None


def test_a_delivered_send_counts_its_channel_and_stamps_the_first_message() -> None:
    first = start(FLOW)
    sent = advance(FLOW, first.enrollment, profile(), Delivered("hello", "sent", "email"), now=NOW)
    counted = tally(FLOW, sent, created=False, rules=RULES)
    assert ("hello", "2026-03-02", "sent", 1) in counted.steps
    assert ("hello", "2026-03-02", "sent:email", 1) in counted.steps
    assert ("pause", "2026-03-02", "reached", 1) in counted.steps
    assert counted.first_sent == NOW.timestamp() and counted.arms == ()


def test_holdout_and_global_control_arms() -> None:
    held = next(f"h{n}" for n in range(500) if is_holdout("flow", f"h{n}", 50))
    decision = enter(journey(FLOW_STEPS, holdout=50), profile(held), trigger={}, run_id="r", now=NOW)
    assert arm_of(decision.enrollment) == "holdout"
    assert ("hello", "2026-03-02", "held", 1) in tally(None, decision, created=True, rules=RULES).steps
    member = next(f"g{n}" for n in range(500) if is_global_control(f"g{n}", 10))
    marketing = enter(FLOW, profile(member), trigger={}, run_id="r", now=NOW, global_holdout=10)
    assert arm_of(marketing.enrollment) == "control" and marketing.enrollment.holdout
    receipt = journey(FLOW_STEPS, category="transactional")
    assert (
        arm_of(enter(receipt, profile(member), trigger={}, run_id="r", now=NOW, global_holdout=10).enrollment)
        == "treated"
    )


FLOW_STEPS = [
    {"id": "hello", "send": "email", "template": "welcome"},
    {"id": "pause", "wait": "1d"},
]


def test_a_split_arm_is_joined_by_treated_runs_only() -> None:
    steps = [
        {"id": "pick", "split": [{"name": "a", "percent": 50, "goto": "x"}, {"name": "b", "percent": 50, "goto": "x"}]},
        {"id": "x", "wait": "1d"},
    ]
    flow = journey(steps, holdout=50)
    for n in range(20):
        decision = enter(flow, profile(f"c{n}"), trigger={}, run_id="r", now=NOW)
        counted = tally(flow, decision, created=True, rules=RULES)
        assert counted.window is not None
        if decision.enrollment.holdout:
            assert counted.window.arms == ("holdout",) and len(counted.arms) == 1
        else:
            (split,) = [arm for arm, _d, _f, _n in counted.arms if arm.startswith("split:pick:")]
            assert counted.window.arms == ("treated", split)


def window(**changes: object) -> Window:
    base = Window(
        "flow",
        "v1",
        ("treated",),
        "2026-03-02",
        NOW.timestamp(),
        7 * 86400.0,
        30 * 86400.0,
        NOW.timestamp() + 30 * 86400,
        trigger_tag("trigger-1"),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def hits(name: str, properties: dict[str, object], *, after: timedelta, event_id: str = "e1", **changes: object):  # type: ignore[no-untyped-def]
    arrived = EventArrived(name, properties, event_id, NOW + after)
    return event_hits({"r1": window(**changes)}, lambda _j, _v: FLOW, arrived, profile(), RULES, NOW + after)


def test_a_goal_counts_within_its_own_window_with_its_value() -> None:
    (hit,) = hits("order.placed", {"total": 20}, after=timedelta(days=6))
    assert (hit.goal, hit.value, hit.non_numeric, hit.order, hit.order_value) == (True, 20.0, False, True, 20.0)
    (late,) = hits("order.placed", {"total": 20}, after=timedelta(days=8))
    assert not late.goal and late.order  # past the goal's 7 days, within the 30-day KPI window
    assert hits("referral.converted", {}, after=timedelta(days=3)) == []  # this goal's window is 2 days
    assert hits("order.placed", {"total": 20}, after=timedelta(days=31)) == []


def test_the_goal_condition_the_trigger_event_and_non_numbers() -> None:
    (small,) = hits("order.placed", {"total": 1}, after=timedelta(hours=1))
    assert not small.goal  # the goal's ``if`` does not hold
    assert hits("order.placed", {"total": 5}, after=timedelta(hours=1), event_id="trigger-1") == []
    (odd,) = hits("order.placed", {"total": 5, "other": 1}, after=timedelta(hours=1))
    assert odd.goal and not odd.non_numeric


def test_a_value_that_is_not_a_number_is_zero_and_flagged() -> None:
    flow = journey(FLOW_STEPS, goals=[{"event": "order.placed", "value": "properties.total"}])
    arrived = EventArrived("order.placed", {"total": "12"}, "e1", NOW)
    (hit,) = event_hits({"r1": window()}, lambda _j, _v: flow, arrived, profile(), RULES, NOW)
    assert (hit.goal, hit.value, hit.non_numeric, hit.order_non_numeric) == (True, 0.0, True, True)


def test_kpi_events_redemption_and_nps() -> None:
    (redeemed,) = hits("reward.redeemed", {}, after=timedelta(days=1))
    assert redeemed.redeemed and not redeemed.goal
    (answer,) = hits("nps.answered", {"score": 9}, after=timedelta(days=1))
    assert answer.nps == 9
    assert hits("nps.answered", {"score": 11}, after=timedelta(days=1)) == []
    assert hits("nps.answered", {"score": 7.5}, after=timedelta(days=1)) == []


def test_number_at_walks_dotted_paths() -> None:
    assert number_at({"a": {"b": 2}}, "properties.a.b") == 2.0
    assert number_at({"a": {"b": 2}}, "a.b") == 2.0
    assert number_at({"a": True}, "a") is None
    assert number_at({"a": float("nan")}, "a") is None
    assert number_at({}, "properties.a") is None


def test_a_transactional_journey_without_goals_or_holdout_opens_no_window() -> None:
    """Nothing to compare (no control arm, no conversion): entrants and steps only, no window."""
    receipt = journey(FLOW_STEPS, category="transactional")
    counted = tally(receipt, start(receipt), created=True, rules=RULES)
    assert counted.window is None and counted.arms == (("treated", "2026-03-02", "entrants", 1),)
    with_goal = journey(FLOW_STEPS, category="transactional", goals=[{"event": "order.placed"}])
    assert tally(with_goal, start(with_goal), created=True, rules=RULES).window is not None


def test_entries_of_one_shape_earn_one_tally() -> None:
    """A cohort chunk tallies each shape of entry once (``orchestrator.store.entry_figures``), so
    equal shapes must mean equal tallies whatever else differs (customer, run id, profile); the
    arm, the steps taken, the entry moment and the trigger event each make shapes of their own."""
    steps = [
        {"id": "ordered", "branch": [{"if": "profile.orders_count == 0", "goto": "offer"}]},
        {"id": "pick", "split": [{"name": "a", "percent": 50, "goto": "x"}, {"name": "b", "percent": 50, "goto": "x"}]},
        {"id": "offer", "send": "email", "template": "welcome"},
        {"id": "x", "wait": "1d"},
    ]
    flow = journey(steps, holdout=30, goals=[{"event": "order.placed", "within": "7d"}])
    shapes: dict[object, list[Tally]] = {}
    for n in range(120):
        who = profile(f"c{n}", attributes={"orders_count": n % 2})
        decision = enter(
            flow,
            who,
            trigger={},
            run_id=f"flow-{n}",
            now=NOW + timedelta(days=n % 3),
            event_id=f"e{n % 2}",
            global_holdout=10,
        )
        shapes.setdefault(entry_shape(decision), []).append(tally(flow, decision, created=True, rules=RULES))
    assert len(shapes) > 12  # arms x branches x days x trigger events, not all alike
    for tallies in shapes.values():
        assert all(counted == tallies[0] for counted in tallies)


def test_the_channel_of_a_recorded_send_is_part_of_the_shape() -> None:
    """``Record`` compares without its channel; the shape must not (``sent:email`` is a figure)."""
    decision = start(FLOW)
    by_email, by_sms = (
        replace(decision, actions=(*decision.actions, Record("hello", "sent", channel)), reached=decision.reached)
        for channel in ("email", "sms")
    )
    assert tally(FLOW, by_email, created=True, rules=RULES) != tally(FLOW, by_sms, created=True, rules=RULES)
    assert entry_shape(by_email) != entry_shape(by_sms)
