"""How the store's records look in Redis: enrollments, sends, pending updates, profiles, and the
argument lists of the compare-and-set script."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Literal

from orchestrator import keys
from orchestrator.enrollment import Enrollment, SendAction
from orchestrator.errors import StateConflict
from orchestrator.profile import Profile
from orchestrator.store_scripts import FINISHED_TTL

Claim = tuple[Literal["claimed", "done", "busy"], str]


def epoch(moment: datetime) -> float:
    return moment.timestamp()


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
class StoredEnrollment:
    """An enrollment as stored, with its pending send and live timer (``revision``, due epoch)."""

    enrollment: Enrollment
    send: SendAction | None
    timer: tuple[int, float] | None


@dataclasses.dataclass(frozen=True)
class EventState:
    """What handling an event starts from, read in one round trip: whether the event was seen,
    the profile after applying it, and the customer's live runs and last entries."""

    state: Literal["new", "applied", "done"]
    profile: Profile
    live: dict[str, str]
    last: dict[str, datetime]


def conflict(enrollment: Enrollment, expected: int) -> StateConflict:
    return StateConflict(
        f"enrollment {enrollment.run_id!r} is no longer at revision {expected}; re-read it and decide again"
    )


def enrollment_keys(customer_id: str, run_id: str) -> list[str]:
    return [
        keys.enrollment(customer_id, run_id),
        keys.live_enrollments(customer_id),
        keys.last_entry(customer_id),
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
    """The compare-and-set script's 13 arguments (see _CAS_FUNCTION)."""
    timer_arg = "" if timer == "keep" else "x" if timer is None else f"{timer[0]}|{timer[1]!r}"
    return [
        str(expected),
        str(enrollment.revision),
        enrollment.model_dump_json(),
        send_to_json(send) if send is not None else "",
        enrollment.journey_id,
        enrollment.run_id,
        "1" if enrollment.finished else "0",
        repr(epoch(enrollment.entered_at)) if expected == -1 else "",
        str(FINISHED_TTL),
        timer_arg,
        claim[0] if claim is not None else "",
        repr(claim[1]) if claim is not None else "",
        pending,
    ]


def read_keys(customer_id: str) -> list[str]:
    return [
        keys.profile(customer_id),
        keys.consent(customer_id),
        keys.live_enrollments(customer_id),
        keys.last_entry(customer_id),
        keys.seen_events(customer_id),
    ]


def lua_pairs(flat: list[str] | dict[str, str]) -> dict[str, str]:
    """A Lua HGETALL reply (flat list) as a dict."""
    if isinstance(flat, dict):
        return dict(flat)
    return dict(zip(flat[0::2], flat[1::2], strict=True))


def entry_times(raw: dict[str, str]) -> dict[str, datetime]:
    return {journey: datetime.fromtimestamp(float(value), UTC) for journey, value in raw.items()}


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


def parse_stored(data: dict[str, str]) -> StoredEnrollment | None:
    if not data or "doc" not in data:
        return None
    timer = None
    if data.get("timer"):
        revision, _, due = data["timer"].partition("|")
        timer = (int(revision), float(due))
    send = send_from_json(data["send"]) if data.get("send") else None
    return StoredEnrollment(Enrollment.model_validate_json(data["doc"]), send, timer)
