"""Proof of effect, the pure part: what a stored decision adds to the measurement record, and what
an event does to a customer's open measurement windows.

Counting is intention-to-treat from entry.  Every entry opens a *window* (one small record per run,
kept with the customer, see :func:`orchestrator.store.keys.runs`) that lives as long as the
journey's goal window and the KPI window after entry, whatever becomes of the run: a conversion
eleven days after entry counts for the arm the customer entered in even when the run ended on day
two.  The runtime writes what :func:`tally` returns inside the very compare-and-set that stores the
decision, and what :func:`event_hits` returns inside the script that marks the event counted, so a
re-driven message or a redelivered event never counts twice.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from orchestrator.engine.context import context, holds_quietly
from orchestrator.engine.enrollment import Decision, Enrollment, EventArrived, Record
from orchestrator.engine.localtime import aware
from orchestrator.language.journey import Goal, Journey
from orchestrator.language.profile import Profile
from orchestrator.measure.figures import CONTROL, HOLDOUT, TREATED, split_arm_name
from orchestrator.settings import MeasureSettings

__all__ = [
    "STEP_OUTCOMES",
    "Hit",
    "Tally",
    "Window",
    "arm_of",
    "day_of",
    "entry_shape",
    "event_hits",
    "number_at",
    "tally",
    "trigger_tag",
]

#: A step's recorded stat → the outcome counted in the measurement record.  Every way a send can
#: end without reaching the customer for a reason of theirs (no address, no consent, suppressed,
#: every fallback used up) is ``suppressed``; a provider's or template's failure is ``failed``.
STEP_OUTCOMES: dict[str, str] = {
    "sent": "sent",
    "holdout": "held",
    "capped": "capped",
    "deferred": "deferred",
    "suppressed": "suppressed",
    "no_consent": "suppressed",
    "no_address": "suppressed",
    "undeliverable": "suppressed",
    "failed": "failed",
}


def day_of(moment: datetime) -> str:
    """The UTC day (``YYYY-MM-DD``) figures are filed under."""
    return aware(moment).astimezone(UTC).date().isoformat()


def epoch(moment: datetime) -> float:
    return aware(moment).timestamp()


def arm_of(enrollment: Enrollment) -> str:
    """The arm a run entered in: the programme-wide control, the journey's holdout, or treated."""
    if enrollment.control:
        return CONTROL
    return HOLDOUT if enrollment.holdout else TREATED


@dataclass(frozen=True)
class Window:
    """One entry's open measurement window, and what the customer did in it so far."""

    journey_id: str
    version: str
    #: The arms the entry counts for: its own and, once it passed a split, ``split:<step>:<arm>``.
    arms: tuple[str, ...]
    #: Entry day (UTC) the figures are filed under.
    day: str
    #: Epoch seconds of entry, and the windows' lengths in seconds.
    entered: float
    goal_window: float
    kpi_window: float
    #: Epoch seconds after which nothing counts any more (the record may go).
    expires: float
    #: A tag of the event that started the run (:func:`trigger_tag`): it is never its own conversion.
    trigger_tag: str = ""
    #: Epoch seconds of the first message delivered to the customer (treated only), or None.
    first_sent: float | None = None
    converted: bool = False
    revenue: float = 0.0
    converted_after_message: bool = False
    orders: int = 0
    order_revenue: float = 0.0
    redeemed: bool = False
    nps_answered: bool = False


@dataclass(frozen=True)
class Tally:
    """What one stored decision adds to the record (all of it written by its compare-and-set)."""

    #: (arm, entry day, figure, amount): an entrant, in its arm or a split arm.
    arms: tuple[tuple[str, str, str, int], ...] = ()
    #: (step id, day, outcome, amount): ``reached``, ``sent``, ``sent:<channel>``, ``held``, …
    steps: tuple[tuple[str, str, str, int], ...] = ()
    #: The window an entry opens.
    window: Window | None = None
    #: Epoch seconds of a message this decision saw delivered (stamped on the window once).
    first_sent: float | None = None
    #: A split arm the run joined after entry (added to its window's arms).
    split_arm: str | None = None

    def __bool__(self) -> bool:
        return bool(self.arms or self.steps or self.window or self.first_sent is not None or self.split_arm)


