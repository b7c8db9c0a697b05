"""``loyaloop explain CUSTOMER_ID``: one customer's story.

With ``--simulation DIR`` it reads a simulation's files (``loyaloop simulate --out DIR``): events
(with ``--events``, the history that was simulated), entries, each step's decision with its reason,
and the messages.  Against production (``REDIS_URL``) it shows what Redis holds now: the profile's
consent and addresses (whether each channel has one, never the address itself), the live runs
with their step, status and next timer, the finished runs still kept, and the timeline from the
customer's newest events (those no journey listens to and those refused marked so), journal
(entries, ends, every held send with its reason, staff actions), send log (with provider
feedback) and consent history.  Both timelines are built by
:mod:`orchestrator.runtime.story`, the code the console's customer page uses.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click
import redis
from rich.console import Console
from rich.table import Table

from orchestrator.errors import ConfigurationError
from orchestrator.gate.consent import read_consent
from orchestrator.runtime.story import Moment, StoreStory
from orchestrator.settings import load_settings
from orchestrator.simulate.source import parse_mapping, read_history
from orchestrator.simulate.timeline import timeline
from orchestrator.store import Store


@click.command()
@click.argument("customer_id")
@click.option("--simulation", type=click.Path(file_okay=False, path_type=Path), help="A simulation's --out folder.")
@click.option("--events", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="The simulated history.")
@click.option("--map", "mapping", help="The history's CSV mapping, as given to simulate.")
def explain(customer_id: str, simulation: Path | None, events: Path | None, mapping: str | None) -> None:
    """Show CUSTOMER_ID's timeline: from a simulation (--simulation) or from production (REDIS_URL)."""
    console = Console(width=max(Console().width, 140))
    if simulation is not None:
        _simulated(console, customer_id, simulation, events, mapping)
    else:
        _production(console, customer_id)


def _simulated(console: Console, customer_id: str, folder: Path, events: Path | None, mapping: str | None) -> None:
    lines = read_history(events, mapping=parse_mapping(mapping)).lines if events is not None else []
    moments = timeline(folder, customer_id, lines)
    if not moments:
        console.print(f"{customer_id!r} does not appear in the simulation at {folder}")
        return
    console.print(_table(f"{customer_id} in the simulation at {folder}", moments))


def _table(title: str, moments: list[Moment]) -> Table:
    table = Table(title=title)
    for header in ("time (UTC)", "what", "journey", "step", "details"):
        table.add_column(header, overflow="fold")
    for moment in moments:
        table.add_row(moment.at[:19].replace("T", " "), moment.kind, moment.journey_id, moment.step_id, moment.text)
    return table


def _production(console: Console, customer_id: str) -> None:
    settings = load_settings()
    if not settings.redis_url:
        raise ConfigurationError(
            "REDIS_URL is not set; set it to explain a production customer, or use --simulation DIR"
        )
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    try:
        store = Store(client)
        profile = store.get_profile(customer_id)
        if profile is None:
            console.print(f"no customer {customer_id!r} in the Redis at REDIS_URL")
            return
        consent = {**profile.consent, **read_consent(client, customer_id)}
        console.print(f"[bold]{customer_id}[/bold]  zone {profile.timezone or settings.default_timezone}, "
                      f"locale {profile.locale or settings.default_locale}")  # fmt: skip
        addresses = {"email": bool(profile.email), "sms": bool(profile.phone), "push": bool(profile.push_tokens)}
        console.print(
            "addresses: " + ", ".join(f"{name} {'yes' if has else 'none'}" for name, has in addresses.items())
        )
        console.print(
            "consent: " + (", ".join(f"{k} {'yes' if v else 'no'}" for k, v in sorted(consent.items())) or "none")
        )
        live = store.live_runs(customer_id)
        table = Table(title="live runs")
        for header in ("journey", "run", "status", "step", "entered", "next timer (UTC)"):
            table.add_column(header)
        for stored in store.get_enrollments(customer_id, sorted(live)):
            run = stored.enrollment
            due = datetime.fromtimestamp(stored.timer[1], UTC).strftime("%Y-%m-%d %H:%M") if stored.timer else ""
            table.add_row(
                run.journey_id, run.run_id, run.status, run.step_id or "", f"{run.entered_at:%Y-%m-%d %H:%M}", due
            )
        console.print(table)
        last = store.last_entries(customer_id)
        if last:
            console.print("last entries: " + ", ".join(f"{j} {at:%Y-%m-%d %H:%M}" for j, at in sorted(last.items())))
        told = StoreStory(client, store).read(customer_id)
        if told.ended:
            finished = Table(title="finished runs")
            for header in ("journey", "version", "run", "entered", "ended", "how"):
                finished.add_column(header)
            for ended in told.ended:
                finished.add_row(
                    ended.journey_id,
                    ended.version,
                    ended.run_id,
                    _when(ended.entered_at),
                    _when(ended.ended_at),
                    ended.how,
                )
            console.print(finished)
        console.print(_table(f"{customer_id}: timeline", told.moments))
    finally:
        client.close()


def _when(moment: datetime | None) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M}" if moment is not None else ""
