"""Journey versions, per-step stats and the refused and metrics counters."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from orchestrator.language.journey import Journey
from orchestrator.store import keys
from orchestrator.store.base import StoreBase

#: Distinct unknown event names counted by name; the rest are counted together under OTHER_NAMES.
UNKNOWN_NAMES_KEPT = 1000
OTHER_NAMES = "(other names)"


class JourneyStore(StoreBase):
    """Every journey version ever loaded."""

    def save_journey(self, journey: Journey) -> None:
        """Keep every version ever loaded: in-flight enrollments finish on the one they entered."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(keys.journey_version(journey.id, journey.version), journey.model_dump_json(by_alias=True), nx=True)
        pipe.hset(keys.journeys_index(), journey.id, journey.version)
        pipe.execute()

    def load_journey(self, journey_id: str, version: str) -> Journey | None:
        raw = self.redis.get(keys.journey_version(journey_id, version))
        return Journey.model_validate_json(raw) if raw else None

    def journey_ids(self) -> dict[str, str]:
        return dict(self.redis.hgetall(keys.journeys_index()))


class StatsStore(StoreBase):
    """Counters for reports and metrics."""

    def record(self, journey_id: str, step_id: str | None, stat: str, amount: int = 1) -> None:
        self.redis.hincrby(keys.journey_stats(journey_id), f"{step_id or '_journey'}:{stat}", amount)

    def record_many(self, records: Iterable[tuple[str, str | None, str, int]], pipe: Any = None) -> None:
        """Count many stats; on ``pipe`` when given (no round trip of its own), else in one pipeline."""
        target = pipe if pipe is not None else self.redis.pipeline(transaction=False)
        for journey_id, step_id, stat, amount in records:
            target.hincrby(keys.journey_stats(journey_id), f"{step_id or '_journey'}:{stat}", amount)
        if pipe is None:
            target.execute()

    def stats(self, journey_id: str) -> dict[str, int]:
        return {field: int(value) for field, value in self.redis.hgetall(keys.journey_stats(journey_id)).items()}

    def unknown_names(self, names: Iterable[str]) -> dict[str, str]:
        """Each name → the field it is counted under in :func:`keys.unknown_events`: itself while the
        hash holds fewer than :data:`UNKNOWN_NAMES_KEPT` names (or already holds it), else
        :data:`OTHER_NAMES`, so a producer sending random names cannot grow the hash without bound."""
        wanted = sorted(set(names))
        pipe = self.redis.pipeline(transaction=False)
        pipe.hlen(keys.unknown_events())
        pipe.hmget(keys.unknown_events(), wanted)
        size, present = pipe.execute()
        room = int(size) < UNKNOWN_NAMES_KEPT
        return {
            name: name if room or found is not None else OTHER_NAMES
            for name, found in zip(wanted, present, strict=True)
        }

    def count_unknown(self, counts: dict[str, int], pipe: Any) -> None:
        for name, amount in counts.items():
            pipe.hincrby(keys.unknown_events(), name, amount)

    def unknown_events(self) -> dict[str, int]:
        """Event name → how many events of it no journey listened to (see :func:`keys.unknown_events`)."""
        return {name: int(value) for name, value in self.redis.hgetall(keys.unknown_events()).items()}

    def refuse(self, reason: str) -> None:
        """Count a refused input (bad event, bad message) by reason."""
        self.redis.hincrby(keys.refused(), reason, 1)

    def refused_counts(self) -> dict[str, int]:
        return {reason: int(count) for reason, count in self.redis.hgetall(keys.refused()).items()}

    def count(self, name: str, amount: int = 1, pipe: Any = None) -> None:
        (pipe or self.redis).hincrby(keys.metrics_counters(), name, amount)

    def counters(self) -> dict[str, int]:
        return {name: int(value) for name, value in self.redis.hgetall(keys.metrics_counters()).items()}
