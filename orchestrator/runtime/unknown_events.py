"""Events no journey listens to, as ops and marketers see them: per name, with a suggestion.

Workers count them exactly (:meth:`orchestrator.runtime.events.EventRunner.unknown_counter`, in
the pipeline that marks the event done); ``/v1/track`` still answers 202 for them, because a
producer must not break when a journey is switched off.  This module reads the counts back for
``loyaloop status``, ``loyaloop doctor`` and ``/metrics``, each name with the closest event of
the catalogue (``journeys/catalogue.yaml``), or of the stored journeys when there is none.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import ValidationFailed
from orchestrator.language.loader import load_catalogue_for
from orchestrator.language.located import closest
from orchestrator.runtime.journey_book import listened_events
from orchestrator.store import Store


@dataclass(frozen=True)
class UnknownEvent:
    """One event name no journey listened to: how many arrived, and the closest known name."""

    name: str
    count: int
    suggestion: str | None

    def __str__(self) -> str:
        hint = f" (did you mean {self.suggestion!r}?)" if self.suggestion else ""
        return f"{self.name!r}: {self.count}{hint}"


def catalogue_events(journeys_dir: Path | None) -> set[str]:
    """The catalogue's event names; empty when there is no (valid) catalogue."""
    if journeys_dir is None:
        return set()
    try:
        catalogue = load_catalogue_for(journeys_dir)
    except (ValidationFailed, OSError):
        return set()
    return set(catalogue.events) if catalogue is not None else set()


def stored_listened(store: Store) -> set[str]:
    """Event names the journeys stored in Redis (the versions workers loaded last) listen to."""
    names: set[str] = set()
    for journey_id, version in store.journey_ids().items():
        journey = store.load_journey(journey_id, version)
        if journey is not None:
            names |= listened_events(journey)
    return names


def unknown_events(store: Store, journeys_dir: Path | None = None) -> list[UnknownEvent]:
    """Every counted unknown name, most frequent first, each with its did-you-mean."""
    counts = store.unknown_events()
    if not counts:
        return []
    choices = catalogue_events(journeys_dir) or stored_listened(store)
    return [
        UnknownEvent(name, count, closest(name, choices - {name}))
        for name, count in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    ]
