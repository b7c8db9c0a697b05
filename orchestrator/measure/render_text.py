"""The report as text: a terminal table (rich, 100 columns), JSON and CSV.

JSON keeps every figure of :class:`~orchestrator.measure.report.Report` with its full precision,
for scripts; CSV is "long" (one figure a row: journey, version, section, subject, metric, value)
so a spreadsheet can pivot it without knowing which arms or steps a journey has.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from datetime import date
from typing import Any

from pydantic import BaseModel
from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from orchestrator.measure.report import Comparison, Report, VersionReport, pp
from orchestrator.measure.statistics import Interval

WIDTH = 100


def to_plain(value: Any) -> Any:
    """Dataclasses, pydantic models and dates as JSON-ready dicts, lists and strings."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, BaseModel):
        return value.model_dump()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    return value


def render_json(report: Report) -> str:
    return json.dumps(to_plain(report), indent=2, sort_keys=False) + "\n"


def render_csv(report: Report) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["journey_id", "version", "section", "subject", "metric", "value"])
    for v in report.versions:
        for row in _version_rows(v):
            writer.writerow([_cell(value) for value in (v.journey_id, v.version, *row)])
    if report.programme is not None:
        for row in _comparison_rows(report.programme):
            writer.writerow([_cell(value) for value in ("*", "*", *row)])
    return out.getvalue()


def _cell(value: Any) -> Any:
    """Text a spreadsheet would run as a formula (a journey name such as ``=HYPERLINK(…)``) is
    prefixed with an apostrophe, which spreadsheets show as text; numbers are left as they are."""
    if isinstance(value, str) and value.startswith(("=", "+", "-", "@", "\t", "\r")):
        return "'" + value
    return value


def _version_rows(v: VersionReport) -> list[list[Any]]:
    rows: list[list[Any]] = [
        ["version", "", "name", v.name],
        ["version", "", "category", v.category],
        ["version", "", "holdout_percent", v.holdout_percent],
        ["version", "", "entrants", v.entrants],
        ["version", "", "verdict", v.verdict],
        ["version", "", "non_numeric_values", v.non_numeric_values],
    ]
    for arm in v.arms:
        counts = arm.counts.model_dump()
        rows += [["arm", arm.arm, name, value] for name, value in counts.items()]
        rows += _interval_rows("arm", arm.arm, "conversion_rate", arm.conversion)
        rows.append(["arm", arm.arm, "revenue_per_customer", arm.revenue_per_customer])
        rows += [["arm", arm.arm, name, value] for name, value in dataclasses.asdict(arm.kpis).items()]
    for c in v.comparisons:
        rows += _comparison_rows(c)
    for step in v.steps:
        rows += [["step", step.step, "reached", step.reached], ["step", step.step, "sent", step.sent]]
        rows += [["step", step.step, f"sent:{ch}", n] for ch, n in step.sent_per_channel.items()]
        rows += [["step", step.step, outcome, n] for outcome, n in step.gate.items()]
    return rows


def _comparison_rows(c: Comparison) -> list[list[Any]]:
    rows: list[list[Any]] = [
        ["comparison", c.label, "entrants_a", c.entrants_a],
        ["comparison", c.label, "entrants_b", c.entrants_b],
        ["comparison", c.label, "converters_a", c.converters_a],
        ["comparison", c.label, "converters_b", c.converters_b],
    ]
    rows += _interval_rows("comparison", c.label, "lift", c.lift)
    if c.relative_lift is not None:
        rows += _interval_rows("comparison", c.label, "relative_lift", c.relative_lift)
    rows += [["comparison", c.label, "p_value", c.p_value], ["comparison", c.label, "test", c.test]]
    if c.revenue is not None:
        rows += _interval_rows("comparison", c.label, "revenue_per_customer_difference", c.revenue.difference)
    rows += _interval_rows("comparison", c.label, "incremental_conversions", c.incremental_conversions)
    if c.incremental_revenue is not None:
        rows += _interval_rows("comparison", c.label, "incremental_revenue", c.incremental_revenue)
    rows += [["comparison", c.label, "mde", c.mde], ["comparison", c.label, "verdict", c.verdict]]
    return rows


def _interval_rows(section: str, subject: str, metric: str, interval: Interval) -> list[list[Any]]:
    return [
        [section, subject, metric, interval.estimate],
        [section, subject, f"{metric}_lower", interval.lower],
        [section, subject, f"{metric}_upper", interval.upper],
    ]