def goal_window(goal: Goal, rules: MeasureSettings) -> timedelta:
    return goal.within if goal.within is not None else rules.goal_window


def tally(journey: Journey | None, decision: Decision, *, created: bool, rules: MeasureSettings) -> Tally:
    """The counts a decision earns: an entrant when it ``created`` the run, each step it ran as
    ``reached``, each send outcome it recorded, and a split arm joined by a treated run."""
    enrollment = decision.enrollment
    arm = arm_of(enrollment)
    entry_day = day_of(enrollment.entered_at)
    day = day_of(enrollment.updated_at)
    arms: list[tuple[str, str, str, int]] = []
    steps: list[tuple[str, str, str, int]] = [(step, day, "reached", 1) for step in decision.reached]
    first_sent: float | None = None
    split: str | None = None
    for action in decision.actions:
        if not isinstance(action, Record) or action.step_id is None:
            continue
        outcome = STEP_OUTCOMES.get(action.stat)
        if outcome is not None:
            steps.append((action.step_id, day, outcome, 1))
            if outcome == "sent":
                if action.channel:
                    steps.append((action.step_id, day, f"sent:{action.channel}", 1))
                first_sent = epoch(enrollment.updated_at)
        elif action.stat.startswith("split:") and arm == TREATED:
            split = split_arm_name(action.step_id, action.stat.removeprefix("split:"))
            arms.append((split, entry_day, "entrants", 1))
    if not created:
        return Tally(tuple(arms), tuple(steps), None, first_sent, split)
    arms.insert(0, (arm, entry_day, "entrants", 1))
    window = open_window(journey, enrollment, rules, (arm, split) if split else (arm,)) if watched(journey) else None
    return Tally(tuple(arms), tuple(steps), window, first_sent)


def entry_shape(decision: Decision) -> Hashable:
    """Everything :func:`tally` reads of a decision that creates a run, but the journey and the
    rules: two entries into one journey with equal shapes earn equal tallies.  The entrants of a
    cohort chunk mostly share one shape (arm, steps, day, window), so the chunk tallies each shape
    once instead of every entrant (a test holds this in step with :func:`tally`)."""
    enrollment = decision.enrollment
    return (
        enrollment.control,
        enrollment.holdout,
        enrollment.journey_id,
        enrollment.journey_version,
        enrollment.entered_at,
        enrollment.updated_at,
        enrollment.trigger_event_id,
        decision.reached,
        tuple([(a.step_id, a.stat, a.channel) for a in decision.actions if isinstance(a, Record)]),
    )


def watched(journey: Journey | None) -> bool:
    """Whether an entry opens a measurement window: every marketing journey's, and a transactional
    one's when it has goals or a holdout.  A receipt journey with neither has nothing to compare
    (no control arm, no conversion), so its customers carry no window (about 80 bytes of Redis
    each while it is open); its entrants and steps are counted all the same."""
    return journey is None or journey.category == "marketing" or bool(journey.goals) or journey.holdout > 0


def open_window(
    journey: Journey | None, enrollment: Enrollment, rules: MeasureSettings, arms: tuple[str, ...]
) -> Window:
    goals = journey.goals if journey is not None else []
    goal_seconds = max((goal_window(goal, rules) for goal in goals), default=rules.goal_window).total_seconds()
    kpi_seconds = rules.kpi_window.total_seconds()
    entered = epoch(enrollment.entered_at)
    return Window(
        journey_id=enrollment.journey_id,
        version=enrollment.journey_version,
        arms=arms,
        day=day_of(enrollment.entered_at),
        entered=entered,
        goal_window=goal_seconds,
        kpi_window=kpi_seconds,
        expires=entered + max(goal_seconds, kpi_seconds),
        trigger_tag=trigger_tag(enrollment.trigger_event_id or ""),
    )


