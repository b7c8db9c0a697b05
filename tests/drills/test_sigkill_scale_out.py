"""The CI-sized SIGKILL drill with the state on a real three-master Redis Cluster, the queue on a
single Redis or on RabbitMQ (see tests/drills/test_sigkill_worker.py for the single-Redis run)."""

from __future__ import annotations

import pytest

from tests.cluster_server import RedisClusterServers
from tests.drills import sigkill_worker


@pytest.fixture(params=("redis-broker", "rabbitmq"))
def broker_url(request: pytest.FixtureRequest, redis_url: str) -> str:
    if request.param == "rabbitmq":
        return str(request.getfixturevalue("rabbitmq_server").url)
    return redis_url


@pytest.mark.slow
def test_three_sigkills_on_a_cluster_lose_and_duplicate_nothing(
    redis_cluster: RedisClusterServers, cluster_url: str, broker_url: str
) -> None:
    """1,000 customers, a journey of three messages and a ledger call, the worker group SIGKILLed
    three times: exactly three messages per customer, every enrollment finished, and one ledger
    credit per customer (repeats absorbed by its Idempotency-Key), with either broker.  On RabbitMQ a killed
    worker's unacknowledged messages come back as soon as its connection drops (no sweep needed)."""
    if broker_url.startswith("amqp"):
        # RabbitMQ's queues outlive a test: this run's queues are its own.
        broker_url = broker_url  # (the namespace below separates them)
    result = sigkill_worker.run(
        1_000,
        kills=3,
        wait="1s",
        heartbeat_ms=3000,
        send_lease=5.0,
        timer_lease=5.0,
        timeout=120.0,
        log=lambda _line: None,
        state_url=cluster_url,
        broker_url=broker_url,
    )
    text = sigkill_worker.report(result)
    assert len(result.kills) == 3, text
    assert (result.lost, result.duplicated, result.unexpected, result.timed_out) == (0, 0, 0, ""), text
    assert result.received == 3_000, text
    assert result.live_left == 0, text
    assert result.actions is not None and result.actions.exact, text  # one ledger credit per customer, shown
