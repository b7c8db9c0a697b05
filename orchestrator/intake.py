"""The public Python API: ``track`` events and ``identify`` customers, and bulk JSONL imports.

``track`` validates strictly and then appends the event to its shard's list in Redis
(:mod:`orchestrator.event_queue`), sending a drain message only when no drain of that shard is
queued or running: when it returns, the event is in Redis (durable), and the event id it returns is
the one a retry of the same call must reuse so the event is counted once.  Nothing here touches
journeys; a worker does that.  Both calls are cheap and thread-safe, so the HTTP front door can
call them from any request thread.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis
from pydantic import ValidationError

from orchestrator import consent as consent_store
from orchestrator import keys, metrics
from orchestrator.actors import Actors
from orchestrator.errors import InputError
from orchestrator.event_queue import EventQueue, encode
from orchestrator.journey import EVENT_NAME
from orchestrator.profile import DERIVED_FIELDS, Profile
from orchestrator.store import Store

CUSTOMER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@:+-]{0,127}$")
EVENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
EVENT = re.compile(EVENT_NAME)
ATTRIBUTE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
#: Fields identify sets on the profile itself; anything else becomes an attribute.
PROFILE_FIELDS = ("email", "phone", "push_tokens", "timezone", "locale")
MAX_PROPERTIES_BYTES = 32_768
MAX_FUTURE = timedelta(days=1)
#: Events an import queues per round trip.
IMPORT_CHUNK = 500


def check_customer_id(value: Any) -> str:
    if not isinstance(value, str) or not CUSTOMER_ID.match(value):
        raise InputError(
            f"customer id {value!r} is not valid; use 1-128 letters, digits or _ . @ : + - "
            "(no spaces, braces or '|'), starting with a letter or digit",
            field="customer_id",
        )
    return value


def check_event(name: Any) -> str:
    if not isinstance(name, str) or len(name) > 128 or not EVENT.match(name):
        raise InputError(
            f"event name {name!r} is not valid; use lower-case words joined by dots, e.g. 'order.placed'",
            field="event",
        )
    return name


def check_event_id(value: Any) -> str:
    if not isinstance(value, str) or not EVENT_ID.match(value):
        raise InputError(
            f"event id {value!r} is not valid; use 1-128 letters, digits or _ . : - (a UUID is ideal)",
            field="event_id",
        )
    return value


def check_timestamp(value: Any, now: datetime) -> datetime:
    """An aware datetime, an ISO-8601 string with an offset, or epoch seconds; not from the future."""
    moment: datetime
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        moment = datetime.fromtimestamp(value, UTC)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InputError(
                f"timestamp {value!r} is not ISO-8601; write e.g. '2026-05-01T09:30:00+02:00'", field="timestamp"
            ) from None
    else:
        raise InputError(f"timestamp {value!r} must be an ISO-8601 string or epoch seconds", field="timestamp")
    if moment.tzinfo is None:
        raise InputError(
            f"timestamp {value!r} has no time zone; add an offset such as '+00:00' or 'Z'", field="timestamp"
        )
    if moment - now > MAX_FUTURE:
        raise InputError(f"timestamp {value!r} is more than a day in the future; check the clock", field="timestamp")
    return moment.astimezone(UTC)


def check_properties(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
        raise InputError(
            f"properties must be an object with string keys, got {type(value).__name__}", field="properties"
        )
    try:
        text = json.dumps(dict(value), allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise InputError(f"properties must be plain JSON values: {exc}", field="properties") from None
    if len(text) > MAX_PROPERTIES_BYTES:
        raise InputError(
            f"properties are {len(text)} bytes; keep them under {MAX_PROPERTIES_BYTES}", field="properties"
        )
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def check_attributes(attributes: Any) -> dict[str, Any]:
    """Validate ``identify`` attributes; derived fields (orders, spend) are refused: events own them."""
    values = check_properties(attributes)
    for name in values:
        if name == "consent":
            continue
        if name in DERIVED_FIELDS:
            raise InputError(f"{name!r} is derived from events and cannot be set with identify", field=name)
        if not ATTRIBUTE.match(name):
            raise InputError(f"attribute name {name!r} is not valid; use lower_snake_case", field=name)
    if "consent" in values:
        given = values["consent"]
        if not isinstance(given, dict) or not all(isinstance(v, bool) for v in given.values()):
            raise InputError("consent must map channel names to true/false, e.g. {'email': true}", field="consent")
    return values


def apply_attributes(profile: Profile, values: dict[str, Any]) -> Profile:
    """Merge identify attributes into a profile, refusing values the profile model rejects."""
    data = profile.model_dump()
    for name, value in values.items():
        if name == "consent":
            continue
        if name == "push_token":
            tokens = [t for t in data["push_tokens"] if t != value]
            data["push_tokens"] = [*tokens, value] if value else tokens
        elif name in PROFILE_FIELDS:
            data[name] = value
        else:
            data["attributes"][name] = value
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise InputError(f"{where}: {first['msg']}", field=where) from None


@dataclass
class ImportReport:
    """What an import did: how many lines were taken and which were refused (line number, reason)."""

    imported: int = 0
    refused: list[tuple[int, str]] = field(default_factory=list)


class Loyaloop:
    """A client bound to a broker's actors and a Redis: ``track``, ``identify``, ``import_file``."""

    def __init__(self, actors: Actors, client: redis.Redis, *, clock: Any = None) -> None:
        self.actors = actors
        self.store = Store(client)
        self.events = EventQueue(client)
        self._clock = clock or (lambda: datetime.now(UTC))

    def _refuse(self, error: InputError) -> InputError:
        self.store.refuse(f"input:{error.field or 'unknown'}")
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
            self.actors.drain_events.send(shard)
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
        now = self._clock()
        try:
            check_customer_id(customer_id)
            check_event(event)
            props = check_properties(properties)
            ident = check_event_id(event_id) if event_id is not None else uuid.uuid4().hex
            moment = check_timestamp(timestamp, now) if timestamp is not None else now
        except InputError as error:
            raise self._refuse(error) from None
        return ident, encode(customer_id, event, props, ident, moment)

    def _queue_many(self, items: list[tuple[str, str]]) -> None:
        """Queue prepared events (customer id, record) in one round trip, in order per customer."""
        if not items:
            return
        for shard in self.events.push_many(items):
            self.actors.drain_events.send(shard)
        for _ in items:
            metrics.event("queued")

    def identify(self, customer_id: str, attributes: Mapping[str, Any]) -> Profile:
        """Create or update a profile now (contact points, zone, locale, consent, attributes)."""
        try:
            check_customer_id(customer_id)
            values = check_attributes(attributes)
            if "timezone" in values and values["timezone"] is not None:
                from orchestrator.timeparse import parse_timezone

                try:
                    parse_timezone(values["timezone"])
                except ValueError as exc:
                    raise InputError(str(exc), field="timezone") from None
            profile = self.store.change_profile(
                customer_id, lambda p: apply_attributes(_created(p, self._clock()), values)
            )
        except InputError as error:
            raise self._refuse(error) from None
        if values.get("timezone"):
            self.store.redis.sadd(keys.timezones(), values["timezone"])  # local-time broadcasts fire per zone
        given = {channel: bool(flag) for channel, flag in (values.get("consent") or {}).items()}
        for channel, flag in given.items():
            consent_store.set_consent(self.store.redis, customer_id, channel, flag, source="identify")
        self.actors.profile_changed.send(customer_id)
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
            self.identify(record.get("customer_id"), record.get("attributes") or {})  # type: ignore[arg-type]
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


def connect(settings: Any = None) -> Loyaloop:
    """A client on ``REDIS_URL`` sending to the workers started with ``dramatiq orchestrator.worker``."""
    from orchestrator.broker import setup
    from orchestrator.errors import ConfigurationError
    from orchestrator.settings import load_settings

    settings = settings or load_settings()
    if not settings.redis_url:
        raise ConfigurationError(
            "REDIS_URL is not set; export REDIS_URL=redis://host:6379/0 to reach the workers' Redis "
            "(without it, Loyaloop runs embedded only inside `loyaloop demo`)"
        )
    _broker, actors = setup(settings)
    return Loyaloop(actors, redis.Redis.from_url(settings.redis_url, decode_responses=True))
