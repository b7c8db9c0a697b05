"""``loyaloop serve``: real worker processes behind one port, events onto the workers' broker."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis

from tests.orchestrator.http.helpers import API_SECRET
from tests.redis_server import free_port

CLI = [sys.executable, "-c", "from orchestrator.cli import main; main()"]


def environment(redis_url: str | None, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "PROMETHEUS_MULTIPROC_DIR"}}
    env.update(LOYALOOP_API_KEYS=f"shop:{API_SECRET}", LOYALOOP_JOURNEYS=str(tmp_path / "journeys"))
    if redis_url:
        env["REDIS_URL"] = redis_url
    return env


@pytest.mark.slow
def test_serve_with_two_workers_accepts_events_onto_the_broker(redis_url: str, tmp_path: Path) -> None:
    """Two uvicorn workers answer on one port; a track lands on the Dramatiq queue; metrics add up; SIGTERM stops it."""
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [*CLI, "serve", "--port", str(port), "--workers", "2"],
        env=environment(redis_url, tmp_path),
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
            assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.1)
        with httpx.Client(base_url=base, timeout=5) as client:
            for n in range(6):
                response = client.post(
                    "/v1/track",
                    json={"customer_id": "c-1", "event": "order.placed", "event_id": f"e-{n}"},
                    headers={"Authorization": f"Bearer {API_SECRET}"},
                )
                assert response.status_code == 202
            metrics = client.get("/metrics").text
        queued = redis.Redis.from_url(redis_url).hlen("loyaloop:loyaloop-events.msgs")
        assert queued == 6
        assert 'loyaloop_http_requests_total{method="POST",route="/v1/track",status="202"} 6.0' in metrics
    finally:
        process.terminate()
        assert process.wait(timeout=20) == 0
        log.close()
    output = (tmp_path / "serve.log").read_text()
    assert "POST /v1/track 202" in output and "key=shop" in output
    assert API_SECRET not in output
    client_lines = [line for line in output.splitlines() if "127.0.0.1" in line and "Uvicorn running on" not in line]
    assert client_lines == []  # no client address is logged


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
    import socket

    from orchestrator.http.server import NoDelayConfig

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
