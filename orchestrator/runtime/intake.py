"""The public Python API: ``track`` events and ``identify`` customers, and bulk JSONL imports.

``track`` validates strictly and then appends the event to its shard's list in Redis
(:mod:`orchestrator.runtime.event_queue`), sending a drain message only when no drain of that shard is
queued or running: when it returns, the event is in Redis (durable), and the event id it returns is
the one a retry of the same call must reuse so the event is counted once.  Nothing here touches
journeys; a worker does that.  Both calls are cheap and thread-safe, so the HTTP front door can
call them from any request thread.

With ``LOYALOOP_INTAKE_REPLICAS`` (``replicas``) a call is answered only once that many replicas
have its writes: one ``WAIT`` rides in the call's own round trip (one per Redis node a batch or an
import chunk wrote to), and when too few replicas confirm in time the call raises
:class:`~orchestrator.errors.NotReplicated` carrying its event ids, so the caller resends them
rather than believing them kept (docs/reliability.md §6).  ``identify`` is not waited for: a
profile's attributes are the producer's current values, sent again by its next identify.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import redis

from orchestrator import metrics
from orchestrator.errors import InputError, NotReplicated
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
    parse_import_line,
)
from orchestrator.language.profile import Profile
from orchestrator.language.timeparse import parse_timezone
from orchestrator.runtime.event_queue import EventQueue, encode
from orchestrator.runtime.referrals import register_code
from orchestrator.store import Store, keys
from orchestrator.store.replication import ReplicaWait

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
        replicas: ReplicaWait | None = None,
    ) -> None:
        self.nudges = nudges
        #: The replicas every accepted event must reach first (``LOYALOOP_INTAKE_REPLICAS``); None: off.
        self.replicas = replicas
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
        try:
            shard = self.events.push(customer_id, record, wait=self.replicas)
        except NotReplicated as error:
            to_nudge = [self.events.shard_of(customer_id)] if error.replies and error.replies[0] else []
            raise self.unconfirmed(error, "track", [ident], to_nudge) from None
        if shard is not None:
            self.nudges.nudge_drain(shard)
        metrics.event("queued")  # in-process only: a Redis counter here would cost every track a round trip
        return ident

    def track_many(self, events: Sequence[Mapping[str, Any]]) -> list[str]:
        """Queue many events in one round trip (with ``replicas``, one ``WAIT`` per node written
        to) and return their ids; each event is ``track``'s arguments by name (``customer_id``,
        ``event``, ``properties``, ``event_id``, ``timestamp``).  Nothing is queued when one is
        refused: the :class:`InputError` says which by its ``index``."""
        prepared: list[tuple[str, str, str]] = []
        for index, item in enumerate(events):
            try:
                ident, record = self._prepare(
                    item["customer_id"],
                    item["event"],
                    item.get("properties"),
                    item.get("event_id"),
                    item.get("timestamp"),
                )
            except InputError as error:
                error.index = index
                raise
            prepared.append((ident, str(item["customer_id"]), record))
        items = [(customer_id, record) for _ident, customer_id, record in prepared]
        try:
            self._queue_many(items)
        except NotReplicated as error:
            raise self.unconfirmed(error, "batch", [ident for ident, _c, _r in prepared], self._nudged(items)) from None
        return [ident for ident, _c, _r in prepared]

    def unconfirmed(self, error: NotReplicated, door: str, event_ids: list[str], shards: list[int]) -> NotReplicated:
        """Nudge the shards the unconfirmed writes asked for (the events are on the master, and
        most likely stay), count the refusal and name the events.  The caller says it in one line:
        the CLI's error, the front door's rate-limited warning (a replica that is down would
        otherwise log every request)."""
        for shard in shards:
            self.nudges.nudge_drain(shard)
        metrics.not_replicated(door)
        error.event_ids = tuple(event_ids)
        return error

    def _nudged(self, items: list[tuple[str, str]]) -> list[int]:
        """The shards an unconfirmed :meth:`_queue_many` nudges: every one it wrote to (a drain of a
        shard already queued or running finds the lease taken and stops)."""
        return sorted({self.events.shard_of(customer_id) for customer_id, _record in items})

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
        for shard in self.events.push_many(items, wait=self.replicas):
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
            pending = _Pending(self)
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
                    pending.add(number, queued)
            pending.flush()
        return report

    def _import_line(self, raw: bytes, pending: _Pending) -> tuple[str, str] | None:
        """Apply an identify line now (after queueing ``pending``) or prepare a track line: the
        (customer id, record) to queue with its chunk."""
        try:
            record = parse_import_line(raw)
        except InputError as error:
            raise self._refuse(error) from None
        if record.get("type", "track") == "identify":
            pending.flush()
            if not isinstance(record.get("attributes"), dict):
                raise self._refuse(
                    InputError("'attributes' is required: an object of profile fields", field="attributes")
                )
            self.identify(record.get("customer_id"), record["attributes"])  # type: ignore[arg-type]
            return None
        customer_id = record.get("customer_id")
        fields = (record.get(name) for name in ("event", "properties", "event_id", "timestamp"))
        _ident, queued = self._prepare(customer_id, *fields)
        return str(customer_id), queued  # (_prepare checked the id)


class _Pending:
    """An import's events waiting for their round trip, with the file line of the first one: an
    unconfirmed chunk (``LOYALOOP_INTAKE_REPLICAS``) stops the import and says from which line on to
    import again (every line before it was confirmed)."""

    def __init__(self, client: Loyaloop) -> None:
        self._client = client
        self._items: list[tuple[str, str]] = []
        self._first = 0

    def add(self, line: int, item: tuple[str, str]) -> None:
        if not self._items:
            self._first = line
        self._items.append(item)
        if len(self._items) >= IMPORT_CHUNK:
            self.flush()

    def flush(self) -> None:
        items, self._items = self._items, []
        try:
            self._client._queue_many(items)
        except NotReplicated as error:
            self._client.unconfirmed(error, "import", [], self._client._nudged(items))
            error.where = (
                f"import stopped: the {len(items)} event(s) from line {self._first} on are not confirmed; "
                f"import the file again from line {self._first} (lines without an event_id get a new id "
                "each time: give them one so a second import cannot count them twice): "
            )
            raise error from None


def _created(profile: Profile, now: datetime) -> Profile:
    if profile.created_at is None:
        profile.created_at = now
    return profile


#: The name the HTTP front door and scripts may use.
Client = Loyaloop
