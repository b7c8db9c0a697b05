"""``loyaloop worker``, ``loyaloop scheduler`` and ``loyaloop status``: what ops run and look at."""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import TYPE_CHECKING

import click

from orchestrator.cli.status_table import COLUMNS, decision_rows
from orchestrator.errors import ConfigurationError
from orchestrator.runtime.compose import build_timekeeping
from orchestrator.runtime.event_queue import BUG, INPUT, KEPT_ASIDE, KEPT_ASIDE_DROPPED, EventQueue
from orchestrator.settings import load_settings
from orchestrator.store import Store, keys
from orchestrator.store.connect import open_redis
from orchestrator.store.timers import Timers
from orchestrator.workers.broker import dead_worker_sweeper, setup
from orchestrator.workers.queue_broker import queue_depths
from orchestrator.workers.scheduler import Scheduler

if TYPE_CHECKING:
    from rich.table import Table


@click.command()
@click.option("--processes", "-p", default=2, show_default=True, help="Worker processes.")
@click.option("--threads", "-t", default=8, show_default=True, help="Threads per process.")
def worker(processes: int, threads: int) -> None:
    """Run Dramatiq workers on the Loyaloop actors (same as `dramatiq orchestrator.worker -p N -t M`)."""
    args = [sys.executable, "-m", "dramatiq", "orchestrator.worker", "-p", str(processes), "-t", str(threads)]
    os.execv(sys.executable, args)


@click.command()
@click.option("--idle", default=0.2, show_default=True, help="Seconds to sleep when nothing was due.")
def scheduler(idle: float) -> None:
    """Fire due timers, start scheduled broadcasts and plan birthdays; run as many as you like."""
    settings = load_settings()
    if not settings.redis_url:
        raise ConfigurationError("REDIS_URL is not set; export REDIS_URL=redis://host:6379/0")
    broker, actors = setup(settings)
    client = open_redis(settings)
    parts = build_timekeeping(settings, client)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    click.echo("scheduler running; Ctrl-C to stop")
    sweep = dead_worker_sweeper(settings, broker)
    Scheduler(
        parts, actors.fire_timers.send, actors.enter_batch.send, drain_events=actors.drain_events.send
    ).run_forever(stop, idle=idle, sweep=sweep)


@click.command()
def status() -> None:
    """Per journey and step counts and gate decisions, refused inputs, queue depths, queued and kept-aside
    events, due timers and the oldest lag."""
    import time

    from rich.console import Console
    from rich.table import Table

    settings = load_settings()
    if not settings.redis_url:
        raise ConfigurationError("REDIS_URL is not set; export REDIS_URL=redis://host:6379/0")
    client = open_redis(settings)
    broker, actors = setup(settings)
    store, timers = Store(client), Timers(client)
    console = Console()
    table = Table(title="Journeys")
    for column in ("journey", "step", "stat", "count"):
        table.add_column(column, justify="right" if column == "count" else "left")
    for journey_id in sorted(store.journey_ids()):
        for key, count in sorted(store.stats(journey_id).items()):
            step, _, stat = key.partition(":")
            table.add_row(journey_id, step, stat, str(count))
    console.print(table)
    console.print(_decisions_table(store))
    now = time.time()
    oldest = timers.next_due()
    lag = max(0.0, now - oldest) if oldest is not None else 0.0
    depths = ", ".join(f"{q}={n}" for q, n in queue_depths(broker, actors.queues).items())
    console.print(f"queues: {depths}")
    console.print(_events_lines(EventQueue(client), store.counters()))
    waiting, due, leased = timers.pending(), timers.due_count(now), timers.leased()
    console.print(f"timers: {waiting} waiting, {due} due, {leased} leased, oldest lag {lag:.1f}s")
    refused = store.refused_counts()
    console.print(f"refused inputs: {refused or 'none'}")
    console.print(f"counters: {store.counters() or 'none'}")


def _events_lines(events: EventQueue, counters: dict[str, int]) -> str:
    """Queued events and those kept aside: how many the list holds now, and how many were ever kept
    aside for bad input and for a bug (replayable once it is fixed) or dropped past the list's cap
    (gone for good)."""
    bad, bugs = counters.get(KEPT_ASIDE[INPUT], 0), counters.get(KEPT_ASIDE[BUG], 0)
    dropped = counters.get(KEPT_ASIDE_DROPPED, 0)
    return (
        f"events: {events.depth()} queued, {events.dead()} kept aside in {keys.dead_events()}\n"
        f"kept aside in all: {bad} bad input, {bugs} bug; {dropped} dropped (cap {events.dead_kept})"
    )


def _decisions_table(store: Store) -> Table:
    """The fatigue gate's decisions per journey and send step (sent, capped, deferred, …)."""
    from rich.table import Table

    table = Table(title="Gate decisions")
    table.add_column("journey")
    table.add_column("step")
    for heading, _outcome in COLUMNS:
        table.add_column(heading, justify="right")
    for journey_id in sorted(store.journey_ids()):
        for step, counts in decision_rows(store.stats(journey_id)):
            table.add_row(journey_id, step, *(str(counts[outcome]) for _heading, outcome in COLUMNS))
    return table
