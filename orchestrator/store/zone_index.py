"""The index of customers by the time zone stored on their profile: what a ``timezone: local``
broadcast reads, so each zone's fire reads that zone's customers instead of every profile.

``lp:tz:<zone>:<shard>`` is a set of customer ids (:func:`orchestrator.store.keys.zone_shard`),
``<zone>`` the profile's ``timezone`` as stored, or ``-`` when it has none or one that cannot be a
zone name.  Each zone is split over :data:`SHARDS` sets by ``crc32(id)``: a zone may hold most of
the customers, and one key must neither sit on one Cluster node nor be read in one reply.  The
keys are untagged, so a zone's shards spread over the nodes; only single-key commands touch them.
``lp:tz:names`` holds every ``<zone>`` ever indexed (it only grows): the broadcast for zone Z reads
every name that *resolves* to Z with the default zone (a missing or unknown zone fires in the
default's), as the cohort entry decides (:func:`orchestrator.engine.run_ids.home_zone`).

**Kept by the writers, exactly once per change**, with the date index and in the same round trips
(:mod:`orchestrator.store.profile_index`): on a profile write whose zone changes, the customer joins
the new zone *before* the write and leaves the old one *after* it succeeded, so a failure leaves an
extra member (which the cohort entry drops: it checks each customer's zone on the profile it reads
anyway), never a missing one.

**Backfill.**  Profiles written before the index existed are added by :func:`reindex` (a SCAN,
adding only), which the first broadcast runs by itself when ``lp:tz:ready`` is missing.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

from orchestrator.engine.localtime import resolve_zone
from orchestrator.store import keys
from orchestrator.store.base import StoreBase

#: Sets per zone.  Fixed: changing it would strand the members of the old shards.
SHARDS = 16
#: The name of customers with no zone, or one that cannot be an IANA name (fires in the default).
NO_ZONE = "-"
#: What an IANA zone name may look like (``America/Argentina/Buenos_Aires``, ``Etc/GMT+3``, ``UTC``):
#: anything else is indexed as :data:`NO_ZONE`, so no profile text ever shapes a key's hash tag.
_ZONE = re.compile(r"[A-Za-z][A-Za-z0-9_+\-/]{0,63}")


def zone_name(doc: dict[str, Any]) -> str:
    """The index name of a profile's parsed JSON ``doc``."""
    value = doc.get("timezone")
    return value if isinstance(value, str) and _ZONE.fullmatch(value) else NO_ZONE


def shard(customer_id: str) -> int:
    return zlib.crc32(customer_id.encode()) % SHARDS


class Change:
    """One profile write's move from zone ``leave`` to zone ``join`` (either None for a new or a
    deleted profile)."""

    __slots__ = ("customer_id", "join", "leave")

    def __init__(self, customer_id: str, before: str | None, after: str | None) -> None:
        self.customer_id = customer_id
        self.join = after
        self.leave = before


def change(customer_id: str, before: str | None, after: str | None) -> Change | None:
    """The index change of a profile whose zone name goes from ``before`` to ``after`` (None: no
    profile); None when it stays (the usual case: no index write at all)."""
    return None if before == after else Change(customer_id, before, after)


def queue_join(pipe: Any, item: Change) -> None:
    if item.join is not None:
        pipe.sadd(keys.zone_names(), item.join)
        pipe.sadd(keys.zone_shard(item.join, shard(item.customer_id)), item.customer_id)


def queue_leave(pipe: Any, item: Change) -> None:
    if item.leave is not None:
        pipe.srem(keys.zone_shard(item.leave, shard(item.customer_id)), item.customer_id)


def names(store: StoreBase) -> set[str]:
    """Every zone name the index has held."""
    return set(store.redis.smembers(keys.zone_names()))


def resolving_to(zone_names: Iterable[str], zone: str, default: str) -> list[str]:
    """The names whose customers' broadcasts fire in ``zone``: those that resolve to it, a missing
    or unknown zone to ``default`` (as :func:`orchestrator.engine.run_ids.home_zone` decides)."""
    return sorted(name for name in zone_names if resolve_zone(None if name == NO_ZONE else name, default).key == zone)


def members(store: StoreBase, zone_names: list[str], count: int) -> Iterator[list[str]]:
    """The ids under ``zone_names``, in batches of about ``count``: every shard's SSCAN advanced in
    one pipelined round trip at a time (a small zone is read in one).  Like SCAN, an id may come
    twice; entering a cohort is keyed by run, so that enters it once."""
    cursors: dict[str, int] = {keys.zone_shard(name, n): 0 for name in sorted(zone_names) for n in range(SHARDS)}
    batch: list[str] = []
    while cursors:
        todo = list(cursors.items())

        def build(pipe: Any, todo: list[tuple[str, int]] = todo) -> None:
            for key, cursor in todo:
                pipe.sscan(key, cursor, count=count)

        replies = store.run(build)
        for (key, _cursor), (following, found) in zip(todo, replies, strict=True):
            batch.extend(found)
            if int(following) == 0:
                del cursors[key]
            else:
                cursors[key] = int(following)
        while len(batch) >= count:
            yield batch[:count]
            batch = batch[count:]
    if batch:
        yield batch
