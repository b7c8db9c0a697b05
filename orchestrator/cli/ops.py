"""``loyaloop worker``, ``loyaloop scheduler`` and ``loyaloop status``: what ops run and look at."""

from __future__ import annotations

import os
import signal
import sys
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from orchestrator.cli.startup import require_ready
from orchestrator.cli.status_table import COLUMNS, LEGEND, counts_table, decision_rows
from orchestrator.cli.vouchers import stock_lines
from orchestrator.engine.bucketing import is_global_control
from orchestrator.engine.measuring import arm_of
from orchestrator.errors import ConfigurationError
from orchestrator.runtime.compose import build_timekeeping
from orchestrator.runtime.event_queue import BUG, INPUT, KEPT_ASIDE, KEPT_ASIDE_DROPPED, EventQueue
from orchestrator.runtime.unknown_events import unknown_events
from orchestrator.settings import load_settings
from orchestrator.store import Store, keys
from orchestrator.store.timers import Timers
from orchestrator.workers.actors import QUEUES
from orchestrator.workers.broker import dead_worker_sweeper, setup
from orchestrator.workers.scheduler import Scheduler
from orchestrator.workers.serving import keep_announcing, serving

if TYPE_CHECKING:
    from rich.table import Table


@click.command()
@click.option("--processes", "-p", default=2, show_default=True, help="Worker processes.")
@click.option("--threads", "-t", default=8, show_default=True, help="Threads per process.")
def worker(processes: int, threads: int) -> None:
    """Run Dramatiq workers on the Loyaloop actors (same as `dramatiq orchestrator.worker -p N -t M`).

    Checks first every setting the journeys and channels need (REDIS_URL, LOYALOOP_SECRET_KEY,
    LOYALOOP_PUBLIC_URL, each channel's credentials) and every journey and template
    (LOYALOOP_JOURNEYS, LOYALOOP_TEMPLATES); any problem stops it with one line each and exit
    status 1.  `loyaloop doctor` runs the same checks without starting anything."""
    require_ready(load_settings(), command="worker")
    args = [sys.executable, "-m", "dramatiq", "orchestrator.worker", "-p", str(processes), "-t", str(threads)]
    os.execv(sys.executable, args)


@click.command()
@click.option("--idle", default=0.2, show_default=True, help="Seconds to sleep when nothing was due.")
def scheduler(idle: float) -> None:
    """Fire due timers, start scheduled broadcasts and plan birthdays; run as many as you like.

    Needs REDIS_URL and the journeys (LOYALOOP_JOURNEYS, LOYALOOP_TEMPLATES), checked at start-up."""
    import redis

    settings = load_settings()
    found = require_ready(settings, command="scheduler", need_secret=False, need_channels=False)
    assert settings.redis_url is not None  # require_ready refused an unset one
    broker, actors = setup(settings, journeys=found.journeys)
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    parts = build_timekeeping(settings, client, journeys=found.journeys)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    keep_announcing(settings.redis_url, f"scheduler: {found.loaded()}")
    click.echo("scheduler running; Ctrl-C to stop")
    sweep = dead_worker_sweeper(settings, broker)
    Scheduler(
        parts, actors.fire_timers.send, actors.enter_batch.send, drain_events=actors.drain_events.send
    ).run_forever(stop, idle=idle, sweep=sweep)


@click.command()
@click.option("--customer", default=None, help="Show one customer: control group, live runs, measurement windows.")
def status(customer: str | None) -> None:
    """Per journey and step counts and gate decisions, refused inputs, queue depths, queued and kept-aside
    events, due timers and the oldest lag; with --customer, that customer's arms and windows."""
    import time

    import redis
    from rich.console import Console
    from rich.table import Table

    settings = load_settings()
    if not settings.redis_url:
        raise ConfigurationError("REDIS_URL is not set; export REDIS_URL=redis://host:6379/0")
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    store, timers = Store(client), Timers(client)
    console = Console()
    if customer is not None:
        console.print(customer_lines(store, customer, settings.global_holdout))
        return
    table = Table(title="Journeys")
    for column in ("journey", "step", "stat", "count"):
        table.add_column(column, justify="right" if column == "count" else "left")
    for journey_id in sorted(store.journey_ids()):
        for key, count in sorted(store.stats(journey_id).items()):
            step, _, stat = key.partition(":")
            table.add_row(journey_id, step, stat, str(count))
    console.print(table)
    console.print(_decisions_table(store))
    console.print(LEGEND, style="dim")
    now = time.time()
    oldest = timers.next_due()
    lag = max(0.0, now - oldest) if oldest is not None else 0.0
    depths = ", ".join(f"{q}={client.hlen(f'loyaloop:{q}.msgs')}" for q in QUEUES)
    console.print(f"queues: {depths}")
    console.print(_events_lines(EventQueue(client), store.counters()))
    waiting, due, leased = timers.pending(), timers.due_count(now), timers.leased()
    console.print(f"timers: {waiting} waiting, {due} due, {leased} leased, oldest lag {lag:.1f}s")
    unknown = unknown_events(store, settings.journeys_dir)
    console.print(f"unknown events (no journey listens): {', '.join(map(str, unknown)) or 'none'}", soft_wrap=True)
    live = serving(client)
    console.print(
        "serving: "
        + ("; ".join(f"{process} {loaded}" for process, loaded in sorted(live.items())) or "no live process"),
        soft_wrap=True,
    )
    refused = store.refused_counts()
    console.print(f"refused inputs: {refused or 'none'}")
    console.print(f"counters: {store.counters() or 'none'}")
    for line in stock_lines(settings, client):
        console.print(f"vouchers: {line}", highlight=False)
    console.print(control_line(settings.global_holdout))


def control_line(percent: float) -> str:
    """The programme-wide control group as ``status`` shows it."""
    if percent <= 0:
        return "global control group: none (set global_holdout in settings.yaml)"
    return (
        f"global control group: {percent:g} % of customers (by customer id), never messaged by a marketing "
        "journey; `loyaloop status --customer ID` tells one customer's membership"
    )


def customer_lines(store: Store, customer_id: str, percent: float) -> str:
    """One customer's membership of the global control group, live runs with their arm, and open
    measurement windows (what their next events may still count for)."""
    member = is_global_control(customer_id, percent)
    lines = [
        f"customer {customer_id}: " + ("IN" if member else "not in") + f" the global control group ({percent:g} %)",
    ]
    live = store.live_runs(customer_id)
    for stored in store.get_enrollments(customer_id, live):
        enrollment = stored.enrollment
        lines.append(
            f"  live run {enrollment.run_id}: {enrollment.journey_id} {enrollment.journey_version}, "
            f"arm {arm_of(enrollment)}, {enrollment.status} at {enrollment.step_id or '-'}"
        )
    for run_id, window in sorted(store.open_windows(customer_id).items()):
        closes = datetime.fromtimestamp(window.expires, UTC).strftime("%Y-%m-%d %H:%M")
        done = "converted" if window.converted else "not converted"
        lines.append(
            f"  window {run_id}: {window.journey_id} {window.version}, arms {', '.join(window.arms)}, "
            f"entered {window.day}, {done}, {window.orders} orders, open until {closes} UTC"
        )
    return "\n".join(lines)


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
    sections = []
    for journey_id in sorted(store.journey_ids()):
        rows = decision_rows(store.stats(journey_id))
        steps = [[step, *(str(counts[outcome]) for _heading, outcome in COLUMNS)] for step, counts in rows]
        sections.append(([journey_id], steps))
    return counts_table("Gate decisions", [heading for heading, _outcome in COLUMNS], sections)