# --- the terminal table ------------------------------------------------------------------------


def render_table(report: Report, width: int = WIDTH) -> str:
    """The report for a terminal, laid out to fit ``width`` columns."""
    console = Console(file=io.StringIO(), width=width, record=True, color_system=None, soft_wrap=False)
    period = f"{_day(report.since)} to {_day(report.until)}"
    console.print(Text(f"Proof of effect, entry days {period}", style="bold"))
    if not report.versions:
        console.print("no journey versions with recorded figures")
    for v in report.versions:
        console.print(_version_block(v))
    if report.programme is not None:
        console.print(Text(f"\nProgramme: {report.programme.verdict}", style="bold"))
        console.print(_comparisons_table([report.programme]))
    return console.export_text()


def _version_block(v: VersionReport) -> Group:
    title = Text(
        f"\n{v.name} ({v.journey_id} {v.version}, {v.category}, holdout {v.holdout_percent:g} %): "
        f"{v.entrants:,} entrants",
        style="bold",
    )
    parts: list[Any] = [title, Text(f"verdict: {v.verdict}")]
    if v.non_numeric_values:
        parts.append(Text(f"{v.non_numeric_values:,} events without a numeric value (counted as 0)"))
    arms = _table("arm", "entrants", "conv.", "rate", "95 % CI", "rev/cust", "repeat", "orders/c", "redeem", "NPS")
    for arm in v.arms:
        c, k = arm.counts, arm.kpis
        arms.add_row(
            arm.arm.removeprefix("split:"),
            f"{c.entrants:,}",
            f"{c.converters:,}",
            _pct(arm.conversion.estimate),
            f"{pp(arm.conversion.lower)}-{pp(arm.conversion.upper)}",
            f"{arm.revenue_per_customer:,.2f}",
            _pct(k.repeat_purchase_rate),
            f"{k.orders_per_customer:.2f}",
            _pct(k.redemption_rate),
            "-" if k.nps is None else f"{k.nps:+.0f}",
        )
    parts.append(arms)
    if v.comparisons:
        parts.append(_comparisons_table(v.comparisons))
    if v.steps:
        steps = _table("step", "reached", "sent", "per channel", *v.gate, labels=[row.step for row in v.steps])
        for row in v.steps:
            channels = "\n".join(f"{ch} {n:,}" for ch, n in row.sent_per_channel.items()) or "-"
            steps.add_row(
                row.step, f"{row.reached:,}", f"{row.sent:,}", channels, *(f"{n:,}" for n in row.gate.values())
            )
        parts.append(steps)
    return Group(*parts)


def _comparisons_table(comparisons: list[Comparison]) -> Group:
    table = _table(
        "comparison", "lift pp", "95 % CI", "relative", "p", "rev/cust diff (95 % CI)", "incr. conv. (95 % CI)"
    )
    for c in comparisons:
        relative = "-" if c.relative_lift is None else f"{c.relative_lift.estimate:+.0%}"
        revenue = "-" if c.revenue is None else _range(c.revenue.difference, "{:+,.2f}", "{:,.2f}")
        table.add_row(
            c.label,
            f"{100 * c.lift.estimate:+.1f}",
            f"{pp(c.lift.lower)} to {pp(c.lift.upper)}",
            relative,
            f"{c.p_value:.2g} {c.test}",
            revenue,
            _range(c.incremental_conversions, "{:+,.0f}", "{:,.0f}"),
        )
    return Group(table, *(Text(f"  {c.label}: {c.verdict}") for c in comparisons))


def _table(first: str, *numeric: str, labels: list[str] | None = None) -> Table:
    """A table whose first column keeps its labels whole up to 20 characters (wider ones fold)."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, expand=False, padding=(0, 1))
    widest = max((len(label) for label in labels or []), default=len(first))
    table.add_column(first, overflow="fold", min_width=min(widest, 20), max_width=24)
    for heading in numeric:
        table.add_column(heading, justify="right", overflow="fold")
    return table


def _range(interval: Interval, point: str, limit: str, scale: float = 1.0) -> str:
    low, high = limit.format(interval.lower * scale), limit.format(interval.upper * scale)
    return f"{point.format(interval.estimate * scale)} ({low} to {high})"


def _pct(rate: float) -> str:
    return f"{pp(rate)}%"


def _day(day: date | None) -> str:
    return "(any)" if day is None else day.isoformat()
