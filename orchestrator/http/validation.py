"""Turn request bodies into intake calls, refusing anything malformed before it is stored.

Every refusal is an :class:`InputError` whose ``field`` is a path into the body (``timestamp``,
``batch[3].properties``), so a client can point at the exact value.  Unknown fields are refused
too: a typo such as ``"propertes"`` would otherwise drop the customer's data without a word.
A batch is checked whole before any item is handed on, so a bad item means nothing was stored;
that is why the runtime's own checks (``orchestrator.runtime.inputs.check_*``) run here too, before anything
is enqueued, rather than only inside ``track``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from orchestrator.errors import InputError
from orchestrator.language import inputs
from orchestrator.language.profile import Profile
from orchestrator.language.timeparse import parse_timezone

MAX_ID_LENGTH = 128
MAX_EVENT_LENGTH = 128
#: A body may nest a few levels more than the properties it carries (batch → item → properties).
BODY_DEPTH = inputs.MAX_DEPTH + 4

T = TypeVar("T")

_TRACK_FIELDS = frozenset({"customer_id", "event", "properties", "event_id", "timestamp"})
_IDENTIFY_FIELDS = frozenset({"customer_id", "attributes"})


@dataclass(frozen=True)
class TrackCall:
    """One validated ``track``."""

    customer_id: str
    event: str
    properties: dict[str, Any] = field(default_factory=dict)
    event_id: str | None = None
    timestamp: datetime | None = None


@dataclass(frozen=True)
class IdentifyCall:
    """One validated ``identify``."""

    customer_id: str
    attributes: dict[str, Any] = field(default_factory=dict)


Call = TrackCall | IdentifyCall


def _refuse_constant(name: str) -> float:
    raise InputError(f"{name} is not valid JSON; send numbers only", field=None)


def parse_json(body: bytes) -> Any:
    """The JSON document in ``body`` (UTF-8, no ``NaN``/``Infinity``)."""
    if not body.strip():
        raise InputError("the request body is empty; send a JSON object")
    # Measured on the text first: the parser recurses once per level, so a body nested past what
    # any later stage handles is refused before it runs (not by the interpreter's recursion limit).
    if inputs.text_depth(body.decode("utf-8", "replace"), BODY_DEPTH) > BODY_DEPTH:
        raise InputError(f"the request body is nested more than {BODY_DEPTH} levels deep")
    try:
        return json.loads(body, parse_constant=_refuse_constant)
    except UnicodeDecodeError as exc:
        raise InputError("the request body is not UTF-8 encoded JSON") from exc
    except json.JSONDecodeError as exc:
        raise InputError(
            f"the request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    except ValueError:  # an integer with more digits than Python converts (its message is Python's, not ours)
        raise InputError("the request body holds a number too long to use; send integers within 64 bits") from None
    except RecursionError as exc:
        raise InputError("the request body is nested too deeply") from exc


def _path(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _text(data: dict[str, Any], name: str, prefix: str, *, limit: int, required: bool) -> str | None:
    value = data.get(name)
    where = _path(prefix, name)
    if value is None:
        if required:
            raise InputError(f"{where!r} is required", field=where)
        return None
    if not isinstance(value, str):
        raise InputError(f"{where!r} must be a string, got {type(value).__name__}", field=where)
    if not value.strip():
        raise InputError(f"{where!r} must not be empty", field=where)
    if len(value) > limit:
        raise InputError(f"{where!r} is {len(value)} characters long; at most {limit} are allowed", field=where)
    if any(ord(char) < 32 or ord(char) == 127 for char in value):
        raise InputError(f"{where!r} contains control characters", field=where)
    return value


def _runtime_check(check: Callable[[Any], T], value: Any, prefix: str) -> T:
    """Run one of the runtime's checks, pointing its refusal at the value's place in this body."""
    try:
        return check(value)
    except InputError as exc:
        where = _path(prefix, exc.field) if exc.field else prefix or None
        raise InputError(str(exc), field=where) from None


def _customer_id(data: dict[str, Any], prefix: str) -> str:
    value = _text(data, "customer_id", prefix, limit=MAX_ID_LENGTH, required=True)
    return _runtime_check(inputs.check_customer_id, value, prefix)


def _object(data: dict[str, Any], name: str, prefix: str) -> dict[str, Any]:
    value = data.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        where = _path(prefix, name)
        raise InputError(f"{where!r} must be a JSON object, got {type(value).__name__}", field=where)
    return value


def _no_unknown(data: dict[str, Any], allowed: frozenset[str], prefix: str) -> None:
    for name in data:
        if name not in allowed:
            where = _path(prefix, name)
            expected = ", ".join(sorted(allowed))
            raise InputError(f"unknown field {where!r}; expected only {expected}", field=where)


def parse_timestamp(value: Any, where: str, now: datetime, max_future: timedelta) -> datetime:
    """An ISO 8601 string with a zone, by the one timestamp rule every door applies
    (:func:`orchestrator.language.inputs.check_timestamp`); JSON bodies carry strings only."""
    if not isinstance(value, str):
        raise InputError(f"{where!r} must be an ISO 8601 string, got {type(value).__name__}", field=where)
    return inputs.check_timestamp(value, now, max_future=max_future, where=where)


def _dict(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        label = repr(where) if where else "the request body"
        raise InputError(f"{label} must be a JSON object, got {type(value).__name__}", field=where or None)
    return value


def parse_track(value: Any, now: datetime, max_future: timedelta, prefix: str = "") -> TrackCall:
    """A ``track`` body: ``customer_id``, ``event``, optional ``properties``, ``event_id``, ``timestamp``."""
    data = _dict(value, prefix)
    allowed = _TRACK_FIELDS | ({"type"} if prefix else frozenset())
    _no_unknown(data, allowed, prefix)
    customer_id = _customer_id(data, prefix)
    event = _runtime_check(
        inputs.check_event, _text(data, "event", prefix, limit=MAX_EVENT_LENGTH, required=True), prefix
    )
    properties = _object(data, "properties", prefix)
    _finite(properties, _path(prefix, "properties"))
    properties = _runtime_check(inputs.check_properties, properties, prefix)
    event_id = _text(data, "event_id", prefix, limit=MAX_ID_LENGTH, required=False)
    if event_id is not None:
        _runtime_check(inputs.check_event_id, event_id, prefix)
    raw_time = data.get("timestamp")
    timestamp = None if raw_time is None else parse_timestamp(raw_time, _path(prefix, "timestamp"), now, max_future)
    return TrackCall(customer_id, event, properties, event_id, timestamp)


def parse_identify(value: Any, prefix: str = "", *, consent_channels: frozenset[str] | None = None) -> IdentifyCall:
    """An ``identify`` body: ``customer_id`` and an ``attributes`` object; consent only for
    ``consent_channels`` (the registered channels; None accepts any name)."""
    data = _dict(value, prefix)
    allowed = _IDENTIFY_FIELDS | ({"type"} if prefix else frozenset())
    _no_unknown(data, allowed, prefix)
    customer_id = _customer_id(data, prefix)
    if data.get("attributes") is None:
        where = _path(prefix, "attributes")
        raise InputError(f"{where!r} is required (an object of profile fields; {{}} for none)", field=where)
    attributes = _object(data, "attributes", prefix)
    _runtime_check(
        partial(_check_attributes, consent_channels=consent_channels), attributes, _path(prefix, "attributes")
    )
    return IdentifyCall(customer_id, attributes)


def _check_attributes(attributes: dict[str, Any], *, consent_channels: frozenset[str] | None) -> None:
    """Everything ``identify`` would refuse, checked against a blank profile (no Redis needed)."""
    values = inputs.check_attributes(attributes, consent_channels=consent_channels)
    if values.get("timezone") is not None:
        try:
            parse_timezone(values["timezone"])
        except ValueError as exc:
            raise InputError(str(exc), field="timezone") from None
    inputs.apply_attributes(Profile(id="validation"), values)


def parse_batch(
    value: Any,
    now: datetime,
    max_future: timedelta,
    max_items: int,
    *,
    consent_channels: frozenset[str] | None = None,
) -> list[Call]:
    """A ``batch`` body: ``{"batch": [{"type": "track", ...}, {"type": "identify", ...}]}``.
    Every item is checked before any is handed on, so a refused batch stores nothing."""
    data = _dict(value, "")
    _no_unknown(data, frozenset({"batch"}), "")
    items = data.get("batch")
    if not isinstance(items, list):
        raise InputError("'batch' is required and must be a JSON array", field="batch")
    if not items:
        raise InputError("'batch' is empty; send at least one item", field="batch")
    if len(items) > max_items:
        raise InputError(f"'batch' has {len(items)} items; at most {max_items} are allowed", field="batch")
    calls: list[Call] = []
    for index, item in enumerate(items):
        prefix = f"batch[{index}]"
        kind = item.get("type") if isinstance(item, dict) else None
        if kind == "track":
            calls.append(parse_track(item, now, max_future, prefix))
        elif kind == "identify":
            calls.append(parse_identify(item, prefix, consent_channels=consent_channels))
        else:
            _dict(item, prefix)
            where = f"{prefix}.type"
            raise InputError(f"{where!r} must be 'track' or 'identify', got {kind!r}", field=where)
    return calls


def _finite(value: Any, where: str) -> None:
    """Refuse huge integers that JSON allows but nothing downstream can store faithfully."""
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError(f"{where!r} holds a non-finite number", field=where)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**63:
        raise InputError(f"{where!r} holds an integer too large to store", field=where)
    if isinstance(value, dict):
        for key, item in value.items():
            _finite(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _finite(item, f"{where}[{index}]")
