"""What the provider webhooks accept from a request, checked as strictly as ``/v1`` checks its own.

A valid signature proves who sent a body, not that the body is sane: a signed SendGrid batch may
still nest 50,000 deep, hold ``1e400`` or a 5,000-digit number, or carry a ``customer_id`` of
``{x}|y`` that would put one customer's keys in another's Redis Cluster slot.  So the body is
parsed with the depth limit every door uses (:data:`~orchestrator.language.inputs.MAX_DEPTH`,
measured on the raw bytes before the parser recurses), numbers are refused when no JSON reader
can hold them, and every identifier goes through the checks of
:mod:`orchestrator.language.inputs`.  A document that cannot be read is one 400; one event with a
bad field is skipped (:class:`BadField` names the field, never its value) and the rest of the batch
still applies.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from orchestrator.errors import InputError
from orchestrator.language.inputs import (
    MAX_DEPTH,
    check_customer_id,
    check_email,
    check_event_id,
    check_phone,
    nesting_depth,
    text_depth,
)

#: Digits a JSON integer may have: 20 hold every 64-bit value; Python refuses past 4,300 with a
#: message that must not reach a client.
MAX_INTEGER_DIGITS = 20
#: A SendGrid ``sg_event_id`` is about 22-48 base64 characters; anything longer is not one.
MAX_PROVIDER_ID = 256
#: Parts of an idempotency key (``run:step`` or ``run:step:channel``), each a valid event id.
MAX_KEY_PARTS = 3

# A JSON string (escapes honoured); an unterminated one runs to the end, so the scan is linear.

T = TypeVar("T")


class BadField(Exception):
    """An event field failed its check; ``field`` names it (the value is never repeated)."""

    def __init__(self, field: str) -> None:
        super().__init__(field)
        self.field = field


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise InputError(f"the body holds an integer longer than {MAX_INTEGER_DIGITS} digits")
    return int(text)


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InputError("the body holds a number too large for a 64-bit float")
    return value


def _constant(name: str) -> float:
    raise InputError(f"the body holds {name}, which is not JSON")


def parse_json_list(body: bytes) -> list[Any]:
    """The JSON array in ``body`` (UTF-8); :class:`InputError` with a message safe to send and to log
    (it says what was wrong, never quotes the body) for anything else."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError("the body is not UTF-8 encoded JSON") from None
    if text_depth(text) > MAX_DEPTH:
        raise InputError(f"the body is nested more than {MAX_DEPTH} levels deep")
    try:
        document = json.loads(text, parse_int=_integer, parse_float=_finite, parse_constant=_constant)
    except json.JSONDecodeError as exc:
        raise InputError(f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except (ValueError, RecursionError):  # a backstop: the checks above refuse these first
        raise InputError("the body is not usable JSON") from None
    if not isinstance(document, list):
        raise InputError("the body is not a JSON array of events")
    if nesting_depth(document) > MAX_DEPTH:  # the rule of every door, on what was parsed
        raise InputError(f"the body is nested more than {MAX_DEPTH} levels deep")
    return document


def _checked(field: str, value: Any, check: Callable[[Any], T]) -> T:
    try:
        return check(value)
    except InputError:
        raise BadField(field) from None


def optional_text(event: dict[str, Any], field: str) -> str | None:
    """The field's string, None when absent, null or empty; :class:`BadField` for another type."""
    value = event.get(field)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadField(field)
    return value


def message_key(value: str, field: str = "idempotency_key") -> str:
    """An idempotency key (``run:step`` or ``run:step:channel``): every part a valid event id."""
    parts = value.split(":")
    if len(parts) > MAX_KEY_PARTS:
        raise BadField(field)
    for part in parts:
        _checked(field, part, check_event_id)
    return value


@dataclass(frozen=True)
class SendGridEvent:
    """One SendGrid event with every identifier checked; ``at`` is never later than its receipt."""

    kind: str
    at: float
    customer_id: str | None
    run_id: str | None
    step_id: str | None
    idempotency_key: str | None
    journey_id: str | None
    email: str | None
    event_id: str | None
    bounce_type: str
    url: str | None


def _event_time(event: dict[str, Any], received: float) -> float:
    value = event.get("timestamp")
    if value is None:
        return received
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise BadField("timestamp")
    # A provider's clock ahead of ours must not date a change after the moment we heard of it.
    return received if value > received else float(value)


def _provider_event_id(event: dict[str, Any]) -> str | None:
    raw = optional_text(event, "sg_event_id")
    if raw is None:
        return None
    if len(raw) > MAX_PROVIDER_ID or not raw.isascii() or not raw.isprintable():
        raise BadField("sg_event_id")
    # sg_event_id is base64 (it may hold '+', '/', '='): a digest of it is a stable, valid event id.
    return _checked("sg_event_id", "sendgrid:" + hashlib.sha256(raw.encode()).hexdigest()[:32], check_event_id)


def sendgrid_event(event: dict[str, Any], kind: str, received: float) -> SendGridEvent:
    """The event's fields, each checked with the rule ``/v1`` applies to its kind of value."""
    customer_id = optional_text(event, "customer_id")
    run_id, step_id = optional_text(event, "run_id"), optional_text(event, "step_id")
    journey_id, email = optional_text(event, "journey_id"), optional_text(event, "email")
    key = optional_text(event, "idempotency_key") or (f"{run_id}:{step_id}" if run_id and step_id else None)
    return SendGridEvent(
        kind=kind,
        at=_event_time(event, received),
        customer_id=None if customer_id is None else _checked("customer_id", customer_id, check_customer_id),
        run_id=None if run_id is None else _checked("run_id", run_id, check_event_id),
        step_id=None if step_id is None else _checked("step_id", step_id, check_event_id),
        idempotency_key=None if key is None else message_key(key),
        journey_id=None if journey_id is None else _checked("journey_id", journey_id, check_event_id),
        email=None if email is None else _checked("email", email, check_email),
        event_id=_provider_event_id(event),
        bounce_type=(optional_text(event, "type") or "") if "type" in event else "bounce",
        url=optional_text(event, "url"),
    )


def phone(value: str | None, field: str) -> str | None:
    """A Twilio number field in E.164 (``check_phone``), None when absent."""
    return None if not value else _checked(field, value, check_phone)


def message_sid(value: str | None, field: str = "MessageSid") -> str | None:
    """A Twilio message SID checked as an event id (it becomes part of keys and event ids)."""
    return None if not value else _checked(field, value, check_event_id)
