"""The date index (customers by the month-day of their date attributes) follows every write of a
profile, on a real redis-server and on a Redis Cluster."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest
import redis

from orchestrator.language.profile import Profile
from orchestrator.store import PendingUpdate, Store, date_index, keys
from orchestrator.store.connect import cluster_client


@pytest.fixture
def store(redis_url: str) -> Iterator[Store]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield Store(client)
    client.close()


def days(store: Store, attribute: str = "birthday") -> dict[str, set[str]]:
    """Every non-empty day of ``attribute`` in the index: MM-DD → customer ids."""
    found: dict[str, set[str]] = {}
    for key in store.redis.scan_iter(match=keys.date_day(attribute, "*")):
        found[key.rsplit(":", 1)[1]] = set(store.redis.smembers(key))
    return found


def test_month_days_reads_what_a_date_trigger_reads() -> None:
    stored = Profile(
        id="c1",
        attributes={
            "birthday": "1990-05-17",
            "renewal": "2025-11-02T23:30:00+01:00",  # the date as written, as next_date_fire reads it
            "tier": "gold",
            "code": "ABCD-EF-GHIJ",  # looks like nothing
            "points": 12,
            "Bad Name": "1990-01-01",  # no date trigger can name it
            "orders_count": "1990-01-01",  # Loyaloop's own field wins the clash
        },
        created_at=datetime(2024, 3, 9, 12, tzinfo=UTC),
        last_order_at=datetime(2026, 1, 2, tzinfo=UTC),  # moves with every order: not indexed
    ).model_dump_json(exclude={"consent"})
    assert date_index.month_days(stored) == {"birthday": "05-17", "renewal": "11-02", "created_at": "03-09"}
    assert date_index.month_days("") == {}
    assert date_index.indexed("birthday") and date_index.indexed("created_at")
    assert not date_index.indexed("last_order_at")


def test_near_days_cover_the_zones_and_29_february() -> None:
    assert date_index.near_days(date(2026, 6, 10)) == [f"06-{d:02d}" for d in range(7, 14)]
    assert date_index.near_days(date(2027, 3, 2)) == [
        "02-27",
        "02-28",
        "02-29",
        "03-01",
        "03-02",
        "03-03",
        "03-04",
        "03-05",
    ]
    assert "02-29" not in date_index.near_days(date(2027, 3, 4))
    assert date_index.near_days(date(2026, 12, 30)) == ["01-01", "01-02", "12-27", "12-28", "12-29", "12-30", "12-31"]


def test_the_index_follows_every_kind_of_profile_write(store: Store) -> None:
    store.save_profile(Profile(id="a", attributes={"birthday": "1990-05-17"}))
    store.save_profile(Profile(id="b", attributes={"birthday": "1985-05-17"}))
    assert days(store) == {"05-17": {"a", "b"}}
    store.update_profile("a", {"birthday": "1990-06-01"}, {})  # change_profile
    assert days(store) == {"05-17": {"b"}, "06-01": {"a"}}
    store.apply_event("a", "e1", lambda p: p.model_copy(update={"attributes": {"birthday": "1990-07-04"}}))
    assert days(store) == {"05-17": {"b"}, "07-04": {"a"}}
    raw = store.redis.get(keys.profile("b"))
    assert store.set_profiles([(Profile(id="b", attributes={"birthday": "1985-08-09"}), raw)]) == [True]
    assert days(store) == {"07-04": {"a"}, "08-09": {"b"}}
    assert store.apply_update(PendingUpdate("r1:s1", "b", {"birthday": "1985-09-10"}, {}))
    assert days(store) == {"07-04": {"a"}, "09-10": {"b"}}
    store.update_profile("a", {"birthday": None}, {})  # a date erased leaves its day
    assert days(store) == {"09-10": {"b"}}
    store.update_profile("b", {"tier": "gold"}, {})  # no date moved: nothing to do
    assert days(store) == {"09-10": {"b"}}
    store.save_profile(Profile(id="c", created_at=datetime(2024, 3, 9, tzinfo=UTC)))
    assert days(store, "created_at") == {"03-09": {"c"}}


def test_a_write_that_loses_its_compare_and_set_leaves_the_old_day(store: Store) -> None:
    """The new day is joined before the write and the old one left only after it: a lost write
    leaves an extra member (the planner checks it), never a missing one."""
    store.save_profile(Profile(id="a", attributes={"birthday": "1990-05-17"}))
    stale = Profile(id="a").model_dump_json(exclude={"consent"})
    assert store.set_profiles([(Profile(id="a", attributes={"birthday": "1990-06-01"}), stale)]) == [False]
    assert days(store)["05-17"] == {"a"}


def test_the_backfill_adds_profiles_written_before_the_index(store: Store) -> None:
    for n in range(12):
        profile = Profile(id=f"old{n}", attributes={"birthday": f"1980-01-{n + 1:02d}"})
        store.redis.set(keys.profile(profile.id), profile.model_dump_json(exclude={"consent"}))
    assert days(store) == {}
    assert store.customers_on_days(["birthday"], ["01-03", "01-04"]) == {"old2", "old3"}
    assert store.redis.get(keys.date_index_ready()) == "1"
    assert len(days(store)) == 12


def test_the_index_follows_profile_writes_on_a_cluster(cluster_url: str) -> None:
    """One key per attribute and month-day, in whatever slot it hashes to: written with single-key
    commands, apart from the customer's script, so it works across the cluster's nodes."""
    client = cluster_client(cluster_url, decode_responses=True)
    client.flushall(target_nodes="primaries")
    store = Store(client)
    for n in range(20):
        store.save_profile(Profile(id=f"c{n}", attributes={"birthday": f"1990-{n % 12 + 1:02d}-15"}))
    store.update_profile("c0", {"birthday": "1990-12-31"}, {})
    raw = client.get(keys.profile("c1"))
    assert store.set_profiles([(Profile(id="c1", attributes={"birthday": "1990-12-31"}), raw)]) == [True]
    assert store.customers_on_days(["birthday"], ["12-31"]) == {"c0", "c1"}
    assert store.customers_on_days(["birthday"], ["01-15", "02-15"]) == {"c12", "c13"}
    client.close()
