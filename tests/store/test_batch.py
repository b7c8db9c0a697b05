"""The pipeline packer on every backend the store meets: a real redis-server spoken to in RESP2 and
in RESP3 (the redis-py default from 8.0 on), the embedded demo's fakeredis, and a Redis Cluster
client: the same replies, error replies, reloading of forgotten scripts and dropped connections."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest
import redis

from orchestrator.store import Store, batch
from orchestrator.store.batch import CHUNK, Batch, Script, pipeline
from tests.redis_server import RedisServer, free_port

BACKENDS = ["redis-server RESP2", "redis-server RESP3", "fakeredis"]

#: A script the packer knows (built in this process), with a side effect to count its runs.
COUNTED = Script("redis.call('INCR', KEYS[1]) return {1, false, 'x', {2, ARGV[1]}}")


@pytest.fixture(params=BACKENDS)
def client(request: pytest.FixtureRequest) -> Iterator[redis.Redis]:
    if request.param == "fakeredis":
        fake: redis.Redis = fakeredis.FakeRedis(decode_responses=True)
        yield fake
        return
    url = request.getfixturevalue("redis_url")
    real = redis.Redis.from_url(url, decode_responses=True, protocol=3 if "RESP3" in request.param else 2)
    yield real
    real.close()


def test_every_backend_goes_through_the_packer(client: redis.Redis) -> None:
    """fakeredis and a real server take the same path (only a cluster client does not)."""
    assert batch.streams(client)


def test_replies_are_the_same_on_every_backend(client: redis.Redis) -> None:
    """What the store reads back (scripts' tables with false and nesting, HGETALL as a dict, HMGET,
    GET, integer and status replies) comes back alike from redis-server in RESP2 and RESP3 and from
    fakeredis, so the embedded demo sees the reply types production sees.  (redis-py's pipeline
    turned SET's "OK" into True on fakeredis, while the packer left it "OK" on a real server.)"""
    pipe = Batch(client)
    pipe.set("s", "v")
    pipe.hset("h", mapping={"a": "1", "b": "2"})
    pipe.hgetall("h")
    pipe.hgetall("no-hash")
    pipe.hmget("h", ["a", "nope"])
    pipe.get("nope")
    pipe.rpush("l", "x", "y")
    pipe.script(COUNTED, ["n"], ["arg"])
    pipe.evalsha(COUNTED.sha, 1, "n", "again")
    assert pipe.execute() == [
        "OK",
        2,
        {"a": "1", "b": "2"},
        {},
        ["1", None],
        None,
        2,
        [1, None, "x", [2, "arg"]],
        [1, None, "x", [2, "again"]],
    ]


def test_a_store_pipeline_reads_alike_on_every_backend(client: redis.Redis) -> None:
    """Store.run is the packer: an empty batch is still picked by ``pipe or client``, and the
    replies are the packer's on every backend."""
    store = Store(client)

    def build(pipe: Any) -> None:
        assert pipe
        pipe.hset("h", mapping={"a": "1"})
        pipe.hgetall("h")
        pipe.set("k", "v")

    assert store.run(build) == [1, {"a": "1"}, "OK"]
    assert store.run(lambda pipe: None) == []


def test_an_error_reply_is_raised_after_every_command_ran(client: redis.Redis) -> None:
    """Batch.execute raises the first error reply once all replies are read (like redis-py's
    Pipeline); ``pipeline`` returns it in place; the connection stays usable either way."""
    pipe = Batch(client)
    pipe.set("s", "x")
    pipe.hset("s", "f", "v")  # WRONGTYPE
    pipe.set("after", "1")
    pipe.lpush("s", "y")  # WRONGTYPE again: the first error is the one raised
    with pytest.raises(redis.exceptions.ResponseError, match="WRONGTYPE") as raised:
        pipe.execute()
    assert client.get("after") == "1"
    replies = pipeline(client, [("SET", "t", "1"), ("HSET", "s", "f", "v"), ("GET", "t")])
    assert replies[0] == "OK" and replies[2] == "1"
    assert isinstance(replies[1], redis.exceptions.ResponseError) and replies[1] is not raised.value
    assert pipeline(client, [("GET", "after")]) == ["1"]


def test_a_script_forgotten_by_script_flush_is_loaded_and_only_it_is_sent_again(client: redis.Redis) -> None:
    """After SCRIPT FLUSH every EVALSHA is refused with NOSCRIPT: the packer loads the script and
    sends again only the refused commands, so nothing in the pipeline runs twice."""
    assert pipeline(client, [("EVALSHA", COUNTED.sha, 1, "n", "a")])[0] == [1, None, "x", [2, "a"]]
    client.script_flush()
    pipe = Batch(client)
    pipe.incr("plain")
    pipe.script(COUNTED, ["n"], ["b"])
    pipe.incr("plain")
    pipe.script(COUNTED, ["n"], ["c"])
    assert pipe.execute() == [1, [1, None, "x", [2, "b"]], 2, [1, None, "x", [2, "c"]]]
    assert client.get("n") == "3" and client.get("plain") == "2"


def test_a_script_this_process_does_not_know_keeps_its_noscript_error(client: redis.Redis) -> None:
    """Only scripts built here (their source is known) are loaded again; any other EVALSHA keeps
    its error, and Batch raises it."""
    unknown = "0" * 40
    replies = pipeline(client, [("EVALSHA", unknown, 0), ("EVALSHA", COUNTED.sha, 1, "n", "a")])
    assert isinstance(replies[0], redis.exceptions.NoScriptError) and replies[1][0] == 1
    pipe = Batch(client)
    pipe.evalsha(unknown, 0)
    with pytest.raises(redis.exceptions.NoScriptError):
        pipe.execute()


def test_a_long_lazy_pipeline_is_written_in_chunks_and_read_in_order(client: redis.Redis) -> None:
    """Commands from a generator go out chunk by chunk; every reply comes back in order."""
    count = 3 * CHUNK + 5
    replies = pipeline(client, (("INCR", "seq") for _ in range(count)))
    assert replies == list(range(1, count + 1))


def test_a_command_producer_that_fails_leaves_no_stale_reply_behind(client: redis.Redis) -> None:
    """When the producer of a streamed pipeline raises, the connection (with replies in flight) is
    closed, not reused: the next pipeline reads its own replies."""

    def commands() -> Iterator[tuple[Any, ...]]:
        for n in range(CHUNK + 3):
            yield ("INCR", "seq")
            if n == CHUNK + 1:
                raise ValueError("bad send")

    with pytest.raises(ValueError, match="bad send"):
        pipeline(client, commands())
    for _ in range(3):
        assert pipeline(client, [("SET", "k", "v"), ("GET", "k")]) == ["OK", "v"]


def test_the_fakeredis_server_going_away_raises_and_coming_back_works() -> None:
    """A connection error is raised (after one more try on a fresh connection), not swallowed."""
    server = fakeredis.FakeServer()
    client = fakeredis.FakeRedis(server=server, decode_responses=True)
    assert pipeline(client, [("SET", "k", "v")]) == ["OK"]
    server.connected = False
    with pytest.raises(redis.exceptions.ConnectionError):
        pipeline(client, [("GET", "k")])
    server.connected = True
    assert pipeline(client, [("GET", "k")]) == ["v"]


def test_a_pooled_connection_killed_by_the_server_is_replaced(redis_url: str) -> None:
    """A connection the server closed while it sat in the pool fails before any reply arrives: the
    batch is written again on a fresh connection and runs once."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    admin = redis.Redis.from_url(redis_url, decode_responses=True)
    assert pipeline(client, [("SET", "k", "v")]) == ["OK"]
    assert admin.client_kill_filter(_type="normal", skipme=True) >= 1
    assert pipeline(client, [("INCR", "n"), ("GET", "k")]) == [1, "v"]
    assert admin.get("n") == "1"
    client.close()
    admin.close()


class DroppingConnection(redis.connection.Connection):
    """Loses the connection once a set number of replies were read (-1: never)."""

    replies_left = -1

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        if DroppingConnection.replies_left == 0:
            DroppingConnection.replies_left = -1
            self.disconnect()
            raise redis.exceptions.ConnectionError("dropped by the test")
        DroppingConnection.replies_left -= 1
        return super().read_response(*args, **kwargs)


def test_a_connection_lost_after_replies_arrived_is_raised_not_sent_again(redis_url: str) -> None:
    """Once a reply has arrived Redis has run the pipeline, at least in part: sending it again could
    run commands twice, so the error is raised; the pool hands out a working connection after it."""
    pool = redis.ConnectionPool.from_url(redis_url, connection_class=DroppingConnection, decode_responses=True)
    client = redis.Redis(connection_pool=pool)
    assert pipeline(client, [("PING",)]) == ["PONG"]  # connected (the handshake reads replies too)
    DroppingConnection.replies_left = 1
    with pytest.raises(redis.exceptions.ConnectionError, match="dropped by the test"):
        pipeline(client, [("INCR", "n"), ("INCR", "n"), ("INCR", "n")])
    assert pipeline(client, [("GET", "n")]) == ["3"]
    client.close()
    pool.disconnect()


def test_a_restarted_server_gets_a_fresh_connection_and_the_scripts_again() -> None:
    """A Redis restart kills the pooled connections and forgets the scripts: the next batch is
    written on a fresh connection, its script loaded, every command run once; while the server is
    down the connection error is raised, and the same client works once it is back."""
    server = RedisServer().start()
    try:
        client = redis.Redis.from_url(server.url, decode_responses=True)
        store = Store(client)
        assert store.run(lambda pipe: pipe.script(COUNTED, ["n"], ["a"]))[0][0] == 1
        server.restart()
        assert store.run(lambda pipe: (pipe.incr("plain"), pipe.script(COUNTED, ["n"], ["b"]))) == [
            1,
            [1, None, "x", [2, "b"]],
        ]
        assert client.get("n") == "1" and client.get("plain") == "1"
        server.stop()
        with pytest.raises(redis.exceptions.ConnectionError):
            pipeline(client, [("GET", "plain")])
        server.start()
        assert pipeline(client, [("GET", "plain")]) == [None]
        client.close()
    finally:
        server.cleanup()


def test_a_pool_that_wants_a_command_name_is_served(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """redis-py before 5.3 requires a command name in ``get_connection`` (``redis>=5.0`` allows
    those versions); from 5.3 on passing one is deprecated.  The packer reads the signature once."""
    current = redis.ConnectionPool.get_connection
    installed = tuple(int(part) for part in redis.__version__.split(".")[:2])
    assert batch._needs_command_name() == (installed < (5, 3))  # a name from 5.3 on warns (an error here)

    def before_5_3(self: redis.ConnectionPool, command_name: str, *keys: Any, **options: Any) -> Any:
        return current(self, command_name) if installed < (5, 3) else current(self)

    monkeypatch.setattr(redis.ConnectionPool, "get_connection", before_5_3)
    assert batch._needs_command_name()
    monkeypatch.setattr(batch, "_NAMED", True)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    assert pipeline(client, [("SET", "k", "v"), ("GET", "k")]) == ["OK", "v"]
    client.close()


@pytest.fixture(scope="module")
def cluster_url() -> Iterator[str]:
    """A one-node Redis Cluster owning every slot."""
    bus = ["--cluster-port", str(free_port())]
    server = RedisServer(extra_args=["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", *bus])
    try:
        server.start()
        client = redis.Redis.from_url(server.url, decode_responses=True)
        client.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)  # type: ignore[no-untyped-call]
        deadline = time.monotonic() + 10
        while "cluster_state:ok" not in client.execute_command("CLUSTER", "INFO"):  # type: ignore[no-untyped-call]
            assert time.monotonic() < deadline, "the cluster node never reported cluster_state:ok"
            time.sleep(0.01)
        client.close()
        yield server.url
    finally:
        server.cleanup()


@pytest.mark.filterwarnings("ignore:Call to '__init__' function with deprecated usage")  # redis-py 6.0.0's own
def test_a_cluster_client_gets_redis_pys_pipeline_with_the_same_replies(cluster_url: str) -> None:
    """A Redis Cluster client routes each command to its node, so it keeps redis-py's pipeline; the
    replies the store reads, error replies and reloading after SCRIPT FLUSH behave as on one server."""
    cluster = redis.RedisCluster.from_url(cluster_url, decode_responses=True)
    try:
        cluster.flushall()
        assert not batch.streams(cluster)
        pipe = Batch(cluster)
        pipe.hset("{c}h", mapping={"a": "1"})
        pipe.hgetall("{c}h")
        pipe.hmget("{c}h", ["a", "nope"])
        pipe.script(COUNTED, ["{c}n"], ["a"])
        assert pipe.execute() == [1, {"a": "1"}, ["1", None], [1, None, "x", [2, "a"]]]
        cluster.script_flush()
        replies = pipeline(cluster, [("EVALSHA", COUNTED.sha, 1, "{c}n", "b"), ("HSET", "{c}n", "f", "v")])
        assert replies[0] == [1, None, "x", [2, "b"]]
        assert isinstance(replies[1], redis.exceptions.ResponseError)
        assert cluster.get("{c}n") == "2"
    finally:
        cluster.close()
