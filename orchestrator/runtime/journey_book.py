"""Which journey version an enrollment runs on, and which event names the journeys listen to."""

from __future__ import annotations

from collections.abc import Iterable

from orchestrator.engine.derive import ORDER_EVENTS
from orchestrator.language.journey import EventTrigger, Journey, WaitForEvent, WaitStep
from orchestrator.store import Store

#: Events Loyaloop itself records from provider webhooks: facts, never a producer's typo.
PROVIDER_EVENTS = frozenset({"email.delivered", "email.opened", "email.clicked", "sms.delivered"})


def listened_events(journey: Journey) -> set[str]:
    """Every event name a journey reacts to: its trigger, goals, exit rules and event waits."""
    names = {goal.event for goal in (*journey.goals, *journey.exit_when) if goal.event}
    if isinstance(journey.trigger, EventTrigger):
        names.add(journey.trigger.event)
    for step in journey.steps:
        if isinstance(step, WaitStep) and isinstance(step.wait, WaitForEvent):
            names.add(step.wait.event)
    return names


def known_events(journeys: Iterable[Journey]) -> frozenset[str]:
    """Names an event may carry without being counted as unknown: those the journeys listen to,
    the order events that update the profile's order figures, and the providers' own."""
    listened = {name for journey in journeys for name in listened_events(journey)}
    return frozenset(listened) | ORDER_EVENTS | PROVIDER_EVENTS


class JourneyBook:
    """The journeys now live plus every older version an in-flight enrollment may still be on."""

    def __init__(self, store: Store, journeys: dict[str, Journey]) -> None:
        self.store = store
        self.current = dict(journeys)
        self._versions: dict[tuple[str, str], Journey] = {(j.id, j.version): j for j in journeys.values()}
        #: Names no event should be counted as unknown under (the current journeys' only: an old
        #: version's wait still catches its event, but a producer's typo must not hide behind it).
        self.known_events = known_events(self.current.values())
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
