"""The packer's replica wait on real servers: the ``WAIT`` rides on the connection that wrote, once
per connection (per master on a cluster), and too few confirmations raise ``NotReplicated``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis

from orchestrator.errors import NotReplicated
from orchestrator.runtime.event_queue import PUSH_SCRIPT, EventQueue, encode
from orchestrator.store import keys
from orchestrator.store.batch import Batch, Script, pipeline
from orchestrator.store.connect import cluster_client
from orchestrator.store.replication import ReplicaWait
from tests.cluster_server import RedisClusterServers
from tests.replicated_server import ReplicatedRedis

ONE = ReplicaWait(1, 1000)


@pytest.fixture
def master(replicated: ReplicatedRedis) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(replicated.url, decode_responses=True)
    yield client
    client.close()


def on_replica(replicated: ReplicatedRedis) -> redis.Redis:
    return redis.Redis.from_url(replicated.replica.url, decode_responses=True)


def test_a_waited_batch_is_on_the_replica_when_it_returns_with_one_wait(
    replicated: ReplicatedRedis, master: redis.Redis
) -> None:
    batch: Any = Batch(master)
    batch.rpush("list", "a", "b")
    batch.set("key", "1")
    assert batch.execute(wait=ONE) == [2, "OK"]  # the WAIT's own reply is not among them
    replica = on_replica(replicated)
    assert replica.lrange("list", 0, -1) == ["a", "b"] and replica.get("key") == "1"
    replica.close()
    assert replicated.waits() == 1
    assert pipeline(master, [("INCR", "n")], wait=ONE) == [1]
    assert replicated.waits() == 2


def test_without_a_wait_none_is_sent(replicated: ReplicatedRedis, master: redis.Redis) -> None:
    batch: Any = Batch(master)
    batch.rpush("list", "a")
    assert batch.execute() == [1]
    assert pipeline(master, [("INCR", "n")]) == [1]
    assert replicated.waits() == 0


def test_a_stopped_replica_makes_the_write_raise_not_replicated_after_the_timeout(
    replicated: ReplicatedRedis, master: redis.Redis
) -> None:
    batch: Any = Batch(master)
    batch.rpush("list", "a")
    with replicated.frozen():
        started = time.monotonic()
        with pytest.raises(NotReplicated) as caught:
            batch.execute(wait=ReplicaWait(1, 200))
        elapsed = time.monotonic() - started
    assert 0.19 <= elapsed < 1.5
    error = caught.value
    assert (error.wanted, error.acknowledged, error.timeout_ms, error.replies) == (1, 0, 200, (1,))
    assert "may or may not have been kept" in str(error)
    assert master.lrange("list", 0, -1) == ["a"]  # on the master: the caller resends it by id


def test_scripts_sent_again_after_noscript_are_waited_for_on_their_connection(
    replicated: ReplicatedRedis, master: redis.Redis
) -> None:
    script = Script("return redis.call('RPUSH', KEYS[1], ARGV[1])")
    master.script_flush()
    batch: Any = Batch(master)
    batch.script(script, ["list"], ["a"])
    assert batch.execute(wait=ONE) == [1]
    assert replicated.waits() == 2  # the refused EVALSHA went out again, with a WAIT of its own
    replica = on_replica(replicated)
    assert replica.lrange("list", 0, -1) == ["a"]
    replica.close()


def test_on_a_cluster_a_batch_waits_once_on_each_master_it_wrote_to(replicated_cluster: RedisClusterServers) -> None:
    replicated_cluster.flush()
    for node in replicated_cluster.primaries():
        reset = redis.Redis.from_url(node.url)
        reset.script_load(PUSH_SCRIPT)  # a NOSCRIPT would send the push, and a WAIT, once more
        reset.config_resetstat()
        reset.close()
    client: Any = cluster_client(replicated_cluster.url, decode_responses=True)
    queue = EventQueue(client)
    now = datetime(2026, 3, 2, tzinfo=UTC)
    items = [(f"c{n}", encode(f"c{n}", "page.viewed", {}, f"e{n}", now)) for n in range(40)]
    owners: dict[int, int] = {}
    for customer, _record in items:
        shard = queue.shard_of(customer)
        owners[shard] = client.get_node_from_key(keys.event_queue(shard)).port
    assert len(set(owners.values())) == 3  # the batch spans every master
    queue.push_many(items, wait=ONE)
    assert replicated_cluster.waits() == dict.fromkeys(set(owners.values()), 1)  # one per master, not per event
    for node in replicated_cluster.primaries():  # each master's replica has that master's events
        replica = replicated_cluster.replica_of(node)
        assert replica is not None
        reader = redis.Redis.from_url(replica.url, decode_responses=True)
        reader.execute_command("READONLY")
        mine = [shard for shard, port in owners.items() if port == node.port]
        held = sum(int(reader.llen(keys.event_queue(shard))) for shard in mine)
        assert held == sum(1 for customer, _ in items if queue.shard_of(customer) in mine)
        reader.close()
    one = items[0][0]
    queue.push_many([(one, encode(one, "page.viewed", {}, "again", now))], wait=ONE)
    after = replicated_cluster.waits()
    assert after[owners[queue.shard_of(one)]] == 2 and sum(after.values()) == 4  # only the master written to
    client.close()
