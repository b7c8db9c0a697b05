"""The measurement record is Redis Cluster safe: on a cluster-mode redis-server, which refuses any
script whose keys span slots, every script that counts runs, and the counts read back whole."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import redis
from redis.crc import key_slot

from orchestrator.engine.measuring import Hit
from orchestrator.store import Store, keys
from orchestrator.store.figures import slot_tag
from tests.redis_server import RedisServer, start_cluster_node
from tests.store.test_figures import chunk, create, run, shaped

CUSTOMERS = ["ann", "c-42", "x{y", "用户7", "0123456789abcdef" * 4]
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def cluster_node() -> Iterator[RedisServer]:
    server = start_cluster_node()
    yield server
    server.cleanup()


def test_every_counting_script_keeps_to_the_customers_slot(cluster_node: RedisServer) -> None:
    client = redis.Redis.from_url(cluster_node.url, decode_responses=True)
    client.flushall()
    with pytest.raises(redis.exceptions.ResponseError, match="same slot"):
        client.eval("return 1", 2, keys.runs("ann"), keys.figures_index())
    store = Store(client)
    for customer_id in CUSTOMERS:
        assert create(store, customer_id)  # the compare-and-set with its counts and window
        windows = store.open_windows(customer_id)
        hit = Hit(f"welcome-{customer_id}", goal=True, value=2.0)
        store.run(
            lambda pipe, c=customer_id, w=windows, h=hit: store.measure_event(pipe, c, "e1", NOW.timestamp(), [h], w)
        )
        enrollment = run(customer_id)
        store.set_timer_field(customer_id, enrollment.run_id, 1, 99.0, deferred=(enrollment, "hello", NOW.timestamp()))
    (found,) = store.version_figures("welcome")
    treated = found.arm_totals()["treated"]
    assert (treated.entrants, treated.converters, treated.revenue_sum) == (5, 5, 10.0)
    assert found.step_totals()["hello"] == {"reached": 5, "deferred": 5}
    client.close()


def test_on_a_server_in_cluster_mode_shards_live_in_their_customers_slots(cluster_node: RedisServer) -> None:
    """A server in cluster mode refuses a script across slots, even to a plain client: there a
    version's counts are sharded per slot, each in its customers' slot, and summed back; a cohort
    chunk's creations (one script call per slot) count in their own slot's shard."""
    client = redis.Redis.from_url(cluster_node.url, decode_responses=True)
    client.flushall()
    store = Store(client)
    assert store.slotted and not store.cluster
    ids = [f"cust-{n}" for n in range(40)]
    for customer_id in ids[:20]:
        assert key_slot(store.figures_shard(run(customer_id)).encode()) == key_slot(keys.profile(customer_id).encode())
        assert create(store, customer_id)
    entered = chunk(store, ids[10:], [shaped("treated", customer_id) for customer_id in ids[10:]])
    assert entered == {customer_id: int(customer_id in ids[20:]) for customer_id in ids[10:]}
    assert client.smembers(keys.figures_index()) == {f"welcome|v1|{slot_tag(c)}" for c in ids}
    assert len({slot_tag(c) for c in ids}) > 1
    (found,) = store.version_figures()
    assert found.arm_totals()["treated"].entrants == 40
    assert found.step_totals() == {"hello": {"reached": 40}}
    client.close()


def test_on_a_cluster_a_shard_is_listed_before_the_pipeline_that_counts_in_it_is_sent(
    cluster_client: redis.RedisCluster,
) -> None:
    """A Cluster pipeline sends each node its share apart: a process killed between the node with
    the counting script and the node with the index would leave counts unlisted.  So a shard new
    to this store is listed in its own round trip, before the pipeline is even sent; listed once."""
    store = Store(cluster_client)
    member = store.figures_member(run("ann"))
    pipe = store.redis.pipeline(transaction=False)
    store.index_figures(pipe, {member})
    assert store.redis.smembers(keys.figures_index()) == {member}  # listed though the pipeline never ran
    assert len(pipe.command_stack) == 0  # nothing left to the pipeline
    store.redis.delete(keys.figures_index())
    store.index_figures(pipe, {member})
    assert store.redis.smembers(keys.figures_index()) == set()  # known to this store: no second SADD


def test_on_one_redis_the_shard_is_listed_by_the_same_pipeline_first(cluster_node: RedisServer) -> None:
    """One Redis runs a pipeline in order, so the listing rides on it (no extra round trip)."""
    client = redis.Redis.from_url(cluster_node.url, decode_responses=True)
    client.flushall()
    store = Store(client)
    member = store.figures_member(run("ann"))
    pipe = client.pipeline(transaction=False)
    store.index_figures(pipe, {member})
    assert client.smembers(keys.figures_index()) == set()
    pipe.execute()
    assert client.smembers(keys.figures_index()) == {member}
    client.close()
