"""The fatigue gate is Redis Cluster safe: every key a gate script touches lives in the customer's
hash slot, and the gate gives the same decisions on a real cluster-mode redis-server, which refuses
any script whose keys span slots (CROSSSLOT)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from redis.crc import key_slot

from orchestrator.gate.consent import set_consent, suppress
from orchestrator.gate.policy import Gate, SendRequest
from orchestrator.settings import CapRule, Settings
from orchestrator.store import keys
from tests.redis_server import RedisServer, free_port

DAY = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
CUSTOMERS = ["ann", "c-42", "x{y", "用户7", "0123456789abcdef" * 4]


def request(customer_id: str, key: str, **changes: Any) -> SendRequest:
    base = SendRequest(
        customer_id=customer_id,
        channel="email",
        category="marketing",
        journey_id="j",
        journey_tags=(),
        priority=50,
        idempotency_key=key,
        address=f"{key}@example.test",
        consent={"email": True},
        timezone="Europe/Amsterdam",
    )
    return replace(base, **changes)


@pytest.mark.parametrize("customer_id", CUSTOMERS)
def test_every_key_a_gate_script_touches_is_in_the_customers_slot(customer_id: str) -> None:
    """The gate script's keys and the release script's key hash to the customer's slot, and the
    global suppression list is not among them."""
    slot = key_slot(keys.send_log(customer_id).encode())
    touched = [*Gate.script_keys(customer_id), keys.send_log(customer_id)]
    assert keys.suppressed() not in touched
    assert {key_slot(key.encode()) for key in touched} == {slot}


@pytest.fixture(scope="module")
def cluster_node() -> Iterator[RedisServer]:
    """A real redis-server in cluster mode owning every slot: it enforces the one-slot rule."""
    bus = ["--cluster-port", str(free_port())]  # the default (port + 10000) may be taken or past 65535
    server = RedisServer(extra_args=["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", *bus])
    try:
        server.start()  # inside the try: a server that never answered is still stopped
        client = redis.Redis.from_url(server.url, decode_responses=True)
        client.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)  # type: ignore[no-untyped-call]
        deadline = time.monotonic() + 10
        while "cluster_state:ok" not in client.execute_command("CLUSTER", "INFO"):  # type: ignore[no-untyped-call]
            assert time.monotonic() < deadline, "the cluster node never reported cluster_state:ok"
            time.sleep(0.01)
        client.close()
        yield server
    finally:
        server.cleanup()


def test_the_gate_decides_on_a_cluster_node_that_refuses_cross_slot_scripts(cluster_node: RedisServer) -> None:
    """On a cluster node a script over two slots is refused; the gate's checks, pipelined batches,
    suppression, consent, caps and release all work there and decide as on a single Redis."""
    client = redis.Redis.from_url(cluster_node.url, decode_responses=True)
    client.flushall()
    with pytest.raises(redis.exceptions.ResponseError, match="same slot"):
        client.eval("return 1", 2, keys.send_log("ann"), keys.suppressed())
    gate = Gate(client, Settings(caps=[CapRule(channel="email", window="1d", max=1)]))
    suppress(client, "bounced@example.test", "hard_bounce")
    set_consent(client, "c-42", "email", False, source="api")
    batch = [
        request("ann", "a1"),
        request("ann", "a2"),
        request("ann", "bounced", address="bounced@example.test"),
        request("c-42", "b1"),
        *(request(customer, f"{n}") for n, customer in enumerate(CUSTOMERS[2:])),
    ]
    outcomes = [d.outcome for d in gate.check_many(batch, now=DAY)]
    assert outcomes == ["allowed", "capped", "suppressed", "no_consent", "allowed", "allowed", "allowed"]
    assert gate.check(request("ann", "a1"), now=DAY).duplicate
    assert gate.release("ann", "a1") is True
    assert gate.check(request("ann", "a3"), now=DAY + timedelta(hours=1)).allowed
    client.close()


def test_a_suppressed_send_never_takes_a_slot_from_a_later_send_in_the_same_batch(redis_client: redis.Redis) -> None:
    """The suppression list is read beside the script, so the script may log a send to a suppressed
    address before the gate knows; the gate releases it and decides again any send of that customer
    it capped meanwhile: with one slot, the suppressed high-priority text leaves it to the e-mail."""
    gate = Gate(redis_client, Settings(caps=[CapRule(channel="any", window="1d", max=1)]))
    suppress(redis_client, "+31612345678", "carrier_block")
    text = request("ann", "t1", channel="sms", address="+31612345678", consent={"sms": True}, priority=90)
    mail = request("ann", "m1", priority=10)
    assert [d.outcome for d in gate.check_many([mail, text], now=DAY)] == ["allowed", "suppressed"]
    logged = redis_client.zrange(keys.send_log("ann"), 0, -1)
    assert [str(entry).split("\x1f")[0] for entry in logged] == ["m1"]
    assert gate.check(replace(text, idempotency_key="t2"), now=DAY).outcome == "suppressed"
    assert gate.check(request("ann", "m2"), now=DAY).outcome == "capped"
