"""Two deployments under two ``LOYALOOP_NAMESPACE``s on one Redis: the same customer ids, their own
workers, and nothing crosses — no key outside its namespace, no message handled by the other's
workers, no customer's profile read by the other."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
import redis

from tests.workers.test_scale_out import environment, loyaloop, outbox, stop, worker

CUSTOMERS = 8


@pytest.fixture(params=("redis-broker", "rabbitmq"))
def broker_url(request: pytest.FixtureRequest, redis_url: str) -> str:
    """The queue on the same Redis, or both deployments' queues on one RabbitMQ vhost."""
    if request.param == "rabbitmq":
        return str(request.getfixturevalue("rabbitmq_server").url)
    return redis_url


def test_two_namespaces_share_one_redis_and_nothing_crosses(redis_url: str, broker_url: str, tmp_path: Path) -> None:
    deployments = {}
    suffix = uuid.uuid4().hex[:6]  # RabbitMQ's queues outlive a test
    for name in (f"blue{suffix}", f"green{suffix}"):
        folder = tmp_path / name
        folder.mkdir()
        env = environment(folder, redis_url, broker_url, name)
        events = folder / "events.jsonl"
        records = []
        for n in range(CUSTOMERS):
            records.append(
                {"type": "identify", "customer_id": f"c{n}", "attributes": {"email": f"c{n}@{name}.example"}}
            )
            records.append({"type": "track", "customer_id": f"c{n}", "event": "signup"})
        events.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
        deployments[name] = (env, events)
    # Both deployments queue their events before any worker runs: a worker that read the other
    # namespace's queue or keys would send the other's mail.
    for env, events in deployments.values():
        imported = loyaloop(env, "import", str(events), "--quiet")
        assert imported.returncode == 0, imported.stderr
    workers = [worker(env) for env, _events in deployments.values()]
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(
            len(outbox(Path(env["LOYALOOP_OUTBOX"]))) < CUSTOMERS for env, _ in deployments.values()
        ):
            time.sleep(0.1)
        time.sleep(0.5)
    finally:
        stop(*workers)
    for name, (env, _events) in deployments.items():
        sent = outbox(Path(env["LOYALOOP_OUTBOX"]))
        assert sorted(m["customer_id"] for m in sent) == sorted(f"c{n}" for n in range(CUSTOMERS))
        assert {m["to"].split("@")[1] for m in sent} == {f"{name}.example"}, sent[:2]
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    names = list(client.scan_iter(count=1000))
    client.close()
    allowed = tuple(f"{prefix}{name}:" for name in deployments for prefix in ("", "loyaloop-"))
    assert names and all(n.startswith(allowed) for n in names), [n for n in names if not n.startswith(allowed)]
    for name in deployments:
        assert any(n.startswith(f"{name}:c:{{") for n in names)
        if broker_url == redis_url:  # Dramatiq's own keys, under each deployment's namespace
            assert any(n.startswith(f"loyaloop-{name}:") for n in names)
