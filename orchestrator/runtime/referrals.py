"""Referral attribution: a friend's first order credited to whoever invited them, by Loyaloop itself.

The friend arrives with the referrer's code (``referral_code`` on their sign-up event, or any
event); the code is resolved to the referrer (codes reach Loyaloop with ``identify``), and the
friend's profile remembers ``referred_by`` and ``referred_at``.  When the friend's first order
arrives within the window (``referrals.window`` in settings, 30 days by default), Loyaloop tracks
``referral.converted`` on the referrer (``friend_id``, ``referrer_id``, ``friend_first_name``: the
goal of the journeys that invite) and ``referral.reward_due`` on the friend (the same properties:
the trigger of the journey that rewards both sides), so the shop works nothing out.  The reward
hangs on the friend, who converts once, so every friend a referrer brings is rewarded in a run of
its own — however many convert at once, and whether or not the referrer was in an invitation's
holdout.

Fraud basics: a code is refused for the customer who owns it, and for a friend whose e-mail
address or phone number is the referrer's (one person, two accounts); a friend is attributed and
converted once (``referral_converted_at``), whatever is replayed.  Each refusal is counted
(``referral_self``, ``referral_unknown_code``, ``referral_expired``).

Exactly once: ``referral.converted`` carries the event id ``referral:<friend id>`` and
``referral.reward_due`` ``referral-reward:<friend id>``, so queueing them again after a crash is
dropped by the seen-event marks; both are queued before the friend is marked converted, so a crash
in between loses nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from orchestrator.engine.derive import ORDER_EVENTS
from orchestrator.language.profile import Profile
from orchestrator.runtime.event_queue import EventQueue, encode
from orchestrator.store import Store, keys

CONVERTED = "referral.converted"
#: Queued on the friend: what the reward journey enters on (once per friend).
REWARD_DUE = "referral.reward_due"
#: Property of an event carrying the code the customer arrived with.
CODE_PROPERTY = "referral_code"
DEFAULT_WINDOW = timedelta(days=30)


def register_code(store: Store, customer_id: str, code: Any) -> None:
    """Remember whose code this is (the first owner keeps it: a code is one person's)."""
    if isinstance(code, str) and code.strip():
        store.redis.hsetnx(keys.referral_codes(), code.strip().upper(), customer_id)


class Referrals:
    def __init__(
        self,
        store: Store,
        events: EventQueue,
        *,
        window: timedelta = DEFAULT_WINDOW,
        nudge: Callable[[int], None] | None = None,
    ) -> None:
        self.store = store
        self.events = events
        self.window = window
        self.nudge = nudge

    def see(self, customer_id: str, name: str, properties: dict[str, Any], profile: Profile, at: datetime) -> None:
        """Attribute the customer to a referrer when an event carries a code; credit the referrer
        when this is the customer's first order within the window."""
        code = properties.get(CODE_PROPERTY)
        if isinstance(code, str) and code.strip() and "referred_by" not in profile.attributes:
            profile = self._attribute(customer_id, code.strip().upper(), profile, at)
        if name in ORDER_EVENTS and profile.orders_count == 1:
            self._convert(customer_id, profile, at)

    def _attribute(self, friend_id: str, code: str, profile: Profile, at: datetime) -> Profile:
        referrer_id = self.store.redis.hget(keys.referral_codes(), code)
        if referrer_id is None:
            self.store.count("referral_unknown_code")
            return profile
        referrer = self.store.get_profile(referrer_id)
        if referrer_id == friend_id or (referrer is not None and _same_person(referrer, profile)):
            self.store.count("referral_self")
            return profile

        def attribute(current: Profile) -> Profile | None:
            if "referred_by" in current.attributes:
                return None  # attributed once: a later code changes nothing
            current.attributes.update({"referred_by": referrer_id, "referred_at": at.isoformat()})
            return current

        return self.store.change_profile(friend_id, attribute)

    def _convert(self, friend_id: str, profile: Profile, at: datetime) -> None:
        referrer_id = profile.attributes.get("referred_by")
        if not isinstance(referrer_id, str) or "referral_converted_at" in profile.attributes:
            return
        since = _moment(profile.attributes.get("referred_at"))
        if since is None or at - since > self.window:
            self.store.count("referral_expired")
            return
        properties = {
            "referrer_id": referrer_id,
            "friend_id": friend_id,
            "friend_first_name": profile.attributes.get("first_name", ""),
        }
        for customer_id, name, event_id in (
            (referrer_id, CONVERTED, f"referral:{friend_id}"),
            (friend_id, REWARD_DUE, f"referral-reward:{friend_id}"),
        ):
            shard = self.events.push(customer_id, encode(customer_id, name, properties, event_id, at))
            if shard is not None and self.nudge is not None:
                self.nudge(shard)

        def converted(current: Profile) -> Profile | None:
            if "referral_converted_at" in current.attributes:
                return None
            current.attributes["referral_converted_at"] = at.isoformat()
            return current

        self.store.change_profile(friend_id, converted)
        self.store.count("referrals_converted")


def _same_person(referrer: Profile, friend: Profile) -> bool:
    """One person behind two accounts: the same e-mail address or phone number."""
    pairs = ((referrer.email, friend.email), (referrer.phone, friend.phone))
    return any(mine and theirs and mine.lower() == theirs.lower() for mine, theirs in pairs)


def _moment(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
