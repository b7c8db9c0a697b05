"""The indexes every profile write keeps: customers by date (:mod:`orchestrator.store.date_index`)
and by time zone (:mod:`orchestrator.store.zone_index`).

One place for the writers (:mod:`orchestrator.store.profiles`, ``apply_update`` in
:mod:`orchestrator.store.enrollments`) so no writer can keep one index and forget the other: each
parses the JSON it read and the JSON it writes once, and the joins of both indexes share one round
trip before the write, the leaves one after it succeeded (none when nothing moves, the usual case).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from orchestrator.store import date_index, keys, zone_index
from orchestrator.store.base import StoreBase


class Changes:
    """What one profile write does to the indexes (either part None when it moves nothing there)."""

    __slots__ = ("dates", "zone")

    def __init__(self, dates: date_index.Change | None, zone: zone_index.Change | None) -> None:
        self.dates = dates
        self.zone = zone


def change(customer_id: str, stored: str | None, written: str) -> Changes | None:
    """The index changes of writing JSON ``written`` over ``stored`` (``""``/None: a new profile)."""
    before: dict[str, Any] | None = json.loads(stored) if stored else None
    after: dict[str, Any] = json.loads(written)
    days = date_index.Change(
        customer_id, date_index.month_days_of(before) if before is not None else {}, date_index.month_days_of(after)
    )
    dates = days if days.join or days.leave else None
    zone = zone_index.change(
        customer_id, zone_index.zone_name(before) if before is not None else None, zone_index.zone_name(after)
    )
    return None if dates is None and zone is None else Changes(dates, zone)


def join(store: StoreBase, changes: Iterable[Changes | None]) -> None:
    """Add customers to their new days and zones: one round trip, none when nothing moves.  Before
    the write, which every writer calls it for, moving or not: so it also counts the write
    (``store.profile_writes``)."""
    store.profile_writes += 1
    _write(store, changes, joining=True)


def leave(store: StoreBase, changes: Iterable[Changes | None]) -> None:
    """Remove customers from their old days and zones.  Only after the write succeeded."""
    _write(store, changes, joining=False)


def _write(store: StoreBase, changes: Iterable[Changes | None], *, joining: bool) -> None:
    todo = [c for c in changes if c is not None]
    if not todo:
        return

    def build(pipe: Any) -> None:
        for item in todo:
            if item.dates is not None:
                (date_index.queue_join if joining else date_index.queue_leave)(pipe, item.dates)
            if item.zone is not None:
                (zone_index.queue_join if joining else zone_index.queue_leave)(pipe, item.zone)

    store.run(build)


def reindex(store: StoreBase, customers: Iterator[list[str]]) -> int:
    """Add every profile of ``customers`` (batches of ids, a SCAN) to both indexes: the backfill.
    Only adds (a member left over is harmless, the readers check it); returns the profiles read."""
    read = 0
    for ids in customers:

        def build(pipe: Any, ids: list[str] = ids) -> None:
            for customer in ids:
                pipe.get(keys.profile(customer))

        stored = store.run(build)
        join(store, [change(customer, None, raw) for customer, raw in zip(ids, stored, strict=True) if raw])
        read += len(ids)
    return read
