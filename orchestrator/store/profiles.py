"""Profiles, consent and seen events: a customer's data changes here, each event exactly once."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal

import redis

from orchestrator.language.profile import Profile
from orchestrator.store import keys
from orchestrator.store.base import StoreBase
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


class ProfileStore(StoreBase):
    """Profiles with their consent, and the events applied to them."""

    def get_profile(self, customer_id: str) -> Profile | None:
        """The profile with consent merged in, or None for a customer never seen."""
        return self.get_profiles([customer_id]).get(customer_id)

    def get_profiles(self, customer_ids: Iterable[str]) -> dict[str, Profile]:
        """Many profiles in one pipelined round trip (cohort fan-out reads 500 at a time)."""
        ids = list(customer_ids)
        pipe = self.redis.pipeline(transaction=False)
        for customer_id in ids:
            pipe.get(keys.profile(customer_id))
            pipe.hgetall(keys.consent(customer_id))
        replies = pipe.execute()
        found: dict[str, Profile] = {}
        for index, customer_id in enumerate(ids):
            raw, consent = replies[2 * index], replies[2 * index + 1]
            if raw is None:
                continue
            found[customer_id] = with_consent(Profile.model_validate_json(raw), consent)
        return found

    def save_profile(self, profile: Profile) -> None:
        """Write a whole profile (consent goes to its own hash)."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(keys.profile(profile.id), profile_json(profile))
        if profile.consent:
            pipe.hset(keys.consent(profile.id), mapping={k: "1" if v else "0" for k, v in profile.consent.items()})
        pipe.execute()

    def change_profile(self, customer_id: str, change: Callable[[Profile], Profile | None]) -> Profile:
        """Read-modify-write a profile under WATCH (retried on a concurrent change).

        ``change`` receives the current profile (a fresh one for a new customer) and returns the
        new one, or None to leave it untouched.
        """
        key = keys.profile(customer_id)
        while True:
            with self.redis.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(key)
                    raw = pipe.get(key)
                    consent = pipe.hgetall(keys.consent(customer_id))
                    current = Profile.model_validate_json(raw) if raw else Profile(id=customer_id)
                    current = with_consent(current, consent)
                    changed = change(current.model_copy(deep=True))
                    if changed is None:
                        return current
                    pipe.multi()
                    pipe.set(key, profile_json(changed))
                    if changed.consent != current.consent:
                        mapping = {k: "1" if v else "0" for k, v in changed.consent.items()}
                        pipe.delete(keys.consent(customer_id))
                        if mapping:
                            pipe.hset(keys.consent(customer_id), mapping=mapping)
                    pipe.execute()
                    return changed
                except redis.WatchError:
                    continue

    def apply_event(
        self, customer_id: str, event_id: str, change: Callable[[Profile], Profile], *, read_only: bool = False
    ) -> EventState:
        """Apply an event's effect on the profile exactly once (phase one of event handling).

        ``state`` is ``new`` when applied now, ``applied`` when an earlier delivery applied it but
        did not finish the journeys part (redo that part), ``done`` for a duplicate.  One script
        reads everything, then one writes only if the profile did not change meanwhile.  With
        ``read_only`` (an event that changes nothing on a known profile) the read marks the event
        applied itself: one call in all.
        """
        while True:
            mark = "1" if read_only else "0"
            raw, consent, live, last, seen = self._script("read", read_keys(customer_id), [event_id, mark, SEEN_TTL])
            current = Profile.model_validate_json(raw) if raw else Profile(id=customer_id)
            current = with_consent(current, lua_pairs(consent))
            entries = entry_times(lua_pairs(last))
            if seen == "applied" or seen == "done":
                return EventState("applied" if seen == "applied" else "done", current, lua_pairs(live), entries)
            changed = change(current.model_copy(deep=True))
            if read_only:
                if changed != current:  # a first event of an unknown customer: the profile is created
                    changed = self.change_profile(customer_id, change)
                return EventState("new", changed, lua_pairs(live), entries)
            result = self._script(
                "apply",
                [keys.profile(customer_id), keys.seen_events(customer_id)],
                [raw or "", profile_json(changed), event_id, SEEN_TTL],
            )
            if result == "new":
                return EventState("new", changed, lua_pairs(live), entries)

    def read_events(self, items: list[tuple[str, str]]) -> list[EventState]:
        """Phase one of many events that change no profile field, in one round trip: per (customer
        id, event id) the customer's profile, live runs and last entries and whether the event was
        seen, marking unseen ones applied — :meth:`apply_event` with ``read_only`` for a batch.

        ``state`` is ``new`` for an event seen now for the first time; the profile is as stored
        (an unknown customer gets an empty one, which the caller creates)."""

        def build(pipe: Any) -> None:
            for customer_id, event_id in items:
                self.evalsha(pipe, "read", read_keys(customer_id), [event_id, "1", SEEN_TTL])

        states: list[EventState] = []
        validate = Profile.model_validate_json
        for (customer_id, _event), reply in zip(items, self.run(build), strict=True):
            raw, consent, live, last, seen = reply
            profile = with_consent(validate(raw) if raw else Profile(id=customer_id), lua_pairs(consent))
            state: Literal["new", "applied", "done"] = (
                "applied" if seen == "applied" else "done" if seen == "done" else "new"
            )
            states.append(EventState(state, profile, lua_pairs(live), entry_times(lua_pairs(last)), raw or ""))
        return states

    def set_profiles(self, items: list[tuple[Profile, str]]) -> list[bool]:
        """Write many profiles (consent apart) in one round trip, each only if its stored JSON is
        still the one read (``""``: none); False for those that changed meanwhile."""

        def build(pipe: Any) -> None:
            for profile, raw in items:
                self.evalsha(pipe, "set_profile", [keys.profile(profile.id)], [raw, profile_json(profile)])

        return [bool(ok) for ok in self.run(build)] if items else []

    def finish_event(self, customer_id: str, event_id: str, pipe: Any = None) -> None:
        """Phase two done: a redelivered copy of this event is now a pure duplicate."""
        (pipe or self.redis).hset(keys.seen_events(customer_id), event_id, "done")

    def update_profile(self, customer_id: str, set_: dict[str, Any], increment: dict[str, float]) -> Profile:
        """Apply attributes set and numbers incremented now (not keyed: journeys use apply_update)."""
        return self.change_profile(customer_id, lambda profile: with_updates(profile, set_, increment))

    def set_consent(self, customer_id: str, channel: str, given: bool) -> None:
        self.redis.hset(keys.consent(customer_id), channel, "1" if given else "0")

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
