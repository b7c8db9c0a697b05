"""Profiles, consent and seen events: a customer's data changes here, each event exactly once.

Consent is written by :func:`queue_consent` alone, always with its history entry (the proof of
who changed it, when and how).  The rules of a change (what must be said, by whom) belong to the
gate, :func:`orchestrator.gate.consent.set_consent`, which every door calls; a profile save that
carries consent records the channels it changes through the same function.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Literal

import redis

from orchestrator.language.profile import Profile
from orchestrator.store import date_index, keys, profile_index, zone_index
from orchestrator.store.base import StoreBase
from orchestrator.store.batch import Batch
from orchestrator.store.codec import (
    EventState,
    entry_times,
    lua_pairs,
    profile_json,
    read_keys,
    with_consent,
    with_updates,
)
from orchestrator.store.scripts import SEEN_TTL

#: Consent history entries kept per customer (the newest win): enough for any audit, bounded for Redis.
CONSENT_HISTORY_LENGTH = 200


def queue_consent(pipe: Any, customer_id: str, changes: Mapping[str, bool], *, source: str, at: float) -> None:
    """Queue the one write of consent on ``pipe`` (a MULTI, so the proof never disagrees with the
    state): the channels' flags (``"1"``/``"0"``) and one history entry per channel, saying
    ``source`` and ``at`` (epoch seconds).  Both keys carry the customer's hash tag (one Cluster slot)."""
    if not changes:
        return
    pipe.hset(keys.consent(customer_id), mapping={channel: _flag(granted) for channel, granted in changes.items()})
    for channel, granted in changes.items():
        pipe.xadd(
            keys.consent_history(customer_id),
            {"channel": channel, "granted": _flag(granted), "source": source, "at": f"{at:.3f}"},
            maxlen=CONSENT_HISTORY_LENGTH,
            approximate=True,
        )


def consent_changes(before: Mapping[str, bool], after: Mapping[str, bool]) -> dict[str, bool]:
    """The channels ``after`` sets to another value than ``before`` (a channel left out is no change:
    consent is never erased, only withdrawn, so its history stays whole)."""
    return {channel: granted for channel, granted in after.items() if before.get(channel) != granted}


def _moment(now: float | None) -> str:
    return "" if now is None else repr(now)


def _flag(granted: bool) -> str:
    return "1" if granted else "0"


def queue_profiles(pipe: Any, ids: list[str]) -> None:
    """Queue the reads of ``ids``' profiles with their consent (two replies each, for :func:`parse_profiles`)."""
    for customer_id in ids:
        pipe.get(keys.profile(customer_id))
        pipe.hgetall(keys.consent(customer_id))


def parse_profiles(ids: list[str], replies: list[Any]) -> dict[str, Profile]:
    """The profiles of :func:`queue_profiles`' replies; customers never seen are left out."""
    found: dict[str, Profile] = {}
    for index, customer_id in enumerate(ids):
        raw, consent = replies[2 * index], replies[2 * index + 1]
        if raw is not None:
            found[customer_id] = with_consent(Profile.model_validate_json(raw), consent)
    return found


