"""``loyaloop simulate``: a shop's event history through the real runtime, on a virtual clock.

Nothing is sent and no credential is read; the output folder gets ``messages.jsonl`` (every
message that would have gone out), ``decisions.jsonl`` (every send that did not, and why),
``runs.jsonl`` (entries and ends), ``calendar.json`` (the fatigue calendar) and the proof-of-effect
report of the simulated period (``report.txt``, ``report.json``, ``report.html``).  See docs/simulate.md.
"""

from __future__ import annotations

import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from orchestrator.errors import InputError
from orchestrator.language.timeparse import parse_duration
from orchestrator.simulate.backend import BACKENDS, Backend
from orchestrator.simulate.calendar import weekly_channel_totals
from orchestrator.simulate.compare import compare, write_comparison
from orchestrator.simulate.simulation import STATE_FILE, Result, Setup, load_setup, simulate, write_output
from orchestrator.simulate.source import (
    History,
    Line,
    parse_mapping,
    read_history,
    read_profiles,
    unknown_events,
)

#: Bad lines listed one by one before the rest are only counted.
SHOWN_WARNINGS = 20


@click.command()
@click.argument("events", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--journeys", "journeys_dir", type=click.Path(file_okay=False, path_type=Path), help="Journeys folder.")
@click.option(
    "--templates", "templates_dir", type=click.Path(file_okay=False, path_type=Path), help="Templates folder."
)
@click.option("--profiles", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="JSONL identify lines.")
@click.option("--map", "mapping", help="CSV columns: customer_id=cust,event=type,timestamp=ts,properties.amount=value")
@click.option("--from", "start", help="Simulate from this date or time (ISO 8601; UTC when no offset).")
@click.option("--until", help="Simulate until this date or time (default: the last line's time).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("simulation"), show_default=True)
@click.option("--seed", default=0, show_default=True, help="Seeds event ids left out of the file and link signing.")
@click.option("--tolerance", default="1h", show_default=True, help="How far out of time order a line may be.")
@click.option("--compare", "other", type=click.Path(file_okay=False, path_type=Path), help="A second journeys folder.")
@click.option("--backend", type=click.Choice(BACKENDS), default="auto", show_default=True, help="The private Redis.")
@click.option(
    "--state/--no-state",
    "keep_state",
    default=True,
    show_default=True,
    help=f"Keep the simulated Redis in OUT/{STATE_FILE} for `loyaloop console --simulation OUT`.",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def simulate_command(
    events: Path,
    journeys_dir: Path | None,
    templates_dir: Path | None,
    profiles: Path | None,
    mapping: str | None,
    start: str | None,
    until: str | None,
    out: Path,
    seed: int,
    tolerance: str,
    other: Path | None,
    backend: Backend,
    keep_state: bool,
    quiet: bool,
) -> None:
    """Run the EVENTS history (JSONL as `loyaloop import` reads it, or CSV with --map) through
    every journey, with the gate, timers and templates of production, and write what would have
    been sent and what was held back."""
    console = Console(stderr=True)
    # Stopped by a TERM signal, the run still stops its private redis-server (the finally blocks run).
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))
    try:
        window = parse_duration(tolerance)
    except ValueError as exc:
        raise InputError(f"--tolerance {tolerance!r}: {exc}", field="tolerance") from None
    setup = load_setup(journeys_dir, templates_dir, seed)
    history = read_history(events, mapping=parse_mapping(mapping), tolerance=window, seed=seed)
    _warn_lines(console, history)
    lines = _window(history.lines, _moment(start, "--from"), _moment(until, "--until"))
    if profiles is not None:
        lines[:0] = read_profiles(profiles, lines[0].at if lines else history.lines[0].at)
    if not any(line.kind == "track" for line in lines):
        raise InputError(f"{events}: no event falls between --from and --until; nothing to simulate", field="path")
    end = _moment(until, "--until") or lines[-1].at
    for name, count in sorted(unknown_events(lines, setup.known_events).items()):
        console.print(
            f"[yellow]warning[/yellow]: {events}: event {name!r} ({count} lines) is not in the catalogue and no "
            "journey uses it; simulated all the same",
            soft_wrap=True,
        )
    meta = {"events": str(events.resolve()), "map": mapping or ""}
    state = out / STATE_FILE if keep_state else None
    result = _run(console, setup, lines, end, backend, quiet, "simulating", state=state, meta=meta)
    calendar = write_output(out, result)
    _summary(console, result, calendar, out)
    if other is not None:
        second_setup = load_setup(other, templates_dir, seed)
        second = _run(console, second_setup, lines, end, backend, quiet, f"simulating with {other}")
        write_output(out / "compare", second)
        diff = compare(result.messages, result.decisions, second.messages, second.decisions)
        write_comparison(out / "comparison.json", diff)
        _comparison(console, diff, other, out)


def _run(
    console: Console,
    setup: Setup,
    lines: list[Line],
    end: datetime,
    backend: Backend,
    quiet: bool,
    what: str,
    *,
    state: Path | None = None,
    meta: dict[str, str] | None = None,
) -> Result:
    began = time.perf_counter()
    columns = (
        TextColumn(f"{what} [bold]{{task.fields[day]}}[/bold]"),
        BarColumn(),
        TextColumn("{task.completed:,.0f}/{task.total:,.0f} lines"),
        TextColumn("{task.fields[rate]} lines/s"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, disable=quiet, transient=False) as bar:
        task = bar.add_task(what, total=len(lines), day="", rate="0")

        def progress(now: datetime, fed: int) -> None:
            rate = fed / max(time.perf_counter() - began, 1e-6)
            bar.update(task, completed=fed, day=f"{now:%Y-%m-%d}", rate=f"{rate:,.0f}")

        result = simulate(
            setup,
            lines,
            until=end,
            backend=backend,
            progress=progress,
            warn=lambda text: console.print(text),
            state=state,
            meta=meta,
        )
        bar.update(task, completed=len(lines))
    return result


def _moment(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"{option} {text!r} is not a date or time, e.g. 2026-01-31 or 2026-01-31T12:00Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


def _window(lines: list[Line], start: datetime | None, end: datetime | None) -> list[Line]:
    """The lines between ``start`` and ``end``; identify lines before ``start`` still describe the
    customers, so they are kept and applied at ``start``."""
    kept: list[Line] = []
    for line in lines:
        if end is not None and line.at > end:
            break
        if start is not None and line.at < start:
            if line.kind == "identify":
                kept.append(Line(line.number, start, "identify", line.customer_id, attributes=line.attributes))
            continue
        kept.append(line)
    return kept


def _warn_lines(console: Console, history: History) -> None:
    for text in history.warnings[:SHOWN_WARNINGS]:
        # A warning is never folded: its ``file:line:`` stays whole for a reader's search or an editor's jump.
        console.print(f"[yellow]warning[/yellow]: {text}", highlight=False, soft_wrap=True)
    if len(history.warnings) > SHOWN_WARNINGS:
        console.print(f"[yellow]warning[/yellow]: … and {len(history.warnings) - SHOWN_WARNINGS} more lines skipped")


def _summary(console: Console, result: Result, calendar: dict[str, Any], out: Path) -> None:
    stats = result.stats
    console.print(
        f"{stats.lines:,} lines simulated in {stats.seconds:.1f}s: {calendar['messages']:,} messages to "
        f"{calendar['customers_reached']:,} customers, {sum(calendar['held'].values()):,} sends held back"
    )
    table = Table(title="Messages per customer per week")
    table.add_column("messages in the week", justify="right")
    table.add_column("customer-weeks", justify="right")
    for count, pairs in calendar["per_customer_week"].items():
        table.add_row(count, f"{pairs:,}")
    console.print(table)
    if calendar["cap_hits"]:
        caps = Table(title="Cap hits per rule")
        caps.add_column("rule (outcome)")
        caps.add_column("sends", justify="right")
        for rule, count in calendar["cap_hits"].items():
            caps.add_row(rule, f"{count:,}")
        console.print(caps)
    weeks = weekly_channel_totals(calendar)
    if weeks:
        channels = sorted({name for _week, counts in weeks for name in counts})
        busiest = sorted(weeks, key=lambda item: -sum(item[1].values()))[:5]
        table = Table(title="Busiest weeks (messages per channel)")
        table.add_column("week")
        for name in channels:
            table.add_column(name, justify="right")
        for week, counts in busiest:
            table.add_row(week, *(f"{counts.get(name, 0):,}" for name in channels))
        console.print(table)
    console.print(
        f"Written to {out}/: messages.jsonl, decisions.jsonl, runs.jsonl, calendar.json, "
        "report.txt, report.json and report.html (proof of effect of the simulated period)"
    )
    if (out / STATE_FILE).is_file():
        console.print(f"See it in the browser: loyaloop console --simulation {out}")


def _comparison(console: Console, diff: dict[str, Any], other: Path, out: Path) -> None:
    table = Table(title=f"Current journeys vs {other}")
    table.add_column("journey / channel")
    table.add_column("messages", justify="right")
    table.add_column(str(other), justify="right")
    table.add_column("change", justify="right")
    for key, row in diff["messages_by_journey_channel"].items():
        table.add_row(key, f"{row['a']:,}", f"{row['b']:,}", f"{row['b'] - row['a']:+,}")
    console.print(table)
    reached = diff["customers_reached"]
    console.print(f"customers reached: {reached['a']:,} → {reached['b']:,}")
    console.print(f"Written to {out}/comparison.json (and the second run's files in {out}/compare/)")
