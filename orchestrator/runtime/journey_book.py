"""Which journey version an enrollment runs on."""

from __future__ import annotations

from orchestrator.language.journey import Journey
from orchestrator.store import Store


class JourneyBook:
    """The journeys now live plus every older version an in-flight enrollment may still be on."""

    def __init__(self, store: Store, journeys: dict[str, Journey]) -> None:
        self.store = store
        self.current = dict(journeys)
        self._versions: dict[tuple[str, str], Journey] = {(j.id, j.version): j for j in journeys.values()}
        for journey in journeys.values():
            store.save_journey(journey)

    def get(self, journey_id: str, version: str) -> Journey | None:
        """The exact version an enrollment entered on (so editing a journey strands nobody)."""
        found = self._versions.get((journey_id, version))
        if found is None:
            found = self.store.load_journey(journey_id, version)
            if found is None:
                found = self.current.get(journey_id)  # the version was lost: the explicit rule is "move on"
            if found is not None:
                self._versions[(journey_id, version)] = found
        return found
