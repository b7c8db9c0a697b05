"""The public Python API: ``track`` events and ``identify`` customers, and bulk JSONL imports.

``track`` validates strictly and then appends the event to its shard's list in Redis
(:mod:`orchestrator.runtime.event_queue`), sending a drain message only when no drain of that shard is
queued or running: when it returns, the event is in Redis (durable), and the event id it returns is
the one a retry of the same call must reuse so the event is counted once.  Nothing here touches
journeys; a worker does that.  Both calls are cheap and thread-safe, so the HTTP front door can
call them from any request thread.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import redis

from orchestrator import metrics
from orchestrator.errors import InputError
from orchestrator.gate import consent as consent_store
from orchestrator.language.inputs import (
    MAX_FUTURE,
    apply_attributes,
    check_attributes,
    check_customer_id,
    check_event,
    check_event_id,
    check_properties,
    check_timestamp,
)
from orchestrator.language.profile import Profile
from orchestrator.language.timeparse import parse_timezone
from orchestrator.runtime.event_queue import EventQueue, encode
from orchestrator.runtime.referrals import register_code
from orchestrator.store import Store, keys

#: Events an import queues per round trip.
IMPORT_CHUNK = 500


class Nudges(Protocol):
    """How the client wakes workers: two messages, whatever queue carries them (the workers'
    actors in production, anything that records the calls in tests)."""

    def nudge_drain(self, shard: int) -> None:
        """Ask for a drain of an event shard that had none queued or running."""

    def nudge_profile(self, customer_id: str) -> None:
        """Tell the workers a profile changed (date triggers and audiences may now match)."""


@dataclass
class ImportReport:
    """What an import did: how many lines were taken and which were refused (line number, reason)."""

    imported: int = 0
    refused: list[tuple[int, str]] = field(default_factory=list)


class Loyaloop:
    """A client bound to a broker's actors and a Redis: ``track``, ``identify``, ``import_file``."""

    def __init__(
        self,
        nudges: Nudges,
        client: redis.Redis,
        *,
        clock: Any = None,
        max_future: timedelta = MAX_FUTURE,
        consent_channels: frozenset[str] | None = None,
    ) -> None:
        self.nudges = nudges
        #: The channels consent may be given for (their ``consent_key``); None accepts any channel name.
        self.consent_channels = consent_channels
        #: How far ahead a timestamp may be; the HTTP intake sets its own (``max_future_seconds``).
        self.max_future = max_future
        self.store = Store(client)
        self.events = EventQueue(client)
        self._clock = clock or (lambda: datetime.now(UTC))

    def _refuse(self, error: InputError) -> InputError:
        self.count_refusal(error)
        return error

    def track(
        self,
        customer_id: str,
        event: str,
        properties: Mapping[str, Any] | None = None,
        *,
        event_id: str | None = None,
        timestamp: datetime | str | float | None = None,
    ) -> str:
        """Queue an event durably and return its id (generated when not given)."""
        ident, record = self._prepare(customer_id, event, properties, event_id, timestamp)
        shard = self.events.push(customer_id, record)
        if shard is not None:
            self.nudges.nudge_drain(shard)
        metrics.event("queued")  # in-process only: a Redis counter here would cost every track a round trip
        return ident

    def _prepare(
        self,
        customer_id: Any,
        event: Any,
        properties: Any,
        event_id: Any,
        timestamp: Any,
    ) -> tuple[str, str]:
        """Validate an event (refusals raised and counted) and encode it: (its id, the queued record)."""
        try:
            return self.prepare(customer_id, event, properties, event_id=event_id, timestamp=timestamp)
        except InputError as error:
            raise self._refuse(error) from None

    def prepare(
        self,
        customer_id: Any,
        event: Any,
        properties: Any = None,
        *,
        event_id: Any = None,
        timestamp: Any = None,
    ) -> tuple[str, str]:
        """Validate and encode an event without touching Redis: (its id, the record to queue).

        For a caller that queues the record itself (the HTTP front door, on its own asyncio Redis
        client, with :meth:`EventQueue.queue_push`); a refusal is raised, not counted: count it
        with :meth:`count_refusal`.
        """
        now = self._clock()
        check_customer_id(customer_id)
        check_event(event)
        props = check_properties(properties)
        ident = check_event_id(event_id) if event_id is not None else uuid.uuid4().hex
        moment = check_timestamp(timestamp, now, max_future=self.max_future) if timestamp is not None else now
        return ident, encode(customer_id, event, props, ident, moment)

    def count_refusal(self, error: InputError) -> None:
        """Count a refused input by its field (``input:<field>``), as every door's refusals are."""
        self.store.refuse(f"input:{error.field or 'unknown'}")

    def _queue_many(self, items: list[tuple[str, str]]) -> None:
        """Queue prepared events (customer id, record) in one round trip, in order per customer."""
        if not items:
            return
        for shard in self.events.push_many(items):
            self.nudges.nudge_drain(shard)
        for _ in items:
            metrics.event("queued")

    def replay_kept_aside(self, kinds: frozenset[str], limit: int | None = None) -> int:
        """Queue events kept aside (for a bug, or bad input) again once their cause is fixed; each
        is handled as if it had just arrived, and one already applied is finished, not re-applied."""
        replayed, shards = self.events.replay(kinds, limit)
        for shard in shards:
            self.nudges.nudge_drain(shard)
        return replayed

    def identify(self, customer_id: str, attributes: Mapping[str, Any]) -> Profile:
        """Create or update a profile now (contact points, zone, locale, consent, attributes)."""
        try:
            check_customer_id(customer_id)
            values = check_attributes(attributes, consent_channels=self.consent_channels)
            if "timezone" in values and values["timezone"] is not None:
                try:
                    parse_timezone(values["timezone"])
                except ValueError as exc:
                    raise InputError(str(exc), field="timezone") from None
            profile = self.store.change_profile(
                customer_id, lambda p: apply_attributes(_created(p, self._clock()), values)
            )
        except InputError as error:
            raise self._refuse(error) from None
        if "referral_code" in values:
            register_code(self.store, customer_id, values["referral_code"])
        if values.get("timezone"):
            self.store.redis.sadd(keys.timezones(), values["timezone"])  # local-time broadcasts fire per zone
        given = {channel: bool(flag) for channel, flag in (values.get("consent") or {}).items()}
        consent_store.set_consents(self.store.redis, customer_id, given, source="identify")
        self.nudges.nudge_profile(customer_id)
        return profile.model_copy(update={"consent": {**profile.consent, **given}}) if given else profile

    def import_file(self, path: Path | str, *, progress: bool = True) -> ImportReport:
        """Import a JSONL file of ``{"type": "track"|"identify", ...}`` lines (``type`` defaults to
        track).  Bad lines are reported with their line number and counted; good ones imported."""
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        source = Path(path)
        report = ImportReport()
        total = source.stat().st_size
        with (
            source.open("rb") as handle,
            Progress(
                TextColumn("importing"),
                BarColumn(),
                TextColumn("{task.completed:.0f}/{task.total:.0f} bytes"),
                TimeRemainingColumn(),
                disable=not progress,
            ) as bar,
        ):
            task = bar.add_task("import", total=total)
            # Events are queued IMPORT_CHUNK at a time (one round trip each chunk); an identify line
            # first queues what came before it, so the file's order holds.
            pending: list[tuple[str, str]] = []
            for number, raw in enumerate(handle, start=1):
                bar.advance(task, len(raw))
                if not raw.strip():
                    continue
                try:
                    queued = self._import_line(raw, pending)
                    report.imported += 1
                except InputError as error:
                    report.refused.append((number, str(error)))
                    continue
                if queued is not None:
                    pending.append(queued)
                    if len(pending) >= IMPORT_CHUNK:
                        self._queue_many(pending)
                        pending.clear()
            self._queue_many(pending)
        return report

    def _import_line(self, raw: bytes, pending: list[tuple[str, str]]) -> tuple[str, str] | None:
        """Apply an identify line now (after queueing ``pending``) or prepare a track line: the
        (customer id, record) to queue with its chunk."""
        try:
            record = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise self._refuse(InputError(f"not JSON: {exc}", field="line")) from None
        if not isinstance(record, dict):
            raise self._refuse(InputError("each line must be a JSON object", field="line"))
        kind = record.get("type", "track")
        if kind == "identify":
            self._queue_many(pending)
            pending.clear()
            if not isinstance(record.get("attributes"), dict):
                raise self._refuse(
                    InputError("'attributes' is required: an object of profile fields", field="attributes")
                )
            self.identify(record.get("customer_id"), record["attributes"])  # type: ignore[arg-type]
            return None
        if kind == "track":
            customer_id = record.get("customer_id")
            fields = (record.get(name) for name in ("event", "properties", "event_id", "timestamp"))
            _ident, queued = self._prepare(customer_id, *fields)
            return str(customer_id), queued  # (_prepare checked the id)
        raise self._refuse(InputError(f"type {kind!r} is not 'track' or 'identify'", field="type"))


def _created(profile: Profile, now: datetime) -> Profile:
    if profile.created_at is None:
        profile.created_at = now
    return profile


#: The name the HTTP front door and scripts may use.
Client = Loyaloop
