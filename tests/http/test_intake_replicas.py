"""The front door with ``LOYALOOP_INTAKE_REPLICAS``: 202 only once the replica has the events, one
``WAIT`` per request (not per event), and a 503 naming the event ids when the replica does not
confirm in time -- on a real master with its real replica, served by a real uvicorn."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis

from orchestrator import metrics
from orchestrator.errors import ConfigurationError
from orchestrator.http import HttpConfig, create_app
from orchestrator.http.server import check_replica_timeout
from orchestrator.runtime.event_queue import PUSH_SCRIPT, EventQueue, decode
from orchestrator.runtime.intake import Loyaloop
from orchestrator.settings import Settings
from orchestrator.store import keys
from orchestrator.store.connect import cluster_client
from orchestrator.store.replication import ReplicaWait
from tests.cluster_server import RedisClusterServers
from tests.http.conftest import bearer, make_config, make_settings
from tests.http.helpers import SendGridSigner, serve
from tests.replicated_server import ReplicatedRedis

TIMEOUT_MS = 200


class Nudges:
    def __init__(self) -> None:
        self.drains: list[int] = []

    def nudge_drain(self, shard: int) -> None:
        self.drains.append(shard)

    def nudge_profile(self, customer_id: str) -> None:
        pass


@dataclass
class Door:
    http: httpx.Client
    master: redis.Redis
    replica: redis.Redis
    servers: ReplicatedRedis

    def on_replica(self, customer_id: str) -> list[str]:
        """The event ids the replica holds on the customer's shard."""
        shard = EventQueue(self.master).shard_of(customer_id)
        return [decode(raw).event_id for raw in self.replica.lrange(keys.event_queue(shard), 0, -1)]


@pytest.fixture
def door(replicated: ReplicatedRedis) -> Iterator[Door]:
    master = redis.Redis.from_url(replicated.url, decode_responses=True)
    replica = redis.Redis.from_url(replicated.replica.url, decode_responses=True)
    intake = Loyaloop(Nudges(), master, replicas=ReplicaWait(1, TIMEOUT_MS))
    app = create_app(make_settings(), intake, master, config=make_config(SendGridSigner()))
    with serve(app) as base_url, httpx.Client(base_url=base_url, timeout=10) as http:
        master.script_load(PUSH_SCRIPT)  # a first NOSCRIPT would send the push, and its WAIT, again
        replicated.flush()  # the statistics start at 0
        yield Door(http, master, replica, replicated)
    master.close()
    replica.close()


def refused(door: str) -> float:
    return float(metrics.get("not_replicated").labels(door)._value.get())


def test_a_track_is_answered_202_once_the_replica_has_it(door: Door) -> None:
    response = door.http.post("/v1/track", json={"customer_id": "c-1", "event": "signup"}, headers=bearer())
    assert response.status_code == 202
    assert door.on_replica("c-1") == [response.json()["event_id"]]
    assert door.servers.waits() == 1


def test_a_batch_waits_once_for_all_its_events(door: Door) -> None:
    items: list[dict[str, Any]] = [
        {"type": "track", "customer_id": f"c-{n}", "event": "signup", "event_id": f"e-{n}"} for n in range(20)
    ]
    response = door.http.post("/v1/batch", json={"batch": items}, headers=bearer())
    assert response.status_code == 202, response.text
    assert [result["event_id"] for result in response.json()["results"]] == [f"e-{n}" for n in range(20)]
    assert all(door.on_replica(f"c-{n}").count(f"e-{n}") == 1 for n in range(20))
    assert door.servers.waits() == 1  # one request, one connection, one WAIT


def test_a_track_the_replica_does_not_confirm_is_a_503_with_its_id_and_a_resend_is_accepted(door: Door) -> None:
    before = refused("track")
    with door.servers.frozen():
        started = time.monotonic()
        response = door.http.post("/v1/track", json={"customer_id": "c-1", "event": "signup"}, headers=bearer())
        elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    body = response.json()
    assert "may or may not have been kept" in body["error"] and "same event_id" in body["error"]
    event_id = body["event_id"]
    assert isinstance(event_id, str) and event_id
    assert TIMEOUT_MS / 1000 <= elapsed < 2.0
    assert refused("track") == before + 1
    again = door.http.post(
        "/v1/track", json={"customer_id": "c-1", "event": "signup", "event_id": event_id}, headers=bearer()
    )
    assert again.status_code == 202 and again.json()["event_id"] == event_id
    # Queued twice, handled once: the runtime drops the second copy by its id.
    assert door.on_replica("c-1") == [event_id, event_id]


def test_a_batch_the_replica_does_not_confirm_is_a_503_naming_every_event_id(door: Door) -> None:
    items = [{"type": "track", "customer_id": f"c-{n}", "event": "signup"} for n in range(3)]
    with door.servers.frozen():
        response = door.http.post("/v1/batch", json={"batch": items}, headers=bearer())
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    ids = [result["event_id"] for result in response.json()["results"]]
    assert len(set(ids)) == 3 and all(ids)
    for n, event_id in enumerate(ids):  # on the master, as the answer says they may be
        assert event_id in [
            decode(raw).event_id
            for raw in door.master.lrange(keys.event_queue(EventQueue(door.master).shard_of(f"c-{n}")), 0, -1)
        ]


def test_a_replica_wait_the_redis_timeout_would_cut_short_is_refused_at_start() -> None:
    """The socket would give up first and answer the 503 that says nothing was kept."""
    config = HttpConfig(redis_timeout=0.5)
    check_replica_timeout(Settings(intake_replicas=1, intake_replica_timeout_ms=450), config)
    check_replica_timeout(Settings(intake_replica_timeout_ms=60_000), config)  # off: nothing to fit
    with pytest.raises(ConfigurationError, match=r"TIMEOUT_MS=451 does not fit .* at most 450"):
        check_replica_timeout(Settings(intake_replicas=1, intake_replica_timeout_ms=451), config)


def test_on_a_cluster_a_batch_waits_once_on_each_master_and_a_track_on_its_own(
    replicated_cluster: RedisClusterServers,
) -> None:
    replicated_cluster.flush()
    client: Any = cluster_client(replicated_cluster.url, decode_responses=True)
    for node in replicated_cluster.primaries():
        direct = redis.Redis.from_url(node.url)
        direct.script_load(PUSH_SCRIPT)  # a first NOSCRIPT would send the push, and its WAIT, again
        direct.config_resetstat()
        direct.close()
    intake = Loyaloop(Nudges(), client, replicas=ReplicaWait(1, TIMEOUT_MS))
    app = create_app(make_settings(), intake, client, config=make_config(SendGridSigner()))
    queue = EventQueue(client)
    owner = {n: client.get_node_from_key(keys.event_queue(queue.shard_of(f"c-{n}"))).port for n in range(30)}
    assert len(set(owner.values())) == 3  # the batch spans every master
    items = [{"type": "track", "customer_id": f"c-{n}", "event": "signup", "event_id": f"e-{n}"} for n in range(30)]
    with serve(app) as base_url, httpx.Client(base_url=base_url, timeout=10) as http:
        batch = http.post("/v1/batch", json={"batch": items}, headers=bearer())
        assert batch.status_code == 202, batch.text
        assert replicated_cluster.waits() == dict.fromkeys(set(owner.values()), 1)
        track = http.post("/v1/track", json={"customer_id": "c-0", "event": "signup"}, headers=bearer())
        assert track.status_code == 202, track.text
    after = replicated_cluster.waits()
    assert after[owner[0]] == 2 and sum(after.values()) == 4  # the track waited on its own master only
    client.close()
