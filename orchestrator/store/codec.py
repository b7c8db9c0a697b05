"""How the store's records look in Redis: sends, pending updates, profiles, and the argument lists
of the compare-and-set script (runs themselves: :mod:`orchestrator.store.run_codec`)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal

from orchestrator.engine.enrollment import Enrollment, SendAction
from orchestrator.errors import StateConflict
from orchestrator.language.profile import Profile
from orchestrator.store import keys
from orchestrator.store.run_codec import StoredEnrollment as StoredEnrollment
from orchestrator.store.run_codec import encode_run, micros, parse_run
from orchestrator.store.run_codec import entry_times as entry_times
from orchestrator.store.scripts import FINISHED_TTL

Claim = tuple[Literal["claimed", "done", "busy"], str]


def send_to_json(send: SendAction) -> str:
    # A shallow dict: ``dataclasses.asdict`` deep-copies every value, a cost every send pays.
    data = {f.name: getattr(send, f.name) for f in _SEND_FIELDS}
    return json.dumps(data, separators=(",", ":"))


_SEND_FIELDS = dataclasses.fields(SendAction)


def send_from_json(text: str) -> SendAction:
    data = json.loads(text)
    data["channels"] = tuple(data["channels"])
    return SendAction(**data)


@dataclasses.dataclass(frozen=True)
class PendingUpdate:
    """A journey ``update`` recorded with the compare-and-set that decided it; ``key`` (run id and
    step id) makes applying it idempotent."""

    key: str
    customer_id: str
    set: dict[str, Any]
    increment: dict[str, float]


def pending_json(updates: Iterable[PendingUpdate]) -> str:
    return json.dumps([[u.key, u.customer_id, u.set, u.increment] for u in updates], separators=(",", ":"))


def pending_from_json(text: str) -> list[PendingUpdate]:
    return [PendingUpdate(key, customer, set_, increment) for key, customer, set_, increment in json.loads(text)]


@dataclasses.dataclass(frozen=True)
class EventState:
    """What handling an event starts from, read in one round trip: whether the event was seen,
    the profile after applying it, and the customer's live runs and last entries."""

    state: Literal["new", "applied", "done"]
    profile: Profile
    live: dict[str, str]
    last: dict[str, datetime]
    #: The profile's JSON as read ("" when there was none), for a compare-and-set of the profile.
    raw: str = ""
    #: The customer's open measurement windows as read (run id → window, see store/figures.py).
    windows: dict[str, str] = dataclasses.field(default_factory=dict)


def conflict(enrollment: Enrollment, expected: int) -> StateConflict:
    return StateConflict(
        f"enrollment {enrollment.run_id!r} is no longer at revision {expected}; re-read it and decide again"
    )


def enrollment_keys(customer_id: str, run_id: str) -> list[str]:
    """The compare-and-set's keys (see scripts.lib_cas.lua); the figures shard of the run's journey
    version follows them (see :mod:`orchestrator.store.figures`)."""
    return [
        keys.runs(customer_id),
        keys.finished_run(customer_id, run_id),
        keys.pending_updates(customer_id),
        keys.delivered(customer_id),
    ]


def cas_args(
    enrollment: Enrollment,
    expected: int,
    send: SendAction | None,
    timer: tuple[int, float] | Literal["keep"] | None,
    claim: tuple[str, float] | None,
    pending: str,
) -> list[str]:
    """The compare-and-set's 17 arguments (see scripts.lib_cas.lua); the measurement ones follow
    (:meth:`orchestrator.store.figures.FigureArgs.args`, or a shape in scripts.cas_many.lua)."""
    parts = encode_run(enrollment, send, timer)
    return [
        str(expected),
        str(enrollment.revision),
        enrollment.run_id,
        enrollment.journey_id,
        "1" if enrollment.finished else "0",
        str(micros(enrollment.entered_at)) if expected == -1 else "",
        str(FINISHED_TTL),
        "1" if timer == "keep" else "",
        parts.core,
        parts.moments,
        parts.trigger,
        parts.outcomes,
        parts.extra,
        parts.send,
        claim[0] if claim is not None else "",
        repr(claim[1]) if claim is not None else "",
        pending,
    ]


def read_keys(customer_id: str) -> list[str]:
    """The ``read`` script's keys; the first three are one customer's keys of ``read_many``."""
    return [
        keys.profile(customer_id),
        keys.consent(customer_id),
        keys.runs(customer_id),
        keys.seen_events(customer_id),
    ]


def lua_pairs(flat: list[str] | dict[str, str]) -> dict[str, str]:
    """A Lua HGETALL reply (flat list) as a dict."""
    if isinstance(flat, dict):
        return dict(flat)
    return dict(zip(flat[0::2], flat[1::2], strict=True))


def profile_json(profile: Profile) -> str:
    return profile.model_dump_json(exclude={"consent"})


def with_updates(profile: Profile, set_: dict[str, Any], increment: dict[str, float]) -> Profile:
    for name, value in set_.items():
        profile.attributes[name] = value
    for name, amount in increment.items():
        old = profile.attributes.get(name, 0)
        base = old if isinstance(old, int | float) and not isinstance(old, bool) else 0
        total = base + amount
        profile.attributes[name] = int(total) if float(total).is_integer() else total
    return profile


def with_consent(profile: Profile, consent: dict[str, str]) -> Profile:
    if consent:
        profile.consent = {channel: value == "1" for channel, value in consent.items()}
    return profile


def parse_stored(customer_id: str, run_id: str, values: list[str | None]) -> StoredEnrollment | None:
    """A run as the ``get`` script replies (core, then its parts), None when it is absent."""
    return parse_run(customer_id, run_id, values)
