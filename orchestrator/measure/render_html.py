"""The report as one self-contained HTML page: tables and inline SVG charts, no script, no
network, nothing fetched when it is opened (so it can be mailed or archived as it is).

Every value reaches the page through Jinja2 with autoescape on: a journey name such as
``<script>`` shows as text.  The charts are the only markup let through unescaped, and they are
matplotlib's own SVG, whose labels matplotlib escapes (:mod:`orchestrator.measure.charts`).
"""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from orchestrator.measure.charts import report_charts
from orchestrator.measure.report import Report, pp
from orchestrator.measure.statistics import Interval

_TEMPLATE = "report.html.j2"


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(Path(__file__).parent),
        autoescape=True,
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters.update(
        {
            "int_": lambda n: f"{n:,}",
            "num": lambda x, digits: f"{x:,.{digits}f}",
            "pct": lambda rate: f"{pp(rate)} %",
            "pp_": lambda rate: f"{100 * rate:+.1f}" if rate else "0.0",
            "p_": lambda p: f"{p:.2g}",
            "range_": _range,
            "safe_svg": _svg,
            "verdict_class": _verdict_class,
        }
    )
    return env


def render_html(report: Report) -> str:
    """The page for ``report``, charts included."""
    template = _environment().get_template(_TEMPLATE)
    return template.render(
        report=report,
        charts=report_charts(report),
        since=report.since.isoformat() if report.since else "(any)",
        until=report.until.isoformat() if report.until else "(any)",
    )


def _range(interval: Interval, digits: int) -> str:
    return f"{interval.estimate:+,.{digits}f} ({interval.lower:,.{digits}f} to {interval.upper:,.{digits}f})"


def _svg(svg: str) -> Markup:
    """matplotlib's SVG, trusted: it is generated here, and matplotlib escapes the text it holds."""
    return Markup(svg)


def _verdict_class(verdict: str) -> str:
    if verdict.endswith(", keep") or " keep " in verdict:
        return "keep"
    if verdict.endswith(", stop"):
        return "stop"
    if verdict.startswith("not enough data"):
        return "wait"
    return ""
