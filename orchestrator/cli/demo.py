"""``loyaloop demo``: run every shipped journey for synthetic customers and print what happened."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from orchestrator.cli.demo_run import HEADERS, default_outbox, default_state, rows, run_demo
from orchestrator.errors import ConfigurationError
from orchestrator.language.loader import load_journeys
from orchestrator.settings import load_settings


@click.command()
@click.option("--customers", default=300, show_default=True, help="How many synthetic customers.")
@click.option("--days", default=120, show_default=True, help="How many simulated days to run.")
@click.option("--seed", default=7, show_default=True, help="Random seed of the synthetic story.")
@click.option("--outbox", type=click.Path(dir_okay=False, path_type=Path), help="Where to write the outbox file.")
@click.option("--journeys", "journeys_dir", type=click.Path(file_okay=False, path_type=Path), help="Journeys folder.")
@click.option(
    "--state",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to keep the in-process state for `loyaloop console` (default: in the temp folder).",
)
@click.option(
    "--flush", is_flag=True, help="With REDIS_URL: empty that Redis database first (it must be a scratch one)."
)
def demo(
    customers: int,
    days: int,
    seed: int,
    outbox: Path | None,
    journeys_dir: Path | None,
    state: Path | None,
    flush: bool,
) -> None:
    """Run every journey for synthetic customers (en and nl, several time zones) on an accelerated
    clock, through the real actors, timers, gate and channels, then print a table per journey and
    step.  With no REDIS_URL everything runs in-process and messages go to a local outbox file."""

    console = Console()
    if console.width < 160:
        console = Console(width=160)  # the table is wide; wrapping it helps nobody
    settings = load_settings(journeys_dir)
    settings.outbox_path = outbox or default_outbox()
    if settings.outbox_path.exists():
        settings.outbox_path.unlink()
    journeys = load_journeys(settings.journeys_dir, settings.templates_dir, vouchers=settings.vouchers)
    if settings.redis_url:
        _scratch(settings.redis_url, flush)
    where = settings.redis_url or "in-process Redis (fakeredis)"
    console.print(
        f"[bold]Loyaloop demo[/bold]: {len(journeys)} journeys, {customers} customers, {days} days on {where}"
    )
    with console.status("simulating…") as status:

        def progress(now: object, events: int) -> None:
            status.update(f"simulating… {now:%Y-%m-%d %H:%M} UTC, {events} events in")

        state = None if settings.redis_url else (state or default_state())
        result = run_demo(settings, journeys, customers=customers, days=days, seed=seed, progress=progress, state=state)
    table = Table(title="Journeys and steps", show_lines=False)
    for header in HEADERS:
        if header in ("journey", "step"):
            table.add_column(header, justify="left", no_wrap=True, min_width=20)
        else:
            table.add_column(header, justify="right")
    for journey_id in sorted(journeys):
        for row in rows(journeys[journey_id], result.stats[journey_id]):
            table.add_row(*row)
        table.add_section()
    console.print(table)
    console.print(
        f"{result.events} events, {result.messages} messages in {result.seconds:.1f}s "
        f"({result.days} simulated days). Outbox: {result.outbox}"
    )
    where_state = f" --state {state}" if state is not None and state != default_state() else ""
    console.print(f"See it in the browser: loyaloop console{where_state}")


def _scratch(url: str, flush: bool) -> None:
    """The demo's simulated months must not mix with real customers (or an earlier demo's state)."""
    import redis

    client = redis.Redis.from_url(url)
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
