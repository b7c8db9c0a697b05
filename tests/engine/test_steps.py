"""What each kind of step does to a run: a send and its delivery report, a branch, an update and
an exit.  The wait step is in test_steps_wait.py; split arms are in test_bucketing.py."""

from __future__ import annotations

import pytest

from orchestrator.engine import advance
from orchestrator.engine.enrollment import Delivered, Finish, Record, SendAction, UpdateProfile
from tests.engine.builders import NOW, WELCOME, deliver, fire, journey, of_type, only, profile, start

# ----------------------------------------------------------------------------------------------
# Send, and the delivery report that decides it.


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
# Branch.


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


# ----------------------------------------------------------------------------------------------
# Update.


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


# ----------------------------------------------------------------------------------------------
# Exit.


def test_exit_step_without_reason_is_the_designed_end_completed() -> None:
    """``exit: true`` is the journey's designed end: ``completed`` (reason ``exit_step``), not the
    ``exited`` of an exit rule, which reads as drop-off."""
    d = start(journey([{"id": "stop", "exit": True}, {"id": "never", "send": "email", "template": "x"}]))
    assert only(d, Finish) == Finish("completed", "exit_step")
    assert d.enrollment.status == "completed"
    assert not of_type(d, SendAction)


def test_exit_step_with_a_reason_is_an_early_exit() -> None:
    """``exit: <reason>`` names why the customer left early: ``exited`` under that reason."""
    d = start(journey([{"id": "stop", "exit": "not_interested"}]))
    assert only(d, Finish) == Finish("exited", "not_interested")


@pytest.mark.parametrize("end", [[], [{"id": "stop", "exit": True}]])
def test_a_run_whose_last_send_failed_ends_failed(end: list[dict[str, object]]) -> None:
    """A failed last send (template, provider, after fallbacks) ends the run ``failed``, whether
    the journey ends after it or at an ``exit: true`` step — never ``completed``."""
    flow = journey([{"id": "apology", "send": "push", "template": "sorry", "fallback": ["email"]}, *end])
    d = deliver(flow, start(flow), "failed")
    assert only(d, Finish) == Finish("failed", "send_failed")
    assert d.enrollment.status == "failed" and d.enrollment.finished
    assert Record("apology", "failed") in d.actions


def test_only_the_last_send_decides_failed() -> None:
    """An earlier failed send followed by one that went out ends ``completed``; the reverse ``failed``."""
    flow = journey([{"id": "a", "send": "email", "template": "x"}, {"id": "b", "send": "email", "template": "y"}])
    assert only(deliver(flow, deliver(flow, start(flow), "failed"), "sent"), Finish).status == "completed"
    assert only(deliver(flow, deliver(flow, start(flow), "sent"), "failed"), Finish).status == "failed"