class ProfileStore(StoreBase):
    """Profiles with their consent, and the events applied to them."""

    def get_profile(self, customer_id: str) -> Profile | None:
        """The profile with consent merged in, or None for a customer never seen."""
        return self.get_profiles([customer_id]).get(customer_id)

    def get_profiles(self, customer_ids: Iterable[str]) -> dict[str, Profile]:
        """Many profiles in one pipelined round trip (cohort fan-out reads 500 at a time)."""
        ids = list(customer_ids)
        if not ids:
            return {}
        pipe: Any = Batch(self.redis)  # the packer: a timer's or a send's single read is a hot path
        queue_profiles(pipe, ids)
        return parse_profiles(ids, pipe.execute())

    def save_profile(self, profile: Profile, *, source: str = "profile") -> None:
        """Write a whole profile; the consent channels it changes are recorded with ``source`` in the
        consent history (the hash keeps channels it leaves out)."""
        self.change_profile(profile.id, lambda _current: profile.model_copy(deep=True), source=source)

    def change_profile(
        self, customer_id: str, change: Callable[[Profile], Profile | None], *, source: str = "profile"
    ) -> Profile:
        """Read-modify-write a profile under WATCH (retried on a concurrent change).

        ``change`` receives the current profile (a fresh one for a new customer) and returns the
        new one, or None to leave it untouched.  Consent it changes is written by
        :func:`queue_consent` in the same MULTI, with ``source`` in the history.
        """
        key = keys.profile(customer_id)
        while True:
            with self.redis.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(key, keys.consent(customer_id))
                    raw = pipe.get(key)
                    consent = pipe.hgetall(keys.consent(customer_id))
                    current = Profile.model_validate_json(raw) if raw else Profile(id=customer_id)
                    current = with_consent(current, consent)
                    changed = change(current.model_copy(deep=True))
                    if changed is None:
                        return current
                    changes = consent_changes(current.consent, changed.consent)
                    written = profile_json(changed)
                    indexed = profile_index.change(customer_id, raw, written)
                    profile_index.join(self, [indexed])
                    pipe.multi()
                    pipe.set(key, written)
                    queue_consent(pipe, customer_id, changes, source=source, at=time.time())
                    pipe.execute()
                    profile_index.leave(self, [indexed])
                    return changed.model_copy(update={"consent": {**current.consent, **changed.consent}})
                except redis.WatchError:
                    continue

    def apply_event(
        self,
        customer_id: str,
        event_id: str,
        change: Callable[[Profile], Profile],
        *,
        read_only: bool = False,
        now: float | None = None,
    ) -> EventState:
        """Apply an event's effect on the profile exactly once (phase one of event handling).

        ``state`` is ``new`` when applied now, ``applied`` when an earlier delivery applied it but
        did not finish the journeys part (redo that part), ``done`` for a duplicate.  One script
        reads everything, then one writes only if the profile did not change meanwhile.  With
        ``read_only`` (an event that changes nothing on a known profile) the read marks the event
        applied itself: one call in all.  ``now`` (the runtime's clock) drops the customer's
        measurement windows that closed before it; the open ones come back in ``windows``.
        """
        while True:
            mark = "1" if read_only else "0"
            raw, consent, live, last, seen, windows = self._script(
                "read", read_keys(customer_id), [event_id, mark, SEEN_TTL, _moment(now)]
            )
            current = Profile.model_validate_json(raw) if raw else Profile(id=customer_id)
            current = with_consent(current, lua_pairs(consent))
            entries = entry_times(lua_pairs(last))
            open_ = lua_pairs(windows) if windows else {}
            if seen == "applied" or seen == "done":
                state: Literal["applied", "done"] = "applied" if seen == "applied" else "done"
                return EventState(state, current, lua_pairs(live), entries, windows=open_)
            changed = change(current.model_copy(deep=True))
            if read_only:
                if changed != current:  # a first event of an unknown customer: the profile is created
                    changed = self.change_profile(customer_id, change)
                return EventState("new", changed, lua_pairs(live), entries, windows=open_)
            written = profile_json(changed)
            indexed = profile_index.change(customer_id, raw, written)
            profile_index.join(self, [indexed])
            result = self._script(
                "apply",
                [keys.profile(customer_id), keys.seen_events(customer_id)],
                [raw or "", written, event_id, SEEN_TTL],
            )
            if result == "new":
                profile_index.leave(self, [indexed])
                return EventState("new", changed, lua_pairs(live), entries, windows=open_)

    def read_events(self, items: list[tuple[str, str]], now: float | None = None) -> list[EventState]:
        """Phase one of many events that change no profile field, in one round trip: per (customer
        id, event id) the customer's profile, live runs and last entries and whether the event was
        seen, marking unseen ones applied — :meth:`apply_event` with ``read_only`` for a batch.

        ``state`` is ``new`` for an event seen now for the first time; the profile is as stored
        (an unknown customer gets an empty one, which the caller creates)."""

        def build(pipe: Any) -> None:
            for customer_id, event_id in items:
                self.evalsha(pipe, "read", read_keys(customer_id), [event_id, "1", SEEN_TTL, _moment(now)])

        states: list[EventState] = []
        validate = Profile.model_validate_json
        for (customer_id, _event), reply in zip(items, self.run(build), strict=True):
            raw, consent, live, last, seen, windows = reply
            profile = with_consent(validate(raw) if raw else Profile(id=customer_id), lua_pairs(consent))
            state: Literal["new", "applied", "done"] = (
                "applied" if seen == "applied" else "done" if seen == "done" else "new"
            )
            open_ = lua_pairs(windows) if windows else {}
            states.append(EventState(state, profile, lua_pairs(live), entry_times(lua_pairs(last)), raw or "", open_))
        return states

    def set_profiles(self, items: list[tuple[Profile, str]]) -> list[bool]:
        """Write many profiles (consent apart) in one round trip, each only if its stored JSON is
        still the one read (``""``: none); False for those that changed meanwhile."""

        if not items:
            return []
        written = [profile_json(profile) for profile, _raw in items]
        indexed = [profile_index.change(p.id, raw, text) for (p, raw), text in zip(items, written, strict=True)]
        profile_index.join(self, indexed)

        def build(pipe: Any) -> None:
            for (profile, raw), text in zip(items, written, strict=True):
                self.evalsha(pipe, "set_profile", [keys.profile(profile.id)], [raw, text])

        done = [bool(ok) for ok in self.run(build)]
        profile_index.leave(self, [change for change, ok in zip(indexed, done, strict=True) if ok])
        return done

    def finish_event(self, customer_id: str, event_id: str, pipe: Any = None) -> None:
        """Phase two done: a redelivered copy of this event is now a pure duplicate."""
        (pipe or self.redis).hset(keys.seen_events(customer_id), event_id, "done")

    def update_profile(self, customer_id: str, set_: dict[str, Any], increment: dict[str, float]) -> Profile:
        """Apply attributes set and numbers incremented now (not keyed: journeys use apply_update)."""
        return self.change_profile(customer_id, lambda profile: with_updates(profile, set_, increment))

    def scan_customers(self, count: int = 1000) -> Iterator[list[str]]:
        """Every known customer id, in batches (SCAN, never KEYS)."""
        prefix, suffix = keys.profile("\0").split("\0")
        batch: list[str] = []
        for key in self.redis.scan_iter(match=f"{prefix}*{suffix}", count=count):
            batch.append(key[len(prefix) : -len(suffix)])
            if len(batch) >= count:
                yield batch
                batch = []
        if batch:
            yield batch

    def reindex_dates(self) -> int:
        """Add every profile to the date index (the backfill; see :mod:`orchestrator.store.date_index`)
        and mark the index ready; returns the profiles read.  The scan fills the zone index too."""
        read = profile_index.reindex(self, self.scan_customers())
        self.redis.set(keys.date_index_ready(), "1")
        self.redis.set(keys.zone_index_ready(), "1")
        return read

    def customers_on_days(self, attributes: Iterable[str], days: Iterable[str]) -> set[str]:
        """The customers whose date ``attributes`` fall on any of ``days`` (``MM-DD``), backfilling
        the index first when it was never built."""
        if not self.redis.exists(keys.date_index_ready()):
            self.reindex_dates()
        return date_index.customers_on(self, attributes, days)

    def customers_in_zone(self, zone: str, default: str, count: int = 1000) -> Iterator[list[str]]:
        """The customers whose home zone is ``zone`` (``default`` for those without a valid one), in
        batches (:func:`orchestrator.store.zone_index.members`), backfilling the index first when it
        was never built.  May hold a customer who moved away since: the cohort entry checks."""
        if not self.redis.exists(keys.zone_index_ready()):
            self.reindex_dates()
        names = zone_index.resolving_to(zone_index.names(self), zone, default)
        return zone_index.members(self, names, count)
