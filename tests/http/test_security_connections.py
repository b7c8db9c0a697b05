"""Connections that never finish cannot take the server down, and a client that goes away is a
client disconnect, not a 500 with a traceback.

Reproduces the probe: under ``ulimit -n 256``, 300 connections that never finished their headers
made ``/healthz`` and ``/v1/track`` fail.  Here the server runs under a descriptor limit of 128 with
a cap of 40 connections, 150 half-open connections are opened, and the server keeps answering.
"""

from __future__ import annotations

import resource
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import pytest

from tests.http.helpers import API_SECRET
from tests.http.test_serve import CLI, environment
from tests.redis_server import free_port


def _low_descriptor_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128))


@contextmanager
def guarded_server(redis_url: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    port = free_port()
    env = environment(
        redis_url,
        tmp_path,
        LOYALOOP_HTTP_HEADER_TIMEOUT="1",
        LOYALOOP_HTTP_BODY_TIMEOUT="1",
        LOYALOOP_HTTP_MAX_CONNECTIONS="40",
    )
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*CLI, "serve", "--port", str(port)],
            env=env,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_low_descriptor_limit,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            with suppress(httpx.TransportError):
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        yield base, log_path
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)


def _half_open(port: int, count: int) -> list[socket.socket]:
    """Connections that send half a request line and headers, then nothing."""
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(b"POST /v1/track HTTP/1.1\r\nHost: loyaloop\r\nContent-Ty")
        sockets.append(sock)
    return sockets


def _closed_by_server(sock: socket.socket) -> bool:
    sock.settimeout(3)
    try:
        return sock.recv(1024) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


@pytest.mark.slow
def test_half_open_connections_do_not_stop_the_server_answering(redis_url: str, tmp_path: Path) -> None:
    with guarded_server(redis_url, tmp_path) as (base, log_path):
        port = int(base.rsplit(":", 1)[1])
        sockets = _half_open(port, 150)
        try:
            started = time.monotonic()
            assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
            response = httpx.post(
                f"{base}/v1/track",
                json={"customer_id": "c-1", "event": "order.placed", "event_id": "slow-1"},
                headers={"Authorization": f"Bearer {API_SECRET}"},
                timeout=5,
            )
            assert response.status_code == 202
            assert time.monotonic() - started < 3
            # The header timeout (1 s) closes every half-open connection that was not evicted already.
            assert all(_closed_by_server(sock) for sock in sockets)
        finally:
            for sock in sockets:
                sock.close()
        metrics = httpx.get(f"{base}/metrics", timeout=5).text
    assert 'loyaloop_http_slow_connections_closed_total{reason="over_capacity"}' in metrics
    assert 'loyaloop_http_slow_connections_closed_total{reason="header_timeout"}' in metrics
    assert "Too many open files" not in log_path.read_text()


@pytest.mark.slow
def test_a_body_sent_too_slowly_is_a_client_disconnect_without_a_traceback(redis_url: str, tmp_path: Path) -> None:
    with guarded_server(redis_url, tmp_path) as (base, log_path):
        port = int(base.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(
                b"POST /v1/track HTTP/1.1\r\nHost: loyaloop\r\nContent-Type: application/json\r\n"
                b"Authorization: Bearer " + API_SECRET.encode() + b'\r\nContent-Length: 200\r\n\r\n{"customer_id"'
            )
            assert _closed_by_server(sock)
        time.sleep(0.2)
        metrics = httpx.get(f"{base}/metrics", timeout=5).text
    assert 'loyaloop_http_slow_connections_closed_total{reason="body_timeout"}' in metrics
    assert 'route="/v1/track",status="499"' in metrics
    assert 'route="/v1/track",status="500"' not in metrics
    log = log_path.read_text()
    assert "Traceback" not in log and "ClientDisconnect" not in log
