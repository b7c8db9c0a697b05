"""Every process on a real three-master Redis Cluster, with the queue on a single Redis or on
RabbitMQ: ``loyaloop import`` feeds, real ``dramatiq orchestrator.worker`` processes and a real
``loyaloop scheduler`` run a journey with a wait, a frequency cap and a rate limit; one worker is
SIGKILLed half-way; every send happens exactly once; ``loyaloop status`` reads it all back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.cluster_server import RedisClusterServers
from tests.http.helpers import API_SECRET
from tests.redis_server import free_port
from tests.runtime.harness import write_templates

JOURNEY = """\
id: scale
name: Scale-out drill
trigger:
  event: signup
category: transactional
steps:
  - id: hello
    send: email
    template: hello
  - id: pause
    wait: 2s
  - id: tips
    send: email
    template: tips
"""

SETTINGS = """\
caps:
  - max: 10
    window: 1d
rate_limits:
  email: 500
"""

CUSTOMERS = 40
#: ``loyaloop`` itself, run by this interpreter (so the checkout under test is what runs).
CLI = "from orchestrator.cli import main; main()"
SETUPS = ("cluster+redis-broker", "cluster+rabbitmq")


@pytest.fixture(params=SETUPS)
def broker_url(request: pytest.FixtureRequest, redis_url: str) -> str:
    """The queue: the session's single Redis, or the session's RabbitMQ node."""
    if request.param == "cluster+rabbitmq":
        return str(request.getfixturevalue("rabbitmq_server").url)
    return redis_url


def environment(tmp_path: Path, cluster_url: str, broker_url: str, namespace: str) -> dict[str, str]:
    (tmp_path / "journeys").mkdir()
    (tmp_path / "journeys" / "scale.yaml").write_text(JOURNEY, encoding="utf-8")
    (tmp_path / "journeys" / "settings.yaml").write_text(SETTINGS, encoding="utf-8")
    write_templates(tmp_path / "templates", ["hello", "tips"])
    env = dict(os.environ)
    env.update(
        REDIS_URL=cluster_url,
        LOYALOOP_BROKER_URL=broker_url,
        LOYALOOP_NAMESPACE=namespace,  # a fresh one per test: RabbitMQ's queues outlive a test
        LOYALOOP_JOURNEYS=str(tmp_path / "journeys"),
        LOYALOOP_TEMPLATES=str(tmp_path / "templates"),
        LOYALOOP_OUTBOX=str(tmp_path / "outbox.jsonl"),
        LOYALOOP_SECRET_KEY="k" * 40,
        LOYALOOP_HEARTBEAT_MS="1500",
        LOYALOOP_MAINTENANCE_CHANCE="200000",
        LOYALOOP_TIMER_LEASE="3",
        LOYALOOP_SEND_LEASE="3",
    )
    return env


def start(env: dict[str, str], *command: str) -> subprocess.Popen[bytes]:
    name = "worker" if "dramatiq" in command else "scheduler"
    with open(Path(env["LOYALOOP_OUTBOX"]).with_suffix(f".{name}.log"), "ab") as log:
        return subprocess.Popen(
            [sys.executable, *command], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )


def worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return start(env, "-m", "dramatiq", "orchestrator.worker", "-p", "1", "-t", "4")


def loyaloop(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", CLI, *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def outbox(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def stop(*processes: subprocess.Popen[bytes] | None) -> None:
    for process in processes:
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


@pytest.fixture
def namespace(request: pytest.FixtureRequest) -> Iterator[str]:
    yield f"t{abs(hash(request.node.nodeid)) % 10**8}x{int(time.time() * 1000) % 10**6}"


@pytest.mark.slow
def test_every_process_runs_on_a_three_master_cluster_and_survives_a_sigkill(
    tmp_path: Path, cluster_url: str, redis_cluster: RedisClusterServers, broker_url: str, namespace: str
) -> None:
    """Import, drains, timers and the scheduler's claims, leases, the gate, the rate limiter, stats and
    journey versions on three masters; the first worker is SIGKILLed after ten sends and a second one
    finishes: every customer gets both messages exactly once, with either broker."""
    env = environment(tmp_path, cluster_url, broker_url, namespace)
    lines = []
    for n in range(CUSTOMERS):
        lines.append({"type": "identify", "customer_id": f"c{n}", "attributes": {"email": f"c{n}@example.com"}})
        lines.append({"type": "track", "customer_id": f"c{n}", "event": "signup"})
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    scheduler = start(env, "-c", CLI, "scheduler", "--idle", "0.05")
    first = worker(env)
    second: subprocess.Popen[bytes] | None = None
    sent_path = tmp_path / "outbox.jsonl"
    try:
        imported = loyaloop(env, "import", str(events), "--quiet")
        assert imported.returncode == 0, imported.stderr
        deadline = time.monotonic() + 60
        while len(outbox(sent_path)) < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(outbox(sent_path)) >= 10, "no sends: see the worker's log beside the outbox"
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        second = worker(env)
        deadline = time.monotonic() + 90
        while len(outbox(sent_path)) < 2 * CUSTOMERS and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)  # anything re-driven late would show up now
        sent = Counter((m["customer_id"], m["step_id"]) for m in outbox(sent_path))
        assert set(sent) == {(f"c{n}", step) for n in range(CUSTOMERS) for step in ("hello", "tips")}
        assert max(sent.values()) == 1
        status = loyaloop(env, "status")
        assert status.returncode == 0, status.stderr
        assert "scale" in status.stdout and "queues:" in status.stdout
        assert "error" not in status.stderr
    finally:
        stop(first, second, scheduler)
    # The customers' keys spread over every master, and every key is the namespace's.
    for url in redis_cluster.node_urls:
        node = redis.Redis.from_url(url, decode_responses=True)
        names = list(node.scan_iter(count=1000))
        node.close()
        assert any(":c:{" in name for name in names), f"no customer on the node at {url}"
        assert all(name.startswith(f"{namespace}:") for name in names), names[:5]


@pytest.mark.slow
def test_the_demo_on_a_cluster_tells_the_same_story_as_on_one_redis(
    tmp_path: Path, cluster_url: str, redis_url: str
) -> None:
    """``loyaloop demo`` (the embedded runtime with its store, workers and scheduler) on the cluster,
    with a Redis queue, prints the same table and totals as on one Redis for the same seed."""
    told = {}
    for where, state in (("one", redis_url), ("cluster", cluster_url)):
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOYALOOP_") and k != "REDIS_URL"}
        env.update(REDIS_URL=state, LOYALOOP_SECRET_KEY="k" * 40)
        if state == cluster_url:
            env["LOYALOOP_BROKER_URL"] = redis_url
        outbox_path = tmp_path / f"{where}.jsonl"
        shown = loyaloop(env, "demo", "--customers", "30", "--days", "15", "--flush", "--outbox", str(outbox_path))
        assert shown.returncode == 0, shown.stderr
        lines = shown.stdout.splitlines()
        totals = next(line for line in lines if " events, " in line and " messages in " in line)
        told[where] = ([line for line in lines if "│" in line], totals.split(" in ")[0], len(outbox(outbox_path)))
    assert told["cluster"] == told["one"]
    assert told["one"][2] > 0


@pytest.mark.slow
def test_serve_on_a_cluster_feeds_the_workers_through_either_broker(
    tmp_path: Path, cluster_url: str, broker_url: str, namespace: str
) -> None:
    """``loyaloop serve`` (the asyncio intake on the cluster) takes identify and track over HTTP;
    a worker on the same broker sends each customer's first message."""
    env = environment(tmp_path, cluster_url, broker_url, namespace)
    env.update(LOYALOOP_API_KEYS=f"shop:{API_SECRET}", PYTHONPATH=os.getcwd())
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    port = free_port()
    with open(tmp_path / "serve.log", "wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-c", CLI, "serve", "--port", str(port), "--workers", "1"],
            env=env,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    consumer = worker(env)
    sent_path = tmp_path / "outbox.jsonl"
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.1)
        headers = {"Authorization": f"Bearer {API_SECRET}"}
        with httpx.Client(base_url=base, timeout=10, headers=headers) as client:
            for n in range(10):
                attributes = {"email": f"h{n}@example.com"}
                assert (
                    client.post("/v1/identify", json={"customer_id": f"h{n}", "attributes": attributes}).status_code
                    == 202
                )
                tracked = client.post(
                    "/v1/track", json={"customer_id": f"h{n}", "event": "signup", "event_id": f"s{n}"}
                )
                assert tracked.status_code == 202, tracked.text
        deadline = time.monotonic() + 60
        while len(outbox(sent_path)) < 10 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sorted(m["customer_id"] for m in outbox(sent_path) if m["step_id"] == "hello") == sorted(
            f"h{n}" for n in range(10)
        )
    finally:
        stop(consumer, server)
