"""Journeys, profiles and signals for the engine's tests, all on one fixed clock.

The engine reads no clock, so every test hands it ``NOW`` (a Monday) and the helpers below walk a
run the way the runtime would: enter, report the delivery, fire the timer that was scheduled.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from orchestrator.engine import advance, enter
from orchestrator.engine.enrollment import Decision, Delivered, EventArrived, ScheduleTimer, SendAction, TimerFired
from orchestrator.language.journey import Journey
from orchestrator.language.profile import Profile

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday


def journey(steps: list[dict[str, Any]], **fields: Any) -> Journey:
    """A journey ``flow`` started by ``customer.signed_up``; ``fields`` override any top-level key."""
    data: dict[str, Any] = {"id": "flow", "name": "Flow", "trigger": {"event": "customer.signed_up"}, "steps": steps}
    data.update(fields)
    data.setdefault("version", "v1")
    return Journey.model_validate(data)


def profile(customer_id: str = "c1", **fields: Any) -> Profile:
    return Profile(id=customer_id, **fields)


def of_type(decision: Decision, kind: type) -> list[Any]:
    return [action for action in decision.actions if isinstance(action, kind)]


def only(decision: Decision, kind: type) -> Any:
    """The one action of ``kind``: a second send or timer in one decision is itself a failure."""
    found = of_type(decision, kind)
    assert len(found) == 1, decision.actions
    return found[0]


def start(flow: Journey, who: Profile | None = None, *, trigger: dict[str, Any] | None = None) -> Decision:
    """Enter ``who`` (customer ``c1`` by default) as run ``run1`` at ``NOW``."""
    return enter(flow, who or profile(), trigger=trigger or {}, run_id="run1", now=NOW)


def event(name: str, **properties: Any) -> EventArrived:
    return EventArrived(name=name, properties=properties, event_id=f"e-{name}", timestamp=NOW)


def fire(flow: Journey, decision: Decision, who: Profile | None = None, *, at: datetime | None = None) -> Decision:
    """Fire the timer the decision scheduled, at its due time (or ``at``)."""
    timer = only(decision, ScheduleTimer)
    return advance(flow, decision.enrollment, who or profile(), TimerFired(timer.revision), now=at or timer.due)


def deliver(flow: Journey, decision: Decision, outcome: Any = "sent", who: Profile | None = None) -> Decision:
    """Report the decision's one send as decided with ``outcome``."""
    send = only(decision, SendAction)
    return advance(flow, decision.enrollment, who or profile(), Delivered(send.step_id, outcome), now=NOW)


#: send → 2d → send with fallback → 3d → branch on orders → exit, or the SMS offer.
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

#: Wait up to 3d for an iOS ``app.opened``: thanks on the event, a nudge on the timeout.
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

#: A 20/30/50 split into three sends.
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

#: Win-back: every order restarts a 60-day countdown; an order after a message is the goal.
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
