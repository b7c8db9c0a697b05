"""The shipped journeys, walked through the engine with a fixed clock: each flow's shape, end to end.

These read the journey files with the language's own parser (model only: templates are checked by
the loader's tests) so a change to a shipped flow that breaks its story shows up here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from orchestrator.engine import (
    advance,
    check_exit,
    enter,
    in_audience,
    matches_trigger,
    may_enter,
    next_date_fire,
    next_schedule_fire,
)
from orchestrator.engine.enrollment import (
    CancelTimer,
    Decision,
    Delivered,
    EventArrived,
    Finish,
    ScheduleTimer,
    SendAction,
    TimerFired,
    UpdateProfile,
)
from orchestrator.language.journey import DateTrigger, Journey, ScheduleTrigger
from orchestrator.language.loader import parse_journey, version_of
from orchestrator.language.profile import Profile
from orchestrator.language.yamlfile import parse_yaml

JOURNEYS = Path(__file__).resolve().parents[2] / "journeys"
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # Monday 11:00 in Amsterdam
TZ = "Europe/Amsterdam"


def shipped(name: str) -> Journey:
    content = (JOURNEYS / f"{name}.yaml").read_bytes()
    return parse_journey(parse_yaml(content.decode(), f"{name}.yaml"), version_of(content))


def event(name: str, **properties: Any) -> EventArrived:
    return EventArrived(name=name, properties=properties, event_id=f"e-{name}", timestamp=NOW)


def only(decision: Decision, kind: type) -> Any:
    found = [a for a in decision.actions if isinstance(a, kind)]
    assert len(found) == 1, decision.actions
    return found[0]


class Walker:
    """Carries a run along the way the runtime would: deliveries answered, timers fired on time."""

    def __init__(self, journey: Journey, who: Profile, trigger: dict[str, Any]) -> None:
        self.journey, self.who = journey, who
        self.decision = enter(journey, who, trigger=trigger, run_id="run", now=NOW, settings_timezone=TZ)
        self.clock = NOW

    @property
    def sent_step(self) -> str:
        return str(only(self.decision, SendAction).step_id)

    def deliver(self, outcome: Any = "sent") -> Walker:
        send = only(self.decision, SendAction)
        self.decision = advance(
            self.journey, self.decision.enrollment, self.who, Delivered(send.step_id, outcome), now=self.clock
        )
        return self

    def fire(self) -> Walker:
        timer = only(self.decision, ScheduleTimer)
        self.clock = timer.due
        self.decision = advance(
            self.journey, self.decision.enrollment, self.who, TimerFired(timer.revision), now=self.clock
        )
        return self

    def arrive(self, signal: EventArrived) -> Walker:
        self.decision = advance(self.journey, self.decision.enrollment, self.who, signal, now=self.clock)
        return self


def test_welcome_sends_email_push_then_sms_offer_to_a_customer_who_did_not_order() -> None:
    """welcome: e-mail now, push after 2 days, SMS offer after 3 more days without an order."""
    flow = shipped("welcome")
    who = Profile(id="c1", timezone=TZ)
    assert matches_trigger(flow, "customer.signed_up", {"source": "app"}, who)
    assert not matches_trigger(flow, "customer.signed_up", {"source": "import"}, who)
    walk = Walker(flow, who, {"source": "app"})
    assert walk.sent_step == "welcome_email"
    walk.deliver().fire()
    assert only(walk.decision, SendAction).channels == ("push", "email")
    assert walk.clock == NOW + timedelta(days=2)
    walk.deliver().fire()
    assert walk.clock == NOW + timedelta(days=5)
    sms = only(walk.decision, SendAction)
    assert (sms.step_id, sms.on_capped) == ("first_order_sms", "defer")
    walk.deliver()
    assert only(walk.decision, Finish) == Finish("completed", "exit_step")
    assert walk.decision.enrollment.sent == 3


def test_welcome_order_is_the_goal() -> None:
    """An order during the welcome series converts it and cancels the wait."""
    flow = shipped("welcome")
    walk = Walker(flow, Profile(id="c1"), {"source": "app"}).deliver()
    ended = check_exit(flow, walk.decision.enrollment, Profile(id="c1", orders_count=1), event("order.placed"), now=NOW)
    assert ended is not None and only(ended, Finish).status == "converted"
    assert CancelTimer() in ended.actions


def test_activation_nudges_after_three_quiet_days() -> None:
    """activation: no app open and no completed profile in 3 days → push nudge (e-mail fallback)."""
    flow = shipped("activation")
    walk = Walker(flow, Profile(id="c1"), {})
    assert walk.decision.enrollment.waiting_for == "app.opened"
    walk.fire()
    assert only(walk.decision, SendAction).channels == ("push", "email")
    walk.deliver().fire()
    assert only(walk.decision, Finish) == Finish("exited", "not_activated")


def test_activation_completed_profile_skips_the_nudge() -> None:
    """A profile completed meanwhile takes the activated exit at the timeout."""
    flow = shipped("activation")
    walk = Walker(flow, Profile(id="c1", attributes={"profile_completed": True}), {}).fire()
    assert only(walk.decision, Finish) == Finish("exited", "activated")


def test_activation_app_open_is_the_goal() -> None:
    """Opening the app converts the run (the runtime checks goals before event waits)."""
    flow = shipped("activation")
    walk = Walker(flow, Profile(id="c1"), {})
    ended = check_exit(flow, walk.decision.enrollment, Profile(id="c1"), event("app.opened"), now=NOW)
    assert ended is not None and only(ended, Finish) == Finish("converted", "goal")


ORDER = {"order_id": "o1", "total": 42.0, "items": [{"sku": "shampoo", "replenish_days": 30}, {"sku": "comb"}]}


def test_replenishment_reminds_three_days_before_running_out() -> None:
    """replenishment: wait until 3 days before the product runs out → e-mail → 3 days → push."""
    flow = shipped("replenishment")
    who = Profile(id="c1")
    assert matches_trigger(flow, "order.placed", ORDER, who)
    assert not matches_trigger(flow, "order.placed", {"items": [{"sku": "comb"}]}, who)
    assert not matches_trigger(flow, "order.placed", {"total": 3}, who)
    walk = Walker(flow, who, ORDER)
    assert only(walk.decision, ScheduleTimer).due == NOW + timedelta(days=27)
    walk.fire()
    assert walk.sent_step == "reminder_email"
    walk.deliver().fire()
    assert walk.sent_step == "reminder_push"
    walk.deliver()
    assert only(walk.decision, Finish) == Finish("completed", "completed")


def test_replenishment_reorder_converts_and_restarts() -> None:
    """A re-order is the goal, before the reminder or after it: the run converts, and the order
    (the trigger of a ``restart`` journey) starts the countdown anew."""
    flow = shipped("replenishment")
    who = Profile(id="c1")
    waiting = Walker(flow, who, ORDER)
    early = check_exit(flow, waiting.decision.enrollment, who, event("order.placed", **ORDER), now=NOW)
    assert early is not None and only(early, Finish) == Finish("converted", "goal")
    assert may_enter(flow, has_live=True, last_entered_at=NOW, now=NOW)
    reminded = Walker(flow, who, ORDER).fire().deliver()
    converted = check_exit(flow, reminded.decision.enrollment, who, event("order.placed", **ORDER), now=NOW)
    assert converted is not None and only(converted, Finish) == Finish("converted", "goal")


def test_winback_countdown_then_three_messages() -> None:
    """win-back: 60 days quiet → e-mail → 7 days → SMS (e-mail fallback) → 14 days → last e-mail."""
    flow = shipped("winback")
    walk = Walker(flow, Profile(id="c1"), {"order_id": "o1"})
    walk.fire()
    assert walk.clock == NOW + timedelta(days=60) and walk.sent_step == "miss_you_email"
    walk.deliver().fire()
    assert walk.clock == NOW + timedelta(days=67)
    assert only(walk.decision, SendAction).channels == ("sms", "email")
    walk.deliver().fire()
    assert walk.clock == NOW + timedelta(days=81) and walk.sent_step == "last_email"
    walk.deliver()
    assert only(walk.decision, Finish).status == "completed"
    assert walk.decision.enrollment.sent == 3


def test_winback_order_during_countdown_converts_and_restarts() -> None:
    """An order during the 60-day countdown meets the goal (the measurement counts it, so the run
    says so too), and restarts the countdown: the journey may be entered again at once."""
    flow = shipped("winback")
    walk = Walker(flow, Profile(id="c1"), {"order_id": "o1"})
    ended = check_exit(flow, walk.decision.enrollment, Profile(id="c1"), event("order.placed"), now=NOW)
    assert ended is not None and only(ended, Finish) == Finish("converted", "goal")
    assert may_enter(flow, has_live=True, last_entered_at=NOW, now=NOW)


@pytest.mark.parametrize("name", ["referral", "referral_third_order"])
def test_referral_invites_once_and_is_measured_by_a_friend_converting(name: str) -> None:
    """referral: an invitation (marked, so never twice) and nothing more to walk: the rewards are the
    reward journey's; the invitation's goal is a friend converting within 30 days."""
    flow = shipped(name)
    who = Profile(id="c1", orders_count=3)
    trigger = {"score": 10} if name == "referral" else {"order_id": "o3", "total": 20}
    assert in_audience(flow, who, NOW)
    assert not in_audience(flow, Profile(id="c1", orders_count=3, attributes={"referral_invited": True}), NOW)
    walk = Walker(flow, who, trigger)
    assert only(walk.decision, UpdateProfile) == UpdateProfile("c1", set={"referral_invited": True}, increment={})
    assert walk.sent_step == "invite"
    walk.deliver()
    assert only(walk.decision, Finish).status == "completed"
    assert [(g.event, g.within) for g in flow.goals] == [("referral.converted", timedelta(days=30))]


def test_referral_reward_pays_both_sides_from_the_friends_run() -> None:
    """referral_reward, entered by the friend: both get 500 points (Loyaloop's copy, then the shop's
    ledger through two action steps, each its own run-and-step key) and a message each."""
    flow = shipped("referral_reward")
    assert flow.category == "transactional" and not flow.holdout
    assert matches_trigger(flow, "referral.reward_due", {"referrer_id": "c1"}, Profile(id="f9"))
    walk = Walker(flow, Profile(id="f9"), {"referrer_id": "c1", "friend_id": "f9", "friend_first_name": "Sam"})
    updates = [a for a in walk.decision.actions if isinstance(a, UpdateProfile)]
    assert updates == [
        UpdateProfile("f9", set={"referrer_id": "c1"}, increment={"points": 500.0}),
        UpdateProfile("c1", set={"referral_rewarded": True}, increment={"points": 500.0}),
    ]
    for step_id in ("credit_referrer", "credit_friend"):
        call = only(walk.decision, SendAction)
        assert (call.step_id, call.channels, call.template) == (step_id, ("action",), "ledger")
        assert call.recipient_id == "f9" and call.idempotency_key == f"run:{step_id}"
        walk.deliver()
    thanks = only(walk.decision, SendAction)
    assert (thanks.step_id, thanks.recipient_id) == ("thank_referrer", "c1")
    walk.deliver()
    assert walk.sent_step == "welcome_friend"
    walk.deliver()
    assert only(walk.decision, Finish).status == "completed"


def test_referral_nps_filter() -> None:
    """Only promoters (score ≥ 9) are invited."""
    flow = shipped("referral")
    assert matches_trigger(flow, "nps.answered", {"score": 9}, Profile(id="c1"))
    assert not matches_trigger(flow, "nps.answered", {"score": 8}, Profile(id="c1"))


def test_vip_congratulates_then_early_access_on_a_tuesday_morning() -> None:
    """VIP: e-mail and push now, then after a week the next Tuesday 10:00 in the customer's zone."""
    flow = shipped("vip")
    who = Profile(id="c1", timezone="America/New_York")
    assert matches_trigger(flow, "tier.changed", {"tier": "gold"}, who)
    assert not matches_trigger(flow, "tier.changed", {"tier": "silver"}, who)
    walk = Walker(flow, who, {"tier": "gold"})
    assert walk.sent_step == "congratulations"
    walk.deliver()
    assert walk.sent_step == "perks_push"
    walk.deliver().fire()
    assert walk.clock == NOW + timedelta(days=7)
    walk.fire()
    # A week after Monday 2 March is Monday 9 March; the next Tuesday 10:00 EDT is 14:00 UTC.
    assert walk.clock == datetime(2026, 3, 10, 14, 0, tzinfo=UTC)
    assert walk.sent_step == "early_access"


