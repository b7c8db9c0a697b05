"""The store on a real Redis: compare-and-set, hash-tagged keys, exactly-once claims, AOF restarts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

import pytest
import redis

from orchestrator import keys
from orchestrator.enrollment import Enrollment
from orchestrator.errors import StateConflict
from orchestrator.store import Store
from orchestrator.timers import Timers
from tests.redis_server import RedisServer

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def enrollment(revision: int = 1, status: Literal["waiting", "completed"] = "waiting") -> Enrollment:
    return Enrollment(
        run_id="r1",
        journey_id="welcome",
        journey_version="v1",
        customer_id="c1",
        status=status,
        entered_at=NOW,
        updated_at=NOW,
        revision=revision,
    )


def test_compare_and_set_refuses_a_stale_revision(redis_client: redis.Redis) -> None:
    """Two workers moving the same revision: the second one gets StateConflict and nothing is lost."""
    store = Store(redis_client)
    assert store.create_enrollment(enrollment(1))
    assert not store.create_enrollment(enrollment(1))
    store.cas_enrollment(enrollment(2), expected=1)
    with pytest.raises(StateConflict):
        store.cas_enrollment(enrollment(2), expected=1)
    stored = store.get_enrollment("c1", "r1")
    assert stored is not None and stored.enrollment.revision == 2
    assert store.live_runs("c1") == {"r1": "welcome"}
    store.cas_enrollment(enrollment(3, "completed"), expected=2)
    assert store.live_runs("c1") == {}


def test_every_per_customer_key_carries_the_hash_tag(redis_client: redis.Redis) -> None:
    """All keys a customer's state uses share the `{customer_id}` hash tag (one Cluster slot)."""
    store = Store(redis_client)
    store.create_enrollment(enrollment(1))
    store.apply_event("c1", "e1", lambda p: p)
    store.claim_delivery("c1", "r1:hello", now=1.0, lease=10)
    customer_keys = [k for k in redis_client.keys("*") if "c1" in k]
    assert customer_keys and all("{c1}" in k for k in customer_keys)


def test_a_claimed_send_is_done_once_and_an_expired_claim_is_taken_over(redis_client: redis.Redis) -> None:
    """claim → busy for others until the lease ends; done stays done with its outcome."""
    store = Store(redis_client)
    assert store.claim_delivery("c1", "k", now=100.0, lease=30) == ("claimed", "")
    assert store.claim_delivery("c1", "k", now=110.0, lease=30)[0] == "busy"
    assert store.claim_delivery("c1", "k", now=131.0, lease=30) == ("claimed", "")
    store.finish_delivery("c1", "k", "sent")
    assert store.claim_delivery("c1", "k", now=500.0, lease=30) == ("done", "sent")


def test_waits_and_state_survive_a_redis_restart_with_aof() -> None:
    """Timers, enrollments and profiles written before a restart are all there after it (AOF on)."""
    server = RedisServer(appendonly=True).start()
    try:
        client = redis.Redis.from_url(server.url, decode_responses=True)
        store, timers = Store(client), Timers(client)
        store.create_enrollment(enrollment(1), timer=(1, 5000.0))
        timers.schedule("c1", "r1", 1, 5000.0)
        store.apply_event("c1", "e1", lambda p: p.model_copy(update={"orders_count": 1}))
        client.close()
        import time

        time.sleep(1.2)  # appendfsync everysec
        server.restart()
        client = redis.Redis.from_url(server.url, decode_responses=True)
        store, timers = Store(client), Timers(client)
        stored = store.get_enrollment("c1", "r1")
        assert stored is not None and stored.timer == (1, 5000.0)
        profile = store.get_profile("c1")
        assert profile is not None and profile.orders_count == 1
        (timer,) = timers.claim_due(5001.0)
        assert (timer.customer_id, timer.run_id, timer.revision) == ("c1", "r1", 1)
        assert client.exists(keys.seen_events("c1"))
        client.close()
    finally:
        server.cleanup()


def test_a_batch_is_one_pipeline_with_pipeline_replies_and_errors(redis_client: redis.Redis) -> None:
    """Store.run on a real server: replies in order (HGETALL as a dict), an empty batch still picked
    by ``pipe or client``, and an error reply raised only after every command ran (like redis-py)."""
    store = Store(redis_client)

    def build(pipe: Any) -> None:
        assert pipe  # an empty batch is truthy: helpers writing to ``pipe or client`` must use it
        pipe.hset("h", mapping={"a": "1", "b": "2"})
        pipe.hgetall("h")
        pipe.get("missing")

    assert store.run(build) == [2, {"a": "1", "b": "2"}, None]

    def failing(pipe: Any) -> None:
        pipe.set("s", "x")
        pipe.hset("s", "f", "v")  # WRONGTYPE
        pipe.set("after", "1")

    with pytest.raises(redis.exceptions.ResponseError):
        store.run(failing)
    assert redis_client.get("after") == "1"
    assert redis_client.ping()


def test_cohort_enrollments_are_created_in_one_call_and_existing_runs_are_refused(redis_client: redis.Redis) -> None:
    """create_enrollments writes every new run of a chunk; a run that exists replies 0 and is left as it was."""
    store = Store(redis_client)
    first = enrollment()
    store.create_enrollment(first)
    other = first.model_copy(update={"run_id": "r2"})
    third = first.model_copy(update={"run_id": "r1", "customer_id": "c2"})
    groups: list[list[int]] = []

    def build(pipe: Any) -> None:
        groups[:] = store.create_enrollments(
            pipe, [(first, None, None, ""), (other, None, (1, 5.0), ""), (third, None, None, "")]
        )

    replies = store.run(build)
    assert len(groups) == 1 and sorted(groups[0]) == [0, 1, 2]
    by_item = dict(zip(groups[0], replies[-1], strict=True))
    assert by_item == {0: 0, 1: 1, 2: 1}
    stored = store.get_enrollment(first.customer_id, "r2")
    assert stored is not None and stored.timer == (1, 5.0)
    assert set(store.live_runs(first.customer_id)) == {"r1", "r2"}
