"""``loyaloop serve``: real worker processes behind one port, events onto the workers' broker."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import redis

from orchestrator.http.server import NoDelayConfig, with_timeouts
from orchestrator.runtime.event_queue import EventQueue
from tests.http.helpers import API_SECRET
from tests.redis_server import free_port

CLI = [sys.executable, "-c", "from orchestrator.cli import main; main()"]


def environment(redis_url: str | None, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "PROMETHEUS_MULTIPROC_DIR"}}
    env.update(LOYALOOP_API_KEYS=f"shop:{API_SECRET}", LOYALOOP_JOURNEYS=str(tmp_path / "journeys"), **extra)
    env["PYTHONPATH"] = os.getcwd()
    if redis_url:
        env["REDIS_URL"] = redis_url
    return env


@contextmanager
def serving(env: dict[str, str], tmp_path: Path, workers: int) -> Iterator[tuple[httpx.Client, Path]]:
    """``loyaloop serve`` in a subprocess (cwd: tmp_path); yields a client and the log; stops it with SIGTERM."""
    port = free_port()
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*CLI, "serve", "--port", str(port), "--workers", str(workers)],
            env=env,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        with httpx.Client(base_url=base, timeout=5) as client:
            yield client, log_path
    finally:
        process.terminate()
        # A lone uvicorn re-raises SIGTERM after its graceful shutdown; the multi-worker supervisor exits 0.
        assert process.wait(timeout=20) in (0, -signal.SIGTERM)


def track(client: httpx.Client, n: int) -> None:
    response = client.post(
        "/v1/track",
        json={"customer_id": "c-1", "event": "order.placed", "event_id": f"e-{n}"},
        headers={"Authorization": f"Bearer {API_SECRET}"},
    )
    assert response.status_code == 202


@pytest.mark.slow
def test_serve_with_two_workers_accepts_events_onto_the_broker(redis_url: str, tmp_path: Path) -> None:
    """Two uvicorn workers answer on one port; every track is queued in Redis for the workers; metrics add up;
    SIGTERM stops it."""
    with serving(environment(redis_url, tmp_path), tmp_path, workers=2) as (client, log_path):
        for n in range(6):
            track(client, n)
        metrics = client.get("/metrics").text
    assert EventQueue(redis.Redis.from_url(redis_url, decode_responses=True)).depth() == 6
    assert 'loyaloop_http_requests_total{method="POST",route="/v1/track",status="202"} 6.0' in metrics
    output = log_path.read_text()
    assert "POST /v1/track 202" in output and "key=shop" in output
    assert API_SECRET not in output
    client_lines = [
        line
        for line in output.splitlines()
        if "127.0.0.1" in line and "Uvicorn running on" not in line and "listening on" not in line
    ]
    assert client_lines == []  # no client address is logged
    assert not list(tmp_path.glob("*.db"))  # the multi-process metrics folder was a temporary one, removed


@pytest.mark.slow
def test_an_empty_metrics_folder_variable_does_not_litter_the_working_directory(redis_url: str, tmp_path: Path) -> None:
    """PROMETHEUS_MULTIPROC_DIR="" would make prometheus_client write its files into the current folder."""
    env = environment(redis_url, tmp_path, PROMETHEUS_MULTIPROC_DIR="")
    with serving(env, tmp_path, workers=1) as (client, _):
        track(client, 1)
        metrics = client.get("/metrics").text
    assert 'loyaloop_http_requests_total{method="POST",route="/v1/track",status="202"} 1.0' in metrics
    assert not list(tmp_path.glob("*.db"))


def test_serve_without_redis_says_what_to_set(tmp_path: Path) -> None:
    """No REDIS_URL: one clear error line and exit 1, no traceback."""
    result = subprocess.run(
        [*CLI, "serve", "--port", str(free_port())],
        env=environment(None, tmp_path),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: loyaloop serve needs REDIS_URL")
    assert "Traceback" not in result.stderr


def test_the_shared_worker_socket_disables_nagle() -> None:
    """With --workers > 1 the listening socket gets TCP_NODELAY, so accepted connections inherit it
    (without it every keep-alive response waits ~40 ms for the client's delayed ACK)."""
    config = NoDelayConfig("tests.benchmarks.bench_http:hello", host="127.0.0.1", port=free_port(), workers=2)
    listener = config.bind_socket()
    try:
        assert listener.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        listener.listen()
        with socket.create_connection(listener.getsockname()[:2]):
            accepted, _ = listener.accept()
            with accepted:
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    finally:
        listener.close()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:6379/0", {"socket_timeout": 0.5, "socket_connect_timeout": 0.5, "db": 0}),
        ("redis://:p%40ss@h:1/2?socket_timeout=3", {"socket_timeout": 3.0, "password": "p@ss", "db": 2}),
        ("unix:///tmp/redis.sock?db=1", {"socket_timeout": 0.5, "path": "/tmp/redis.sock", "db": 1}),
    ],
)
def test_the_brokers_url_gets_socket_timeouts_unless_it_has_its_own(url: str, expected: dict[str, object]) -> None:
    """The Dramatiq broker that sends drain nudges from the server is built from the URL alone; the
    timeouts in its query bound its waits on a hung Redis (the URL's own values win)."""
    options = redis.ConnectionPool.from_url(with_timeouts(url, 0.5)).connection_kwargs
    assert {name: options.get(name) for name in expected} == expected


def test_serve_port_0_picks_a_free_port_and_prints_it(redis_url: str, tmp_path: Path) -> None:
    """`--port 0` used to be refused; now the port chosen is printed and answers /healthz."""
    process = subprocess.Popen(
        [*CLI, "serve", "--port", "0"],
        env=environment(redis_url, tmp_path),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = ""
        deadline = time.monotonic() + 30
        while "listening on" not in line and time.monotonic() < deadline:
            line = process.stdout.readline()
        port = int(line.rsplit(":", 1)[1])
        assert port > 0
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        process.terminate()
        process.communicate(timeout=20)


def test_serve_refuses_a_broken_journey_folder_one_line_per_problem(redis_url: str, tmp_path: Path) -> None:
    """serve checks what the journeys need before it answers: a marketing journey that sends needs
    LOYALOOP_SECRET_KEY (its links point at serve), and a journey with an error is named."""
    journeys = tmp_path / "journeys"
    journeys.mkdir()
    (journeys / "bad.yaml").write_text("id: bad\nname: Bad\ntrigger: {event: x}\nsteps: []\n", encoding="utf-8")
    result = subprocess.run(
        [*CLI, "serve", "--port", "0"],
        env=environment(redis_url, tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "bad.yaml:4:" in result.stderr and "loyaloop serve: not started (1 problem(s) above)" in result.stderr
    assert "Traceback" not in result.stderr
