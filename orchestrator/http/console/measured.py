"""The console's reading of the measurement records (``orchestrator.measure.figures``), once a store
reader hands them over: entrants per day, conversion per arm, sends and gate outcomes per day.

Everything here is a sum or a ratio of recorded counts, nothing estimated.  Lift with its interval
is statistics and belongs to the measurement report; it arrives through ``LiftSource``
(:mod:`~orchestrator.http.console.extensions`), not from here.

The source is a :class:`FiguresSource`, e.g. ``Store.version_figures``: the figures of every version
of one journey, or of every journey (``None``).  Without one the console shows what the journey
stats hold and says the rest is not recorded.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Protocol

from markupsafe import Markup

from orchestrator.http.console.extensions import Panel
from orchestrator.measure.figures import ArmCounts, VersionFigures

#: Gate outcomes the calendar shows per day beside the sends.
GATE_OUTCOMES = ("capped", "deferred")


class FiguresSource(Protocol):
    def __call__(self, journey_id: str | None, /) -> list[VersionFigures]:
        """Every recorded version's figures of ``journey_id`` (all journeys for None)."""


@dataclass(frozen=True)
class JourneyMeasure:
    """One journey's entries over recent days (all arms, all versions)."""

    entrants_7d: int
    entrants_30d: int
    #: Entrants per day for the last 30 days, oldest first (today last).
    daily: tuple[int, ...]


def entrants_by_day(figures: Iterable[VersionFigures]) -> dict[str, dict[date, int]]:
    """Journey id → entry day → entrants, summed over versions and arms."""
    found: dict[str, dict[date, int]] = {}
    for version in figures:
        days = found.setdefault(version.journey_id, {})
        for per_day in version.arms.values():
            for day, counts in per_day.items():
                when = date.fromisoformat(day)
                days[when] = days.get(when, 0) + counts.entrants
    return found


def journey_measures(figures: Iterable[VersionFigures], today: date) -> dict[str, JourneyMeasure]:
    """Per journey: entrants in the last 7 and 30 days (today included) and the daily series."""
    result: dict[str, JourneyMeasure] = {}
    for journey_id, days in entrants_by_day(figures).items():
        daily = tuple(days.get(today - timedelta(days=back), 0) for back in range(29, -1, -1))
        result[journey_id] = JourneyMeasure(sum(daily[-7:]), sum(daily), daily)
    return result


def sparkline(values: tuple[int, ...], *, width: int = 90, height: int = 18) -> Markup:
    """A tiny inline SVG polyline of ``values`` (numbers only, so nothing to escape)."""
    peak = max(values, default=0) or 1
    step = width / max(len(values) - 1, 1)
    points = " ".join(f"{i * step:.1f},{height - 1 - (v / peak) * (height - 2):.1f}" for i, v in enumerate(values))
    return Markup(
        f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="entrants per day, last {len(values)} days, peak {max(values, default=0)}">'
        f'<polyline fill="none" stroke="#1d4ed8" stroke-width="1.5" points="{points}"/></svg>'
    )


def arm_totals(figures: Iterable[VersionFigures]) -> dict[str, ArmCounts]:
    """Each arm's counts summed over versions and entry days."""
    totals: dict[str, ArmCounts] = {}
    for version in figures:
        for arm, counts in version.arm_totals().items():
            totals[arm] = totals.get(arm, ArmCounts()) + counts
    return totals


def conversion_panel(journey_id: str, figures: Iterable[VersionFigures]) -> Panel | None:
    """Per arm: entrants, converters and their share, goal events, goal value; None when nothing is
    recorded for the journey.  The share is converters / entrants of the records, no estimate."""
    mine = [version for version in figures if version.journey_id == journey_id]
    totals = arm_totals(mine)
    if not totals:
        return None
    rows = []
    for arm, counts in sorted(totals.items()):
        share = f"{counts.converters / counts.entrants:.1%}" if counts.entrants else "—"
        rows.append(
            (
                arm,
                f"{counts.entrants:,}",
                f"{counts.converters:,}",
                share,
                f"{counts.conversions:,}",
                f"{counts.revenue_sum:,.2f}",
            )
        )
    return Panel(
        title="Conversion per arm (recorded)",
        columns=("arm", "entrants", "converters", "converted", "goal events", "goal value"),
        rows=tuple(rows),
        note=f"All versions and entry days of {journey_id}, from the measurement records. Lift and its interval "
        "come from the measurement report.",
    )


def reached_counts(figures: Iterable[VersionFigures]) -> dict[str, int]:
    """Step id → runs that reached it, summed over versions and days."""
    reached: dict[str, int] = {}
    for version in figures:
        for step_id, outcomes in version.step_totals().items():
            reached[step_id] = reached.get(step_id, 0) + outcomes.get("reached", 0)
    return reached


def per_day(figures: Iterable[VersionFigures]) -> tuple[dict[date, dict[str, int]], dict[date, dict[str, int]]]:
    """(sends per day and channel, capped and deferred per day) over every journey's steps, by the day
    each outcome happened."""
    sends: dict[date, dict[str, int]] = {}
    gate: dict[date, dict[str, int]] = {}
    for version in figures:
        for days in version.steps.values():
            for day, outcomes in days.items():
                when = date.fromisoformat(day)
                for outcome, count in outcomes.items():
                    kind, _, channel = outcome.partition(":")
                    if kind == "sent" and channel:
                        counted = sends.setdefault(when, {})
                        counted[channel] = counted.get(channel, 0) + count
                    elif outcome in GATE_OUTCOMES:
                        counted = gate.setdefault(when, {})
                        counted[outcome] = counted.get(outcome, 0) + count
    return sends, gate
