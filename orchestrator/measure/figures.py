"""The shape of the measurement record: counts per journey version, arm and entry day, and per step.

Why counts and not rates: every figure a report shows is derived from these sums at read time, so
they can be added over days and versions, re-read after a crash, and compared with ground truth in
the drills.  Revenue is kept as a sum and a sum of squares of *per-customer* revenue within the
window, which is all the Welch interval needs.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: The arms of a journey's own test.  Split arms are named ``split:<step id>:<arm name>``.
TREATED = "treated"
HOLDOUT = "holdout"
#: Customers of the programme-wide control group (``global_holdout`` in settings), who entered a
#: marketing journey but are never messaged by one.
CONTROL = "control"

#: Step outcomes counted per step; ``sent`` is also counted per channel as ``sent:<channel>``.
StepOutcome = Literal["reached", "sent", "held", "capped", "deferred", "suppressed", "failed"]


def split_arm_name(step_id: str, arm: str) -> str:
    return f"split:{step_id}:{arm}"


class ArmCounts(BaseModel):
    """What one arm's entrants did within the conversion / KPI window after they entered."""

    model_config = ConfigDict(extra="forbid")

    entrants: int = 0
    #: Entrants who met a goal within the window (each counted once).
    converters: int = 0
    #: Goal events within the window (a customer may convert more than once when goals allow it).
    conversions: int = 0
    #: Per-customer goal value within the window: sum and sum of squares over entrants.
    revenue_sum: float = 0.0
    revenue_sumsq: float = 0.0
    #: Goal events whose ``value`` path was missing or not a number (counted as 0).
    non_numeric_values: int = 0
    #: Treated arm only, information: converters within the window after the first delivered message.
    converters_after_message: int = 0
    #: Loyalty KPIs over the KPI window after entry.
    repeat_purchasers: int = 0
    orders: int = 0
    #: Order events whose ``order_value`` path was missing or not a number (counted as 0).
    non_numeric_order_values: int = 0
    order_revenue_sum: float = 0.0
    order_revenue_sumsq: float = 0.0
    redeemers: int = 0
    nps_responses: int = 0
    nps_promoters: int = 0
    nps_detractors: int = 0

    def __add__(self, other: ArmCounts) -> ArmCounts:
        return ArmCounts(**{name: getattr(self, name) + getattr(other, name) for name in ArmCounts.model_fields})


class VersionFigures(BaseModel):
    """Everything recorded for one journey version.  Days are entry days (UTC, ISO ``YYYY-MM-DD``)
    for arms, and days the outcome happened for steps."""

    model_config = ConfigDict(extra="forbid")

    journey_id: str
    version: str
    name: str = ""
    category: Literal["marketing", "transactional"] = "marketing"
    holdout_percent: float = 0.0
    #: arm → entry day → counts.
    arms: dict[str, dict[str, ArmCounts]] = Field(default_factory=dict)
    #: step id → day → outcome (``reached``, ``sent``, ``sent:<channel>``, ``held``, …) → count.
    steps: dict[str, dict[str, dict[str, int]]] = Field(default_factory=dict)
    #: Step ids in journey order (for funnels).
    step_order: list[str] = Field(default_factory=list)

    def arm_totals(self, since: date | None = None, until: date | None = None) -> dict[str, ArmCounts]:
        """Each arm's counts summed over entry days in ``[since, until]`` (both inclusive), day by day
        in calendar order: money is summed in floating point, and the days arrive in the order of a
        Redis hash, which differs from one server to the next, so another order would change the
        last digits of the same figures between two readings."""
        return {
            arm: _summed(c for day, c in sorted(days.items()) if _within(day, since, until))
            for arm, days in self.arms.items()
        }

    def step_totals(self, since: date | None = None, until: date | None = None) -> dict[str, dict[str, int]]:
        """Each step's outcome counts summed over days in ``[since, until]``."""
        totals: dict[str, dict[str, int]] = {}
        for step_id, days in self.steps.items():
            summed = totals.setdefault(step_id, {})
            for day, outcomes in days.items():
                if _within(day, since, until):
                    for outcome, count in outcomes.items():
                        summed[outcome] = summed.get(outcome, 0) + count
        return totals


def _summed(counts: Iterable[ArmCounts]) -> ArmCounts:
    """The sum of many counts, added as plain numbers and validated once (a report sums thousands)."""
    names = tuple(ArmCounts.model_fields)
    total = dict.fromkeys(names, 0)
    for one in counts:
        fields = one.__dict__
        for name in names:
            total[name] += fields[name]
    return ArmCounts(**total)


def _within(day: str, since: date | None, until: date | None) -> bool:
    if since is None and until is None:
        return True  # every day: no date to parse
    when = date.fromisoformat(day)
    return (since is None or when >= since) and (until is None or when <= until)