def trigger_tag(event_id: str) -> str:
    """A short tag of the event that started a run, kept in its window: that event is never the
    run's own conversion.  Four base-36 digits of a SHA-256 keep the window short; two events of
    one customer sharing a tag is a one-in-1.7-million chance per pair, and would only leave one
    event uncounted."""
    if not event_id:
        return ""
    return base36(int.from_bytes(hashlib.sha256(event_id.encode()).digest()[:4], "big") % 36**4)


def base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        number, rest = divmod(number, 36)
        text = digits[rest] + text
        if not number:
            return text


@dataclass(frozen=True)
class Hit:
    """What one event means for one open window (the store's script applies it, once per event)."""

    run_id: str
    goal: bool = False
    value: float = 0.0
    non_numeric: bool = False
    order: bool = False
    order_value: float = 0.0
    order_non_numeric: bool = False
    redeemed: bool = False
    #: The survey's 0-10 score, or None when the event is no (valid) answer.
    nps: int | None = None


def number_at(properties: dict[str, Any], path: str) -> float | None:
    """The number at ``path`` (``properties.amount`` or ``amount``) in an event's properties, None
    when it is missing or not a number (text, a boolean, NaN)."""
    parts = path.split(".")
    if parts[0] == "properties" and len(parts) > 1:
        parts = parts[1:]
    value: Any = properties
    for part in parts:
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def event_hits(
    windows: dict[str, Window],
    journey_of: Callable[[str, str], Journey | None],
    event: EventArrived,
    profile: Profile,
    rules: MeasureSettings,
    now: datetime,
) -> list[Hit]:
    """What an event does to each of the customer's open windows: a goal met within its window
    (with its value), and the KPI events within the KPI window.  Events after the window, and the
    very event that started the run, count for nothing.

    Windows are timed by the runtime's clock when the event is handled (``now``), as the entry
    was: a customer's events are handled in order, so an event queued after the trigger is never
    taken for one before the entry, however far the queue is behind its events' own timestamps."""
    at = epoch(now)
    hits: list[Hit] = []
    for run_id, window in windows.items():
        if at < window.entered or trigger_tag(event.event_id) == window.trigger_tag or at > window.expires:
            continue
        goal, value, non_numeric = _goal(
            journey_of(window.journey_id, window.version), window, event, at, profile, rules, now
        )
        in_kpi = at <= window.entered + window.kpi_window
        order = in_kpi and event.name == rules.order_event
        order_value = number_at(event.properties, rules.order_value) if order else None
        redeemed = in_kpi and event.name == rules.redemption_event
        nps: int | None = None
        if in_kpi and event.name == rules.nps_event:
            score = number_at(event.properties, rules.nps_score)
            nps = int(score) if score is not None and score.is_integer() and 0 <= score <= 10 else None
        if goal or order or redeemed or nps is not None:
            hits.append(
                Hit(
                    run_id,
                    goal=goal,
                    value=value,
                    non_numeric=non_numeric,
                    order=order,
                    order_value=order_value or 0.0,
                    order_non_numeric=order and order_value is None,
                    redeemed=redeemed,
                    nps=nps,
                )
            )
    return hits


def _goal(
    journey: Journey | None,
    window: Window,
    event: EventArrived,
    at: float,
    profile: Profile,
    rules: MeasureSettings,
    now: datetime,
) -> tuple[bool, float, bool]:
    """Whether the event meets one of the journey's goal events within that goal's window, and its
    value (0 and ``non_numeric`` when the ``value`` path holds no number).  Goals that are only a
    profile condition (no ``event``) are not counted as conversions here: they have no moment."""
    if journey is None:
        return False, 0.0, False
    for goal in journey.goals:
        if goal.event != event.name or at > window.entered + goal_window(goal, rules).total_seconds():
            continue
        if goal.if_ is not None and not holds_quietly(goal.if_, context(profile, None, event, now, journey)):
            continue
        if goal.value is None:
            return True, 0.0, False
        value = number_at(event.properties, goal.value)
        return True, value or 0.0, value is None
    return False, 0.0, False
