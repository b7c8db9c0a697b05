"""The index of customers by the month and day of their date attributes: what the daily planning of
date triggers (birthdays) reads, so a day's pass reads the few customers whose date falls near it
instead of every profile.

``lp:dates:<attribute>:<MM-DD>`` is a set of customer ids (:func:`orchestrator.store.keys.date_day`).
Every attribute whose stored value reads as a date (ISO text, as a date trigger reads it) is
indexed, with Loyaloop's own ``created_at``; so a journey added later with a date trigger on
another attribute finds its index ready.  ``last_order_at`` is not (it moves with every order):
a date trigger on it, or on any name :func:`indexed` refuses, is planned by a profile scan.

**Kept by the writers, exactly once per change.**  Every write of a profile's JSON goes through
the store (:mod:`orchestrator.store.profiles`, ``apply_update`` in
:mod:`orchestrator.store.enrollments`, both by way of :mod:`orchestrator.store.profile_index`,
which keeps the zone index in the same round trips), which compares the month-days of the JSON it
read with those of the JSON it writes and, only when one differs, adds the customer to the new day
*before* the write and removes them from the old day *after* it succeeded.  The day keys live in other
Cluster slots than the customer's keys, so this cannot be one script; the order makes every
failure leave an extra member (a crash, a lost compare-and-set), never a missing one, and the
planner checks each member against the profile it reads anyway.  The one way to lose a member is
a date changed and changed back by two writers within the same milliseconds (the first writer's
removal landing after the second's addition); deleting ``lp:dates:ready`` repairs any doubt.

**Backfill (the migration).**  Profiles written before the index existed are added by
:func:`orchestrator.store.profile_index.reindex` (a SCAN of the profiles, adding only), which the
planning pass runs by itself when ``lp:dates:ready`` is missing: the first pass after an upgrade
costs one scan, as every pass did before.  Writers keep the index whether or not it is ready, so a
profile written during the scan is in it either way (upgrade every worker before the scheduler, or
delete the mark once they all run this version).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from typing import Any

from orchestrator.engine.localtime import as_date
from orchestrator.language.profile import Profile
from orchestrator.store import keys
from orchestrator.store.base import StoreBase

#: Loyaloop's own profile fields kept in the index (a membership anniversary).
OWN_FIELDS = ("created_at",)
#: Attribute names a date trigger may use (the journey schema's pattern).
_NAME = re.compile(r"[a-z][a-z0-9_]*")
#: Calendar days either side of the planning day whose customers the planner reads: its window
#: (12 hours back, 36 ahead) spans three UTC days, and a local date is a UTC date ± 1.
NEAR_DAYS = 3

Day = tuple[str, str]


def indexed(attribute: str) -> bool:
    """Whether the index holds ``attribute`` (else a date trigger on it is planned by a scan).
    Loyaloop's own fields win a name clash, as :func:`orchestrator.engine.next_date_fire` reads."""
    return attribute in OWN_FIELDS or attribute not in Profile.model_fields


def _month_day(value: Any) -> str | None:
    if not isinstance(value, str) or len(value) < 10 or value[4:5] != "-":
        return None  # not ISO text: cheap to rule out before parsing
    found = as_date(value)
    return None if found is None else f"{found.month:02d}-{found.day:02d}"


def month_days(stored: str | None) -> dict[str, str]:
    """Attribute → ``MM-DD`` of every indexed date of a profile's stored JSON (``""``/None: none)."""
    return month_days_of(json.loads(stored)) if stored else {}


def month_days_of(doc: dict[str, Any]) -> dict[str, str]:
    """:func:`month_days` of a profile's parsed JSON."""
    found: dict[str, str] = {}
    for name, value in (doc.get("attributes") or {}).items():
        if name not in Profile.model_fields and _NAME.fullmatch(name) and (day := _month_day(value)):
            found[name] = day
    for name in OWN_FIELDS:
        if day := _month_day(doc.get(name)):
            found[name] = day
    return found


class Change:
    """The index writes one profile write needs: days to join before it, days to leave after it."""

    __slots__ = ("customer_id", "join", "leave")

    def __init__(self, customer_id: str, before: Mapping[str, str], after: Mapping[str, str]) -> None:
        self.customer_id = customer_id
        self.join = [(name, day) for name, day in after.items() if before.get(name) != day]
        self.leave = [(name, day) for name, day in before.items() if after.get(name) != day]


def queue_join(pipe: Any, item: Change) -> None:
    """Add a customer to their new days (before the profile write)."""
    for day in item.join:
        pipe.sadd(keys.date_day(*day), item.customer_id)


def queue_leave(pipe: Any, item: Change) -> None:
    """Remove a customer from their old days (only after the profile write succeeded)."""
    for day in item.leave:
        pipe.srem(keys.date_day(*day), item.customer_id)


def near_days(today: date) -> list[str]:
    """The month-days a planning pass on UTC day ``today`` reads: :data:`NEAR_DAYS` either side, and
    29 February whenever 28 February is among them (its anniversary in a common year)."""
    days = {(today + timedelta(days=delta)).strftime("%m-%d") for delta in range(-NEAR_DAYS, NEAR_DAYS + 1)}
    if "02-28" in days:
        days.add("02-29")
    return sorted(days)


def customers_on(store: StoreBase, attributes: Iterable[str], days: Iterable[str]) -> set[str]:
    """The ids in the index under any of ``attributes`` on any of ``days`` (one round trip)."""
    wanted = [keys.date_day(name, day) for name in sorted(set(attributes)) for day in days]
    replies = store.run(lambda pipe: [pipe.smembers(key) for key in wanted])
    return {customer for members in replies for customer in members}
