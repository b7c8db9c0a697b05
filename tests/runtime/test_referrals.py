"""Referral attribution through the real runtime on a real Redis: a friend who arrives with a code
and orders within the window credits the referrer (both rewarded by the journey), once; a code
used by its owner's second account, an unknown code or a late first order credit nobody."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.runtime.harness import Harness, journey

REWARD = journey(
    {
        "id": "referral_reward",
        "name": "Referral reward",
        "trigger": {"event": "referral.converted"},
        "re_entry": "always",
        "category": "transactional",
        "steps": [
            {"id": "referrer_points", "update": {"increment": {"points": 500}}},
            {"id": "friend_points", "update": {"to": "event.friend_id", "increment": {"points": 500}}},
            {"id": "thank_referrer", "send": "email", "template": "hello"},
        ],
    }
)


@pytest.fixture
def h(redis_url: str, tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(redis_url, tmp_path, [REWARD]).start()
    harness.api.identify("ann", {"email": "ann@example.com", "referral_code": "anna-7f3k", "points": 0})
    yield harness
    harness.stop()


def arrive(h: Harness, friend: str, code: str, email: str) -> None:
    h.api.identify(friend, {"email": email, "first_name": "Sam", "points": 0})
    h.api.track(friend, "customer.signed_up", {"referral_code": code}, event_id=f"{friend}-signup")
    h.settle()


def order(h: Harness, customer: str, n: int, *, days_later: float = 0) -> None:
    h.clock.advance(days=days_later)
    h.api.track(customer, "order.placed", {"order_id": f"{customer}-{n}", "total": 40}, event_id=f"{customer}-o{n}")
    h.settle()
    h.settle()  # referral.converted is queued for the referrer by the friend's order


def points(h: Harness, customer: str) -> float:
    profile = h.runtime.store.get_profile(customer)
    assert profile is not None
    return float(profile.attributes.get("points", 0))


def test_a_friends_first_order_rewards_both_once(h: Harness) -> None:
    arrive(h, "sam", "ANNA-7F3K", "sam@example.com")
    friend = h.runtime.store.get_profile("sam")
    assert friend is not None and friend.attributes["referred_by"] == "ann"
    order(h, "sam", 1, days_later=5)
    assert (points(h, "ann"), points(h, "sam")) == (500, 500)
    assert [m["customer_id"] for m in h.outbox()] == ["ann"]
    order(h, "sam", 2, days_later=1)  # a second order converts nothing
    h.api.track("sam", "order.placed", {"order_id": "sam-1", "total": 40}, event_id="sam-o1")  # a replay
    h.settle()
    assert (points(h, "ann"), points(h, "sam")) == (500, 500)
    assert h.runtime.store.counters()["referrals_converted"] == 1


def test_a_second_account_of_the_referrer_is_not_a_friend(h: Harness) -> None:
    arrive(h, "ann-2", "ANNA-7F3K", "ANN@example.com")
    order(h, "ann-2", 1)
    assert points(h, "ann") == 0 and h.runtime.store.counters()["referral_self"] == 1
    arrive(h, "ann", "ANNA-7F3K", "ann@example.com")  # her own code on her own account
    assert h.runtime.store.counters()["referral_self"] == 2


def test_an_unknown_code_or_a_late_first_order_credits_nobody(h: Harness) -> None:
    arrive(h, "kim", "NOPE-0000", "kim@example.com")
    assert h.runtime.store.counters()["referral_unknown_code"] == 1
    arrive(h, "lee", "ANNA-7F3K", "lee@example.com")
    order(h, "lee", 1, days_later=31)  # the window is 30 days
    assert points(h, "ann") == 0 and h.runtime.store.counters()["referral_expired"] == 1
