"""``loyaloop demo``: run every shipped journey for synthetic customers and print what happened."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from orchestrator.cli.demo_ledger import ledger_lines
from orchestrator.cli.demo_run import SEND_HEADINGS, default_outbox, default_state, journey_row, run_demo, step_rows
from orchestrator.cli.report import DEFAULT_HTML, FORMATS, produce_report
from orchestrator.cli.status_table import JOURNEY_COLUMNS, LEGEND, counts_table
from orchestrator.errors import ConfigurationError
from orchestrator.language.loader import load_journeys
from orchestrator.settings import Settings, load_settings, without_password
from orchestrator.store.connect import open_redis


@click.command()
@click.option("--customers", default=300, show_default=True, help="How many synthetic customers.")
@click.option("--days", default=120, show_default=True, help="How many simulated days to run.")
@click.option("--seed", default=7, show_default=True, help="Random seed of the synthetic story.")
@click.option(
    "--outbox",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Keep the outbox (every message as a JSON line, sent_at in simulated time) in this file; "
    "without it the outbox is a temporary file removed when the demo ends.",
)
@click.option("--journeys", "journeys_dir", type=click.Path(file_okay=False, path_type=Path), help="Journeys folder.")
@click.option(
    "--templates",
    "templates_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Templates folder (default: $LOYALOOP_TEMPLATES, else templates/ beside the journeys folder).",
)
@click.option(
    "--state",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to keep the in-process state for `loyaloop console` (default: in the temp folder).",
)
@click.option(
    "--flush", is_flag=True, help="With REDIS_URL: empty that Redis database first (it must be a scratch one)."
)
@click.option(
    "--report",
    "report_format",
    type=click.Choice((*FORMATS, "none")),
    default="table",
    show_default=True,
    help="Then the proof-of-effect report of the run's own counts (as `loyaloop report`), in this format.",
)
@click.option(
    "--report-out",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"Write the report to this file (html goes to {DEFAULT_HTML} without it).",
)
def demo(
    customers: int,
    days: int,
    seed: int,
    outbox: Path | None,
    journeys_dir: Path | None,
    templates_dir: Path | None,
    state: Path | None,
    flush: bool,
    report_format: str,
    report_out: Path | None,
) -> None:
    """Run every journey for synthetic customers (en and nl, several time zones) on an accelerated
    clock, through the real actors, timers, gate and channels, then print a table per journey and
    step.  With no REDIS_URL everything runs in-process and messages go to a local outbox file."""

    console = Console()
    settings = load_settings(journeys_dir)
    if templates_dir is not None:
        settings.templates_dir = templates_dir
    settings.outbox_path = outbox or default_outbox()
    if settings.outbox_path.exists():
        settings.outbox_path.unlink()
    journeys = load_journeys(
        settings.journeys_dir, settings.templates_dir, vouchers=settings.vouchers, endpoints=settings.endpoints
    )
    if settings.redis_url:
        _scratch(settings, flush)
    where = without_password(settings.redis_url) if settings.redis_url else "in-process Redis (fakeredis)"
    console.print(
        f"[bold]Loyaloop demo[/bold]: {len(journeys)} journeys, {customers} customers, {days} days on {where}"
    )
    with console.status("simulating…") as status:

        def progress(now: object, events: int) -> None:
            status.update(f"simulating… {now:%Y-%m-%d %H:%M} UTC, {events} events in")

        state = None if settings.redis_url else (state or default_state())
        result = run_demo(settings, journeys, customers=customers, days=days, seed=seed, progress=progress, state=state)
    ordered = [journeys[journey_id] for journey_id in sorted(journeys)]
    summary: list[tuple[list[str], list[list[str]]]] = [(journey_row(j, result.stats[j.id]), []) for j in ordered]
    console.print(counts_table("Journeys", [heading for heading, _stat in JOURNEY_COLUMNS], summary))
    sends = [([j.id], step_rows(j, result.stats[j.id])) for j in ordered]
    console.print(counts_table("Sends and the gate's decisions", SEND_HEADINGS, sends))
    console.print(LEGEND, style="dim")
    for line in ledger_lines(result.ledger, result.vouchers):
        console.print(line, highlight=False)
    if outbox is None:
        # A few megabytes per run: not left behind in the temp folder unless asked for.
        result.outbox.unlink(missing_ok=True)
    kept = str(result.outbox) if outbox is not None else "not kept (--outbox FILE keeps it)"
    console.print(
        f"{result.events} events, {result.messages} messages in {result.seconds:.1f}s "
        f"({result.days} simulated days). Outbox: {kept}"
    )
    if report_format != "none":
        # The embedded store lives only in this process: its counts are reported before it goes.
        text = produce_report(result.figures, fmt=report_format)
        target = report_out or (DEFAULT_HTML if report_format == "html" else None)
        if target is None:
            click.echo(text, nl=False)
        else:
            target.write_text(text, encoding="utf-8")
            console.print(f"report: {target}")
    where_state = f" --state {state}" if state is not None and state != default_state() else ""
    console.print(f"See it in the browser: loyaloop console{where_state}")


def _scratch(settings: Settings, flush: bool) -> None:
    """The demo's simulated months must not mix with real customers (or an earlier demo's state).
    On a cluster, FLUSHDB and DBSIZE go to every primary (redis-py's routing)."""
    client = open_redis(settings)
    try:
        if flush:
            client.flushdb()
        elif client.dbsize():
            raise ConfigurationError(
                "the Redis database at REDIS_URL is not empty, and the demo writes synthetic customers and "
                "simulated time into it; point REDIS_URL at a scratch database (e.g. redis://host:6379/15) "
                "and add --flush to empty it first"
            )
    finally:
        client.close()
