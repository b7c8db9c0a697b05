"""A hung or dead Redis does not freeze ``loyaloop serve``: requests that need Redis get 503 with
Retry-After within about a second, ``/healthz`` stays instant and ``/readyz`` says Redis is gone.

Reproduces the probe: with Redis stopped by SIGSTOP (a network partition, a failover), three
parallel ``/v1/track`` calls took 5, 10 and 15 s and ``/healthz`` 14.7 s, because single tracks ran
blocking Redis calls on the event loop; a dead Redis answered 500.  Each test runs the real
``loyaloop serve`` on a redis-server of its own, so stopping it touches no other test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrator.http.twilio_webhook import compute_signature
from tests.http.helpers import API_SECRET, TWILIO_TOKEN, SendGridSigner
from tests.http.test_serve import CLI, environment
from tests.redis_server import RedisServer, free_port

AUTH = {"Authorization": f"Bearer {API_SECRET}"}
#: What the probe measured as "answers at once" for liveness (the fastest of a few answers: on a
#: loaded machine one answer can wait for the CPU, never for Redis).
HEALTHZ_WITHIN = 0.15
#: No liveness answer may take as long as the Redis timeout: that would mean it waited on Redis.
HEALTHZ_NEVER_WAITS = 0.45
#: A request that needs Redis gets its 503 within about a second (LOYALOOP_REDIS_TIMEOUT is 0.5 s).
UNAVAILABLE_WITHIN = 1.5


@dataclass
class Running:
    base: str
    redis: RedisServer
    log: Path
    signer: SendGridSigner


@contextmanager
def running(tmp_path: Path) -> Iterator[Running]:
    """``loyaloop serve`` (one worker) on a redis-server of its own; both stopped afterwards."""
    server = RedisServer().start()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    signer = SendGridSigner()
    env = environment(
        server.url,
        tmp_path,
        TWILIO_AUTH_TOKEN=TWILIO_TOKEN,
        SENDGRID_WEBHOOK_PUBLIC_KEY=signer.public_key_b64,
        LOYALOOP_PUBLIC_URL=base,
    )
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*CLI, "serve", "--port", str(port)], env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            with suppress(httpx.TransportError):
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        yield Running(base, server, log_path, signer)
    finally:
        if server.process is not None:
            with suppress(ProcessLookupError):
                os.kill(server.process.pid, signal.SIGCONT)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
        server.cleanup()


def timed(method: str, url: str, **options: Any) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = httpx.request(method, url, timeout=20, **options)
    return response, time.monotonic() - started


def healthz(client: httpx.Client) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = client.get("/healthz")
    return response, time.monotonic() - started


def track(base: str, n: int) -> tuple[httpx.Response, float]:
    body = {"customer_id": f"c-{n}", "event": "order.placed", "event_id": f"e-{n}"}
    return timed("POST", f"{base}/v1/track", json=body, headers=AUTH)


def assert_unavailable(response: httpx.Response, elapsed: float) -> None:
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) >= 1
    assert "error" in response.json()
    assert elapsed < UNAVAILABLE_WITHIN, f"the 503 took {elapsed:.2f}s"


def wait_until_serving(base: str) -> None:
    """After Redis is back: a track is accepted again within a few seconds."""
    deadline = time.monotonic() + 10
    while True:
        response, _ = track(base, 999)
        if response.status_code == 202:
            return
        assert time.monotonic() < deadline, f"still {response.status_code} after Redis came back"
        time.sleep(0.2)


@pytest.mark.slow
def test_a_hung_redis_is_answered_503_in_parallel_while_healthz_stays_instant(tmp_path: Path) -> None:
    with ExitStack() as stack:
        served = stack.enter_context(running(tmp_path))
        assert track(served.base, 0)[0].status_code == 202
        assert httpx.get(f"{served.base}/readyz", timeout=5).status_code == 200
        assert served.redis.process is not None
        # A kept-alive client, as a load balancer's: the time measured is the server's answer, not
        # the client building its TLS context and connection (tens of ms on a loaded machine).
        liveness = stack.enter_context(httpx.Client(base_url=served.base, timeout=20))
        assert healthz(liveness)[0].status_code == 200
        os.kill(served.redis.process.pid, signal.SIGSTOP)
        with ThreadPoolExecutor(max_workers=8) as pool:
            tracks = [pool.submit(track, served.base, n) for n in range(1, 7)]
            identify = pool.submit(
                timed,
                "POST",
                f"{served.base}/v1/identify",
                json={"customer_id": "c-1", "attributes": {"plan": "gold"}},
                headers=AUTH,
            )
            batch = pool.submit(
                timed,
                "POST",
                f"{served.base}/v1/batch",
                json={"batch": [{"type": "track", "customer_id": "c-1", "event": "order.placed"}]},
                headers=AUTH,
            )
            time.sleep(0.1)  # the tracks are waiting on the stopped Redis now
            health = [healthz(liveness) for _ in range(5)]
            ready, ready_elapsed = timed("GET", f"{served.base}/readyz")
            for future in [*tracks, identify, batch]:
                assert_unavailable(*future.result())
        took = [elapsed for _response, elapsed in health]
        assert [response.status_code for response, _elapsed in health] == [200] * 5
        assert min(took) < HEALTHZ_WITHIN and max(took) < HEALTHZ_NEVER_WAITS, f"/healthz took {took}"
        assert ready.status_code == 503 and ready.json() == {"status": "unavailable", "reason": "redis_timeout"}
        assert ready_elapsed < UNAVAILABLE_WITHIN
        os.kill(served.redis.process.pid, signal.SIGCONT)
        wait_until_serving(served.base)
        assert httpx.get(f"{served.base}/readyz", timeout=5).status_code == 200
        identified, _ = timed(
            "POST",
            f"{served.base}/v1/identify",
            json={"customer_id": "c-1", "attributes": {"plan": "gold"}},
            headers=AUTH,
        )
        assert identified.status_code == 202
        metrics = httpx.get(f"{served.base}/metrics", timeout=5).text
    assert 'loyaloop_http_unavailable_total{reason="redis_timeout"}' in metrics
    assert 'status="500"' not in metrics
    assert "Traceback" not in served.log.read_text()


def signed_twilio(base: str, path: str, params: dict[str, str]) -> dict[str, Any]:
    signature = compute_signature(TWILIO_TOKEN, f"{base}{path}", sorted(params.items()))
    return {"data": params, "headers": {"X-Twilio-Signature": signature}}


@pytest.mark.slow
def test_a_dead_redis_is_503_not_500_on_every_route_that_needs_it(tmp_path: Path) -> None:
    with running(tmp_path) as served:
        assert track(served.base, 0)[0].status_code == 202
        served.redis.stop(kill=True)
        base = served.base
        sendgrid_body = json.dumps([{"event": "delivered", "customer_id": "c-1", "sg_event_id": "s-1"}]).encode()
        calls = [
            track(base, 1),
            timed("POST", f"{base}/v1/track", json={"customer_id": "c", "event": "e"}, headers=AUTH),
            timed("POST", f"{base}/v1/identify", json={"customer_id": "c", "attributes": {"plan": "x"}}, headers=AUTH),
            timed(
                "POST",
                f"{base}/v1/batch",
                json={"batch": [{"type": "track", "customer_id": "c", "event": "e"}]},
                headers=AUTH,
            ),
            timed(
                "POST",
                f"{base}/v1/track",
                json={"customer_id": "c", "event": "e"},
                headers={"Authorization": "Bearer wrong-key-0123456789abcdef"},
            ),
            timed(
                "POST", f"{base}/webhooks/sendgrid", content=sendgrid_body, headers=served.signer.headers(sendgrid_body)
            ),
            timed(
                "POST",
                f"{base}/webhooks/twilio/status",
                **signed_twilio(base, "/webhooks/twilio/status", {"MessageSid": "SM1", "MessageStatus": "delivered"}),
            ),
            timed(
                "POST",
                f"{base}/webhooks/twilio/inbound",
                **signed_twilio(
                    base, "/webhooks/twilio/inbound", {"MessageSid": "SM2", "From": "+31612345678", "Body": "STOP"}
                ),
            ),
        ]
        for response, elapsed in calls:
            assert_unavailable(response, elapsed)
        ready = httpx.get(f"{base}/readyz", timeout=5)
        assert ready.status_code == 503 and ready.json() == {"status": "unavailable", "reason": "redis_unreachable"}
        assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
        served.redis.start()  # the same port, an empty Redis: the scripts must be loaded again
        wait_until_serving(base)
        metrics = httpx.get(f"{base}/metrics", timeout=5).text
    assert 'loyaloop_http_unavailable_total{reason="redis_unreachable"}' in metrics
    assert 'status="500"' not in metrics
    assert "Traceback" not in served.log.read_text()
