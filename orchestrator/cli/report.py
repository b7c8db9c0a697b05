"""``loyaloop report``: proof of effect per journey version, as a table, JSON, CSV or an HTML page.

The counts come from ``Store.version_figures`` (exact records kept by the runtime); everything else
is computed at read time by :mod:`orchestrator.measure`.  :func:`produce_report` takes the figures
themselves, so the rendering paths are tested without Redis.

Bad input is one line (``error: …``, exit 1), never a traceback: an unknown journey id, a date that
does not parse, ``--since`` after ``--until``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Protocol, cast

import click

from orchestrator.errors import ConfigurationError, InputError
from orchestrator.measure.figures import VersionFigures
from orchestrator.measure.render_html import render_html
from orchestrator.measure.render_text import render_csv, render_json, render_table
from orchestrator.measure.report import Report, build_report
from orchestrator.settings import load_settings
from orchestrator.store import Store

FORMATS = ("table", "json", "csv", "html")
#: Where ``--format html`` writes without ``--out``: a page printed on a terminal helps nobody.
DEFAULT_HTML = Path("loyaloop-report.html")


class FiguresSource(Protocol):
    """What the report reads: the store's exact counts per journey version."""

    def version_figures(self, journey_id: str | None = None) -> list[VersionFigures]: ...


def parse_day(option: str, value: str | None) -> date | None:
    """An ISO day (``2026-11-01``) or None; anything else is an :class:`InputError` naming it."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise InputError(f"{option} {value!r} is not a date; expected YYYY-MM-DD, e.g. 2026-11-01") from None


def select(figures: list[VersionFigures], journeys: Sequence[str]) -> list[VersionFigures]:
    """The versions of the named journeys (all without names); an unknown name is refused."""
    if not journeys:
        return figures
    known = sorted({f.journey_id for f in figures})
    unknown = [j for j in journeys if j not in known]
    if unknown:
        listed = ", ".join(known) if known else "none recorded yet"
        raise InputError(f"unknown journey {unknown[0]!r}; journeys with figures: {listed}")
    wanted = set(journeys)
    return [f for f in figures if f.journey_id in wanted]


def render(report: Report, fmt: str) -> str:
    if fmt == "table":
        return render_table(report)
    if fmt == "json":
        return render_json(report)
    if fmt == "csv":
        return render_csv(report)
    if fmt == "html":
        return render_html(report)
    raise InputError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")


def produce_report(
    figures: list[VersionFigures],
    journeys: Sequence[str] = (),
    since: str | None = None,
    until: str | None = None,
    fmt: str = "table",
) -> str:
    """The rendered report for the named journeys (all by default) over ``[since, until]``."""
    first, last = period(since, until)
    return render(build_report(select(figures, journeys), first, last), fmt)


def period(since: str | None, until: str | None) -> tuple[date | None, date | None]:
    """``--since`` and ``--until`` as days, in order."""
    first, last = parse_day("--since", since), parse_day("--until", until)
    if first is not None and last is not None and first > last:
        raise InputError(f"--since {first.isoformat()} is after --until {last.isoformat()}; swap them")
    return first, last


def open_source() -> FiguresSource:
    """The store at ``REDIS_URL``.  The embedded (in-process) store lives only as long as the
    process that runs it, so a separate ``loyaloop report`` needs the server the workers use."""
    import redis

    settings = load_settings()
    if not settings.redis_url:
        raise ConfigurationError(
            "REDIS_URL is not set; the report reads the counts the workers keep in Redis: "
            "export REDIS_URL=redis://host:6379/0"
        )
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    return cast(FiguresSource, Store(client))


def read_figures(source: FiguresSource, journeys: Sequence[str]) -> list[VersionFigures]:
    """One journey's versions when one is named (a smaller read); every version otherwise, so that
    an unknown name can be told apart from a journey with no figures yet."""
    if len(journeys) == 1:
        found = source.version_figures(journeys[0])
        if found:
            return found
    return source.version_figures()


@click.command()
@click.argument("journeys", nargs=-1)
@click.option("--since", metavar="DATE", help="First entry day to count (YYYY-MM-DD, UTC); default: the first.")
@click.option("--until", metavar="DATE", help="Last entry day to count (YYYY-MM-DD, UTC, included); default: the last.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"Write to this file (--format html writes {DEFAULT_HTML} without it).",
)
def report(journeys: tuple[str, ...], since: str | None, until: str | None, fmt: str, out: Path | None) -> None:
    """Proof of effect per journey version: entrants, funnel, sends, gate outcomes, conversions,
    revenue, lift against the holdout and the global control with 95 % intervals, KPIs, and a
    verdict.  Read a test at its pre-set end (docs/measuring.md)."""
    # Dates are checked before Redis is reached, so a typo is told at once.
    period(since, until)
    figures = read_figures(open_source(), journeys)
    text = produce_report(figures, journeys, since, until, fmt)
    target = out or (DEFAULT_HTML if fmt == "html" else None)
    if target is None:
        click.echo(text, nl=False)
        return
    target.write_text(text, encoding="utf-8")
    click.echo(f"wrote {target} ({len(text):,} bytes)", err=True)
