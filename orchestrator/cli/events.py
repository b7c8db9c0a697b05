"""``loyaloop replay-events``: queue again the events a worker kept aside, once their cause is fixed.

An event kept aside for a bug may already have changed the profile (an order counted) without
running the journeys; replaying it finishes that work without counting the order twice.  Events
kept aside for bad input are refused again unless what refused them changed, so they are replayed
only when asked for.
"""

from __future__ import annotations

import click

from orchestrator.runtime.event_queue import BUG, INPUT
from orchestrator.workers.client import connect


@click.command(name="replay-events")
@click.option("--bad-input", is_flag=True, help="Also replay events kept aside for bad input (not only for a bug).")
@click.option("--limit", type=click.IntRange(min=1), help="Replay at most this many, oldest first.")
def replay_events(bad_input: bool, limit: int | None) -> None:
    """Queue kept-aside events again (see `loyaloop status` for how many are kept aside).

    Example: loyaloop replay-events --limit 100
    """
    kinds = frozenset({BUG, INPUT}) if bad_input else frozenset({BUG})
    replayed = connect().replay_kept_aside(kinds, limit)
    click.echo(f"queued {replayed} kept-aside event(s) again")
