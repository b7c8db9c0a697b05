"""What conditions and values see: the five context names, the trigger's and the awaited
event's properties as ``event``, and ``update`` values rendered as templates."""

from __future__ import annotations

from orchestrator.engine import advance, context
from orchestrator.engine.enrollment import Finish, UpdateProfile
from tests.engine.builders import NOW, event, fire, journey, of_type, only, profile, start

# ----------------------------------------------------------------------------------------------
# The names.


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


# ----------------------------------------------------------------------------------------------
# Update values.


def test_update_value_that_is_one_expression_keeps_its_type() -> None:
    """``{{ profile.points + 5 }}`` stores a number, not the string '15'."""
    flow = journey([{"id": "calc", "update": {"set": {"points": "{{ profile.points + 5 }}", "plain": 3}}}])
    d = start(flow, profile(attributes={"points": 10}))
    assert only(d, UpdateProfile).set == {"points": 15, "plain": 3}


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


def test_update_render_error_is_a_condition_error() -> None:
    """A value that cannot render for this customer ends the run cleanly."""
    flow = journey([{"id": "calc", "update": {"set": {"label": "x {{ profile.missing }}"}}}])
    d = start(flow)
    assert only(d, Finish).reason == "condition_error"
    assert not of_type(d, UpdateProfile)
