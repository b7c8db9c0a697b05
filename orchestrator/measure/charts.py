"""The report's charts as inline SVG, drawn with matplotlib.

Why matplotlib: it is the best-kept plotting library for Python, writes SVG with no browser, no
JavaScript and no network, and the project already uses it for the benchmarks' plots.  Its SVG
backend escapes every label it writes; text is kept as ``<text>`` (``svg.fonttype: none``) so the
page stays small and searchable, mathtext is off so a ``$`` in a journey name is only a dollar,
and the ids are salted with a constant so the same figures give the same file.

matplotlib is imported inside the functions: only ``--format html`` pays for loading it.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import date
from typing import TYPE_CHECKING, Any

from orchestrator.measure.report import Comparison, Report, StepRow

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

_RC: dict[str, Any] = {
    "svg.fonttype": "none",
    "svg.hashsalt": "loyaloop-report",
    "text.parse_math": False,
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
_COLOURS = ("#2b6cb0", "#dd6b20", "#2f855a", "#c53030", "#6b46c1", "#718096")


@contextmanager
def _figure(width: float, height: float) -> Iterator[tuple[Figure, Axes]]:
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context(_RC):  # type: ignore[arg-type]
        figure = Figure(figsize=(width, height), layout="constrained")
        yield figure, figure.add_subplot()


def _svg(figure: Figure) -> str:
    out = io.StringIO()
    figure.savefig(out, format="svg", metadata={"Date": None, "Creator": None})
    text = out.getvalue()
    text = text[text.index("<svg") :]
    # The RDF metadata block names outside vocabularies; the page needs none of it.
    start, end = text.find("<metadata>"), text.find("</metadata>")
    if start != -1 and end != -1:
        text = text[:start] + text[end + len("</metadata>") :]
    return text


def funnel_chart(steps: list[StepRow]) -> str:
    """Entrants reaching each step and messages sent from it, top step first."""
    names = [row.step for row in steps][::-1]
    with _figure(9.0, 0.4 * len(steps) + 0.9) as (figure, axes):
        positions = range(len(names))
        axes.barh(
            [p + 0.2 for p in positions], [r.reached for r in steps][::-1], 0.4, label="reached", color=_COLOURS[0]
        )
        axes.barh([p - 0.2 for p in positions], [r.sent for r in steps][::-1], 0.4, label="sent", color=_COLOURS[1])
        axes.set_yticks(list(positions), names)
        axes.set_xlabel("customers")
        axes.legend(loc="lower right", frameon=False)
        return _svg(figure)


def lift_chart(comparisons: list[Comparison]) -> str:
    """Each lift in percentage points with its 95 % interval as a bar, zero marked."""
    labels = [c.label for c in comparisons][::-1]
    with _figure(9.0, 0.3 * len(comparisons) + 1.0) as (figure, axes):
        for position, c in enumerate(comparisons[::-1]):
            colour = _COLOURS[2] if c.lift.lower > 0 else _COLOURS[3] if c.lift.upper < 0 else _COLOURS[5]
            axes.plot([100 * c.lift.lower, 100 * c.lift.upper], [position, position], color=colour, linewidth=5)
            axes.plot([100 * c.lift.estimate], [position], "o", color="black", markersize=4)
        axes.axvline(0, color="#444", linewidth=0.8)
        axes.set_yticks(range(len(labels)), labels)
        axes.set_ylim(-0.7, len(labels) - 0.3)
        axes.set_xlabel("lift in conversion, percentage points (95 % CI)")
        return _svg(figure)


def daily_chart(daily: dict[str, dict[str, int]], ylabel: str) -> str:
    """One line per series (a channel, a gate outcome) over days."""
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num

    days = sorted(daily)
    when = [float(date2num(date.fromisoformat(day))) for day in days]  # type: ignore[no-untyped-call]
    series = sorted({name for counts in daily.values() for name in counts})
    with _figure(9.0, 2.8) as (figure, axes):
        locator = AutoDateLocator(maxticks=10)  # type: ignore[no-untyped-call]
        axes.xaxis.set_major_locator(locator)
        axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
        for index, name in enumerate(series):
            axes.plot(
                when,
                [daily[day].get(name, 0) for day in days],
                marker="o",
                markersize=3,
                label=name,
                color=_COLOURS[index % len(_COLOURS)],
            )
        axes.set_ylabel(ylabel)
        if series:
            axes.legend(frameon=False, fontsize=8)
        return _svg(figure)


def report_charts(report: Report) -> dict[str, str]:
    """Every chart of the page, keyed by name (``funnel:<journey>:<version>`` per version)."""
    charts: dict[str, str] = {}
    lifts = [_named(c, v.name) for v in report.versions for c in v.comparisons if c.kind in ("holdout", "control")]
    if report.programme is not None:
        lifts.append(report.programme)
    if lifts:
        charts["lift"] = lift_chart(lifts)
    if report.daily_sends:
        charts["sends"] = daily_chart(report.daily_sends, "sends per day")
    if report.daily_gate:
        charts["gate"] = daily_chart(report.daily_gate, "gate outcomes per day")
    for v in report.versions:
        if v.steps:
            charts[f"funnel:{v.journey_id}:{v.version}"] = funnel_chart(v.steps)
    return charts


def _named(c: Comparison, name: str) -> Comparison:
    return replace(c, label=f"{name}: {c.label}")
