"""The cluster client on a real three-master Redis Cluster: scripts that no node has seen run once
each, in redis-py pipelines and in the store's packer, which routes by slot and answers as one
Redis does."""

from __future__ import annotations

from typing import Any

import redis

from orchestrator.store.batch import Batch, Script, pipeline
from orchestrator.store.cluster import ScriptingCluster
from orchestrator.store.connect import cluster_client
from tests.cluster_server import RedisClusterServers

#: Appends to a list and returns its length: running it twice would show.
PUSH = "return redis.call('RPUSH', KEYS[1], ARGV[1])"


def keys_on_every_node(client: ScriptingCluster, count: int = 30) -> list[str]:
    names = [f"lp:c:{{c{n}}}:list" for n in range(count)]
    nodes = {client.get_node_from_key(name).name for name in names}  # type: ignore[no-untyped-call]
    assert len(nodes) == 3, "the keys must spread over the three masters"
    return names


def test_a_registered_script_in_a_cluster_pipeline_is_loaded_and_runs_once_per_call(
    cluster_url: str, redis_cluster: RedisClusterServers
) -> None:
    """redis-py's ClusterPipeline raised NoScriptError for a script no node had seen (the drain
    lease renewal, event pushes, the scheduler's re-drive); a retry of the whole pipeline would push
    twice.  Now the refused calls alone are sent again, after loading the script on every primary."""
    client = cluster_client(cluster_url, decode_responses=True)
    names = keys_on_every_node(client)
    client.set(names[0], "x")  # a plain command in the same pipeline must run once too
    client.delete(names[0])
    script = client.register_script(PUSH)
    pipe = client.pipeline(transaction=False)
    for name in names:
        script(keys=[name], args=["v"], client=pipe)
    pipe.incr("lp:counter")
    replies = pipe.execute()
    assert replies == [1] * len(names) + [1]
    assert [client.llen(name) for name in names] == [1] * len(names)
    client.close()


def test_the_packer_routes_by_slot_loads_missing_scripts_and_answers_like_one_redis(
    cluster_url: str, redis_url: str
) -> None:
    cluster = cluster_client(cluster_url, decode_responses=True)
    single = redis.Redis.from_url(redis_url, decode_responses=True)
    names = keys_on_every_node(cluster)
    script = Script(PUSH + " -- packer")
    answers = []
    for client in (single, cluster):
        batch = Batch(client)
        for name in names:
            batch.script(script, [name], ["v"])
        batch.hset(names[1] + ":h", "a", "1")
        batch.hgetall(names[1] + ":h")
        batch.execute_command("SET", names[2] + ":s", "1")
        answers.append(batch.execute())
        assert pipeline(client, [("LLEN", name) for name in names]) == [1] * len(names)
    assert answers[0] == answers[1] == [1] * len(names) + [1, {"a": "1"}, "OK"]
    cluster.close()
    single.close()


def test_an_error_reply_stays_in_place_on_a_cluster(cluster_url: str) -> None:
    cluster = cluster_client(cluster_url, decode_responses=True)
    names = keys_on_every_node(cluster)
    cluster.set(names[0], "text")
    replies = pipeline(cluster, [("INCR", names[0]), ("INCR", names[1]), ("INCR", names[2])])
    assert isinstance(replies[0], redis.exceptions.ResponseError)
    assert replies[1:] == [1, 1]
    cluster.close()


def test_timers_are_scheduled_before_the_rest_of_a_pipeline_is_written(cluster_url: str) -> None:
    """A run's timer is queued before its compare-and-set; on a cluster the timer ZADDs are written
    and acknowledged first (a kill between nodes must never leave state without its timer)."""
    cluster = cluster_client(cluster_url, decode_responses=True)
    stages: list[list[str]] = []
    route = cluster.route_stage

    def recording(commands: list[tuple[object, ...]], **options: Any) -> tuple[list[object], list[int]]:
        stages.append([str(command[0]) for command in commands])
        return route(commands, **options)

    cluster.route_stage = recording  # type: ignore[method-assign]
    commands = []
    for n in range(6):
        commands.append(("ZADD", f"lp:timers:{{t{n}}}", "1", f"c{n}|run|2"))
        commands.append(("HSET", f"lp:c:{{c{n}}}:runs", "run", "2"))
    replies = pipeline(cluster, commands)
    assert replies == [1, 1] * 6
    assert stages == [["ZADD"] * 6, ["HSET"] * 6]
    stages.clear()
    pipeline(cluster, [("HSET", "lp:c:{c1}:runs", "run", "3")])
    assert stages == [["HSET"]]  # no timers: one stage, as before
    cluster.close()