def test_birthday_fires_at_nine_local_for_members_only() -> None:
    """birthday: a date trigger at 09:00 in the member's zone; non-members are not in the audience."""
    flow = shipped("birthday")
    assert isinstance(flow.trigger, DateTrigger)
    member = Profile(id="c1", timezone="Asia/Kolkata", attributes={"birthday": "1990-03-05", "member": True})
    assert in_audience(flow, member, NOW)
    assert not in_audience(flow, Profile(id="c2", attributes={"birthday": "1990-03-05"}), NOW)
    assert next_date_fire(flow.trigger, member, NOW, TZ) == datetime(2026, 3, 5, 3, 30, tzinfo=UTC)
    walk = Walker(flow, member, {"date": "birthday", "year": 2026})
    assert only(walk.decision, SendAction).channels == ("email", "push")
    assert may_enter(flow, has_live=False, last_entered_at=NOW - timedelta(days=365), now=NOW)
    assert not may_enter(flow, has_live=False, last_entered_at=NOW - timedelta(days=200), now=NOW)


def test_vip_early_access_broadcast_fires_first_tuesday_of_the_month() -> None:
    """The scheduled broadcast: first Tuesday, 10:00 in the zone the runtime resolves."""
    flow = shipped("vip_early_access")
    assert isinstance(flow.trigger, ScheduleTrigger)
    first = next_schedule_fire(flow.trigger, datetime(2026, 3, 1, tzinfo=UTC), TZ)
    assert first == datetime(2026, 3, 3, 9, 0, tzinfo=UTC)
    assert next_schedule_fire(flow.trigger, first, TZ) == datetime(2026, 4, 7, 8, 0, tzinfo=UTC)
    assert in_audience(flow, Profile(id="c1", attributes={"tier": "gold"}), NOW)
    assert not in_audience(flow, Profile(id="c1"), NOW)
