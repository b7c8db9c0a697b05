"""Shared fixtures: a real redis-server per test session, flushed before each test that uses it; a real
three-master Redis Cluster and a real RabbitMQ node for the scale-out tests, and a master with its
replica for the intake's replica waits, started only when a test asks."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from orchestrator.cli.reference_receiver import Receiver, running
from orchestrator.store import layout
from orchestrator.store.connect import cluster_client as open_cluster
from tests.cluster_server import RedisClusterServers
from tests.rabbitmq_server import RabbitMQServer, unavailable_reason
from tests.redis_server import RedisServer
from tests.replicated_server import FAST_SYNC, ReplicatedRedis
from tests.runtime.harness import STATE_URL_VARIABLE


@pytest.fixture(autouse=True)
def default_key_layout() -> Iterator[None]:
    """Every test starts and ends on the default key layout (namespace ``lp``, 16 shards): a test
    whose settings name another namespace or a cluster changes it process-wide (see
    orchestrator.store.layout), and must not leak that into the next test."""
    layout.use(layout.Layout())
    yield
    layout.use(layout.Layout())


#: The signing secret tests give the shipped ``ledger`` endpoint (journeys/settings.yaml).
LEDGER_SECRET = "test-ledger-signing-secret-0123456789abcdef"


@pytest.fixture
def shop_ledger(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    """The reference receiver on loopback as the shop's ledger: the shipped referral journeys call
    the ``ledger`` endpoint, so a test that starts workers on them sets its URL and secret, as ops
    would (a worker refuses to start without them)."""
    with running(LEDGER_SECRET.encode()) as receiver:
        monkeypatch.setenv("LOYALTY_LEDGER_URL", receiver.url)
        monkeypatch.setenv("LOYALTY_LEDGER_SECRET", LEDGER_SECRET)
        yield receiver


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.cleanup()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A client on the test's Redis; on the Redis Cluster at ``LOYALOOP_TEST_STATE_URL`` (flushed)
    when the scale-out sweep sets it (tests/runtime/test_on_cluster.py)."""
    state_url = os.environ.get(STATE_URL_VARIABLE)
    if state_url:
        cluster: Any = open_cluster(state_url, decode_responses=True)
        cluster.flushall(target_nodes="primaries")
        yield cluster
        cluster.close()
        return
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterServers]:
    """A real three-master Redis Cluster for the session (about 2 s to start)."""
    servers = RedisClusterServers().start()
    yield servers
    servers.cleanup()


@pytest.fixture
def cluster_url(redis_cluster: RedisClusterServers) -> str:
    """The cluster's ``redis+cluster://`` URL, every master flushed (keys and scripts) first."""
    redis_cluster.flush()
    return redis_cluster.url


@pytest.fixture
def cluster_client(cluster_url: str, redis_cluster: RedisClusterServers) -> Iterator[redis.RedisCluster]:
    client = redis_cluster.client()
    yield client
    client.close()


@pytest.fixture(scope="session")
def replicated_session() -> Iterator[ReplicatedRedis]:
    """A real master with one replica for the session (well under a second to start)."""
    servers = ReplicatedRedis().start()
    yield servers
    servers.cleanup()


@pytest.fixture
def replicated(replicated_session: ReplicatedRedis) -> ReplicatedRedis:
    """The master and its replica, emptied, the master's command statistics reset."""
    replicated_session.flush()
    return replicated_session


@pytest.fixture(scope="session")
def replicated_cluster() -> Iterator[RedisClusterServers]:
    """Three masters with one replica each (the failover drill's shape, a few seconds to start),
    every replica online (synced) with its master."""
    servers = RedisClusterServers(replicas=1)
    for node in servers.nodes:
        node.extra_args += FAST_SYNC
    servers.start()
    deadline = time.monotonic() + 20
    # A replica counts as connected while its first sync still runs; WAIT counts it only once online.
    while not all(servers.role(node).get("slave0", {}).get("state") == "online" for node in servers.primaries()):
        if time.monotonic() > deadline:
            servers.cleanup()
            raise RuntimeError("a master's replica did not link in time")
        time.sleep(0.05)
    yield servers
    servers.cleanup()


@pytest.fixture(scope="session")
def rabbitmq_server() -> Iterator[RabbitMQServer]:
    """A real RabbitMQ node for the session (about 5 s to start), apart from any system one.

    Skipped, with the reason in the summary, only when the package is not installed; a RabbitMQ that
    is installed but fails to start is an error.
    """
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(f"RabbitMQ unavailable: {reason}")
    server = RabbitMQServer().start()
    yield server
    server.cleanup()


def pytest_report_header() -> str:
    reason = unavailable_reason()
    return "rabbitmq: " + ("available (tests start their own node)" if reason is None else f"SKIPPED: {reason}")
