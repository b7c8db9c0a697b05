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

import email_validator
import phonenumbers
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
#: How deeply properties and attributes may nest: far beyond any real event, well within what
#: JSON encoders, pydantic and templates handle (pydantic refuses past about 255).
MAX_DEPTH = 32
#: Channels one identify may give or withdraw consent for.
MAX_CONSENT_CHANNELS = 16
MAX_PUSH_TOKEN = 4_096
#: A channel name, as plugins must register them.
CHANNEL = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
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


def nesting_depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """How deeply objects and arrays nest in ``value``, counted only up to ``limit`` + 1 (iteratively:
    a deep value must not exhaust the interpreter's stack while it is being measured)."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, Mapping):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        pending.extend((child, depth + 1) for child in children)
    return deepest


#: A JSON string (brackets inside one do not nest) and everything that is not a bracket.
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.?)*+(?:"|\Z)', re.DOTALL)
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")


def text_depth(text: str, limit: int = MAX_DEPTH) -> int:
    """How deeply arrays and objects nest in the JSON ``text``, counted only up to ``limit`` + 1,
    without parsing it (strings are skipped, so brackets inside them do not count): the parser
    recurses once per level, so the depth is known before it starts."""
    depth = deepest = 0
    for bracket in _NOT_BRACKETS.sub("", _JSON_STRING.sub("", text)):
        if bracket in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        else:
            depth -= 1
    return deepest


def check_properties(value: Any, field: str = "properties") -> dict[str, Any]:
    """Plain JSON values with string keys, at most ``MAX_DEPTH`` deep and ``MAX_PROPERTIES_BYTES`` long.

    The depth limit is what every later stage can handle (the queued record's codec, the profile's
    serializer, templates): an event accepted here must never fail there.
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
        raise InputError(f"{field} must be an object with string keys, got {type(value).__name__}", field=field)
    if nesting_depth(value) > MAX_DEPTH:
        raise InputError(f"{field} are nested more than {MAX_DEPTH} levels deep; flatten them", field=field)
    try:
        text = json.dumps(dict(value), allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise InputError(f"{field} must be plain JSON values: {exc}", field=field) from None
    if len(text) > MAX_PROPERTIES_BYTES:
        raise InputError(f"{field} are {len(text)} bytes; keep them under {MAX_PROPERTIES_BYTES}", field=field)
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def check_email(value: Any) -> str:
    """A deliverable-looking address, normalised (domain lower-cased); never looked up in DNS at
    intake.  The address itself is not quoted back: it is personal data."""
    if not isinstance(value, str):
        raise InputError(f"email must be a string, got {type(value).__name__}", field="email")
    try:
        checked = email_validator.validate_email(value, check_deliverability=False)
    except email_validator.EmailNotValidError as exc:
        raise InputError(f"email is not a valid e-mail address: {exc}", field="email") from None
    normalized: str = checked.normalized
    return normalized


def check_phone(value: Any) -> str:
    """A valid number in international form, stored as E.164 (``+31612345678``) so every channel,
    the suppression list and the inbound webhooks compare the same text."""
    if not isinstance(value, str):
        raise InputError(f"phone must be a string, got {type(value).__name__}", field="phone")
    try:
        parsed = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        parsed = None
    if parsed is None or not phonenumbers.is_valid_number(parsed):
        raise InputError(
            "phone is not a valid number in international form; write it as +<country code><number>, e.g. +31612345678",
            field="phone",
        )
    formatted: str = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return formatted


def check_push_token(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > MAX_PUSH_TOKEN or any(ord(c) < 33 or ord(c) == 127 for c in value):
        raise InputError(
            f"push_token must be one device token of at most {MAX_PUSH_TOKEN} printable characters", field="push_token"
        )
    return value


def check_consent(given: Any, known: frozenset[str] | None = None) -> dict[str, bool]:
    """``{"email": true, "sms": false}``: channel names, each known when ``known`` is given."""
    if not isinstance(given, Mapping) or not all(isinstance(v, bool) for v in given.values()):
        raise InputError("consent must map channel names to true/false, e.g. {'email': true}", field="consent")
    if len(given) > MAX_CONSENT_CHANNELS:
        raise InputError(f"consent names {len(given)} channels; at most {MAX_CONSENT_CHANNELS}", field="consent")
    for channel in given:
        if not isinstance(channel, str) or not CHANNEL.match(channel):
            raise InputError(
                f"consent channel {str(channel)[:70]!r} is not a channel name; use e.g. 'email', 'sms', 'push'",
                field="consent",
            )
        if known is not None and channel not in known:
            raise InputError(
                f"consent channel {channel!r} is not a channel here; known: {', '.join(sorted(known))}",
                field="consent",
            )
    return dict(given)


def check_attributes(attributes: Any, *, consent_channels: frozenset[str] | None = None) -> dict[str, Any]:
    """Validate ``identify`` attributes, all of them before anything is stored: names, contact
    points (normalised), consent channels; derived fields (orders, spend) are refused: events own them."""
    values = check_properties(attributes, field="attributes")
    for name in values:
        if name == "consent":
            continue
        if name in DERIVED_FIELDS:
            raise InputError(f"{name!r} is derived from events and cannot be set with identify", field=name)
        if not ATTRIBUTE.match(name):
            raise InputError(f"attribute name {name[:70]!r} is not valid; use lower_snake_case", field=name)
    if values.get("email") is not None:
        values["email"] = check_email(values["email"])
    if values.get("phone") is not None:
        values["phone"] = check_phone(values["phone"])
    if "push_token" in values:
        values["push_token"] = check_push_token(values["push_token"])
    if "consent" in values:
        values["consent"] = check_consent(values["consent"], consent_channels)
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


#: What a line of an import file (``loyaloop import``, ``loyaloop simulate``) may say it is.
IMPORT_TYPES = ("track", "identify")


def parse_import_line(raw: bytes | str) -> dict[str, Any]:
    """One line of a JSONL import file: a JSON object whose ``type`` is ``track`` (the default) or
    ``identify``.  Its fields are checked later, by the checks above, when the line is used; this
    is only the shape every reader of such a file (import, simulate) agrees on."""
    try:
        record = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not JSON: {exc}", field="line") from None
    if not isinstance(record, dict):
        raise InputError("each line must be a JSON object", field="line")
    kind = record.get("type", "track")
    if kind not in IMPORT_TYPES:
        raise InputError(f"type {kind!r} is not 'track' or 'identify'", field="type")
    return record
