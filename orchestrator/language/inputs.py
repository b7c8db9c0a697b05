"""What an event and a customer's attributes must look like, checked the same way at every door.

The Python API (``track``/``identify``), the HTTP intake, ``loyaloop import``, the queued record a
worker reads back and the actors all call these, so a value one door accepts is never refused (or
read differently) by the next.  Customer ids in particular end up inside Redis hash tags
(``{customer_id}``): an id with braces would put one customer's keys in another's slot.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from orchestrator.errors import InputError
from orchestrator.language.journey import EVENT_NAME
from orchestrator.language.profile import DERIVED_FIELDS, Profile

CUSTOMER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@:+-]{0,127}$")
EVENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
EVENT = re.compile(EVENT_NAME)
ATTRIBUTE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
#: Fields identify sets on the profile itself; anything else becomes an attribute.
PROFILE_FIELDS = ("email", "phone", "push_tokens", "timezone", "locale")
MAX_PROPERTIES_BYTES = 32_768
#: How far ahead of our clock a timestamp may be (the sender's clock skew), unless a door says otherwise.
MAX_FUTURE = timedelta(days=1)
#: Events from before the Unix epoch are mistakes (a zero date, a swapped field), not history.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)


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


def check_timestamp(
    value: Any, now: datetime, *, max_future: timedelta | None = MAX_FUTURE, where: str = "timestamp"
) -> datetime:
    """An aware datetime, an ISO-8601 string with an offset, or epoch seconds; from 1970 on and no
    further ahead than ``max_future`` (clock skew; ``None`` for a record already accepted once).

    The one timestamp rule of every door (Python API, HTTP, import, the queued record), so a value
    one door takes is never refused, or read differently, by the next.
    """
    moment: datetime
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        try:
            moment = datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            raise InputError(f"{where!r} is {value!r}, not a time in epoch seconds", field=where) from None
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InputError(
                f"{where!r} is {value!r}, not an ISO 8601 time; send e.g. '2026-05-01T09:30:00+02:00'", field=where
            ) from None
    else:
        raise InputError(
            f"{where!r} must be an ISO 8601 string or epoch seconds, got {type(value).__name__}", field=where
        )
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InputError(f"{where!r} is {value!r} without a zone; add 'Z' or an offset like '+01:00'", field=where)
    if moment.year < EARLIEST.year or moment < EARLIEST:  # the year first: converting year 1 to UTC overflows
        raise InputError(f"{where!r} is {value!r}, before 1970; send the time the event happened", field=where)
    if max_future is not None and moment - now > max_future:
        raise InputError(f"{where!r} is {value!r}, too far in the future (check the sender's clock)", field=where)
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
