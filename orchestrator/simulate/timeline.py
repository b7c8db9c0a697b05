"""One customer's story from a simulation's files, for ``loyaloop explain CUSTOMER --simulation DIR``
and ``loyaloop console --simulation DIR``: their events (from the history, when given), entries and
ends of runs, every step's decision with its reason, and the messages that would have gone out, in
time order.  The reading itself is :class:`orchestrator.runtime.story.FolderStory` (the console,
a layer below, uses it too); this module adds the simulated history's events."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

from orchestrator.runtime.story import FolderStory, Moment
from orchestrator.simulate.source import Line

__all__ = ["Moment", "event_moment", "events_of", "timeline"]


def event_moment(line: Line) -> Moment:
    """A history line as a timeline row."""
    at = line.at.isoformat()
    if line.kind == "identify":
        return Moment(at, "identify", "", "", "profile: " + ", ".join(sorted(line.attributes)))
    return Moment(at, "event", "", "", f"{line.event} {json.dumps(line.properties, sort_keys=True)}")


def events_of(lines: Iterable[Line]) -> Callable[[str], list[Moment]]:
    """Each customer's history lines as moments, looked up by customer id (indexed once)."""
    by_customer: dict[str, list[Moment]] = {}
    for line in lines:
        by_customer.setdefault(line.customer_id, []).append(event_moment(line))
    return lambda customer_id: list(by_customer.get(customer_id, []))


def timeline(folder: Path, customer_id: str, events: Iterable[Line] = ()) -> list[Moment]:
    """Every moment of one customer's simulated story, sorted by time (ties: events first)."""
    mine = [line for line in events if line.customer_id == customer_id]
    return FolderStory(folder, events_of(mine)).moments(customer_id)
