"""The zone index: a ``timezone: local`` broadcast's fire for one zone reads only the customers who
fire in that zone (a missing or unknown zone fires in the default's), follows a profile whose zone
changes, is backfilled from profiles written before it existed, and stays Cluster safe."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from orchestrator.language.profile import Profile
from orchestrator.store import Store, keys, zone_index
from tests.redis_server import RedisServer, start_cluster_node

DEFAULT = "Europe/Amsterdam"


def in_zone(store: Store, zone: str, count: int = 1000) -> list[str]:
    return sorted(customer for ids in store.customers_in_zone(zone, DEFAULT, count) for customer in ids)


@pytest.fixture
def store(redis_url: str) -> Iterator[Store]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushall()
    yield Store(client)
    client.close()


def seed(store: Store) -> None:
    for n in range(30):
        store.save_profile(Profile(id=f"ny{n}", timezone="America/New_York"))
    for n in range(20):
        store.save_profile(Profile(id=f"tk{n}", timezone="Asia/Tokyo"))
    store.save_profile(Profile(id="ams", timezone="Europe/Amsterdam"))
    store.save_profile(Profile(id="none"))
    store.save_profile(Profile(id="mars", timezone="Mars/Olympus_Mons"))  # looks like a zone, is none
    store.save_profile(Profile(id="odd", timezone="{not a zone}"))


def test_each_zone_reads_only_its_own_customers_and_the_default_takes_the_zoneless(store: Store) -> None:
    seed(store)
    assert in_zone(store, "America/New_York") == sorted(f"ny{n}" for n in range(30))
    assert in_zone(store, "Asia/Tokyo") == sorted(f"tk{n}" for n in range(20))
    assert in_zone(store, DEFAULT) == ["ams", "mars", "none", "odd"]
    assert in_zone(store, "Australia/Sydney") == []
    # Profile text never shapes a key: a name that cannot be a zone is filed under "-".
    assert store.redis.smembers(keys.zone_names()) == {
        "America/New_York",
        "Asia/Tokyo",
        "Europe/Amsterdam",
        "Mars/Olympus_Mons",
        zone_index.NO_ZONE,
    }


def test_batches_are_cut_at_the_asked_size_and_every_shard_is_read(store: Store) -> None:
    seed(store)
    batches = list(store.customers_in_zone("America/New_York", DEFAULT, 7))
    assert [len(batch) for batch in batches] == [7, 7, 7, 7, 2]
    assert len({customer for batch in batches for customer in batch}) == 30
    shards = {zone_index.shard(f"ny{n}") for n in range(30)}
    assert len(shards) > 1  # the zone is spread over several keys, all of them read


def test_a_customer_who_moves_fires_in_the_new_zone_only(store: Store) -> None:
    seed(store)
    store.update_profile("ny3", {}, {})  # a write that moves nothing keeps them where they are
    store.change_profile("ny3", lambda p: p.model_copy(update={"timezone": "Asia/Tokyo"}))
    store.change_profile("none", lambda p: p.model_copy(update={"timezone": "America/New_York"}))
    assert "ny3" not in in_zone(store, "America/New_York") and "none" in in_zone(store, "America/New_York")
    assert "ny3" in in_zone(store, "Asia/Tokyo")
    assert "none" not in in_zone(store, DEFAULT)
    assert "ny3" not in store.redis.smembers(keys.zone_shard("America/New_York", zone_index.shard("ny3")))


def test_the_batched_event_path_keeps_the_index(store: Store) -> None:
    """``set_profiles`` (the batched event path's writer) joins the new zone and leaves the old one."""
    store.save_profile(Profile(id="a", timezone="Asia/Tokyo"))
    raw = store.redis.get(keys.profile("a"))
    assert raw is not None
    assert store.set_profiles([(Profile(id="a", timezone="America/New_York"), raw), (Profile(id="b"), "")]) == [
        True,
        True,
    ]
    assert in_zone(store, "America/New_York") == ["a"] and in_zone(store, "Asia/Tokyo") == []
    assert in_zone(store, DEFAULT) == ["b"]


def test_profiles_from_before_the_index_are_backfilled_by_the_first_read(store: Store) -> None:
    for n, zone in enumerate(["Asia/Tokyo", "Asia/Tokyo", None]):
        profile = Profile(id=f"old{n}", timezone=zone)
        store.redis.set(keys.profile(profile.id), profile.model_dump_json(exclude={"consent"}))
    assert not store.redis.exists(keys.zone_index_ready())
    assert in_zone(store, "Asia/Tokyo") == ["old0", "old1"]
    assert in_zone(store, DEFAULT) == ["old2"]
    assert store.redis.get(keys.zone_index_ready()) == "1"


@pytest.fixture(scope="module")
def cluster_node() -> Iterator[RedisServer]:
    server = start_cluster_node()
    yield server
    server.cleanup()


def test_the_index_keeps_to_single_key_commands_on_a_cluster_node(cluster_node: RedisServer) -> None:
    """A cluster-mode redis-server refuses a script across slots: writing and reading the index
    (sets in other slots than the customers' keys) must not need one."""
    client = redis.Redis.from_url(cluster_node.url, decode_responses=True)
    client.flushall()
    store = Store(client)
    seed(store)
    store.change_profile("tk0", lambda p: p.model_copy(update={"timezone": "America/New_York"}))
    assert in_zone(store, "America/New_York") == sorted([*(f"ny{n}" for n in range(30)), "tk0"])
    assert in_zone(store, "Asia/Tokyo") == sorted(f"tk{n}" for n in range(1, 20))
    client.close()
