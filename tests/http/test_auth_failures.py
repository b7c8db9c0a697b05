"""Failed authentication is limited per client address, shared by every server process, and the
address is never logged nor stored.

Reproduces the probe: 300 wrong API keys in 0.15 s were all answered 401, never slowed down.
Client addresses are set with ``X-Forwarded-For``, which uvicorn trusts from 127.0.0.1 (its default
``FORWARDED_ALLOW_IPS``), as it would from a reverse proxy on the same host.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import pytest
import redis

from orchestrator.http import create_app
from orchestrator.store import keys
from tests.http.conftest import Served, bearer, make_config, make_settings
from tests.http.helpers import API_SECRET, RecordingIntake, SendGridSigner, serve

ATTACKER = "203.0.113.77"
NEIGHBOUR = "198.51.100.4"
GUESSES = [f"guess-{n:04d}-0123456789abcdef" for n in range(300)]
TRACK = {"customer_id": "c-1", "event": "order.placed"}


def from_address(address: str, secret: str) -> dict[str, str]:
    return {**bearer(secret), "X-Forwarded-For": address}


@pytest.fixture
def second_process(redis_url: str) -> Iterator[httpx.Client]:
    """Another server on the same Redis and keys: what a second ``--workers`` process is."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    app = create_app(make_settings(), RecordingIntake(), client, config=make_config(SendGridSigner()))
    with serve(app) as base_url, httpx.Client(base_url=base_url, timeout=10) as http:
        yield http
    client.close()


def test_wrong_keys_from_one_address_are_refused_with_429_after_20(
    served: Served, second_process: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    """20 failures a minute per address: then 429 with Retry-After for every /v1 request from it,
    a correct key included and on another server process too; another address is unaffected.
    Nothing logged, counted or stored names the address or a guessed key."""
    with caplog.at_level(logging.DEBUG):
        statuses = []
        for guess in GUESSES:
            response = served.client.post("/v1/track", json=TRACK, headers=from_address(ATTACKER, guess))
            statuses.append(response.status_code)
            if response.status_code == 429:
                assert int(response.headers["retry-after"]) >= 1
                assert "failed authentications" in response.json()["error"]
        blocked = served.client.post("/v1/track", json=TRACK, headers=from_address(ATTACKER, API_SECRET))
        elsewhere = second_process.post("/v1/track", json=TRACK, headers=from_address(ATTACKER, API_SECRET))
        neighbour = served.client.post("/v1/track", json=TRACK, headers=from_address(NEIGHBOUR, API_SECRET))
        metrics = served.client.get("/metrics").text
    assert statuses[:20] == [401] * 20
    # The budget refills one failure every 3 s, so a slow machine may see one or two more 401s.
    assert statuses[20:].count(429) >= 275 and set(statuses[20:]) <= {401, 429}
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) >= 1
    assert elsewhere.status_code == 429
    assert neighbour.status_code == 202
    assert [call["customer_id"] for call in served.intake.tracked] == ["c-1"]
    assert 'loyaloop_http_auth_failures_total{outcome="limited"}' in metrics
    logged = "\n".join(f"{record.name} {record.getMessage()}" for record in caplog.records)
    assert "POST /v1/track 429" in logged  # the access log did run
    stored = "\n".join(served.redis.keys("*"))
    for text in (logged, stored, metrics):
        assert ATTACKER not in text and NEIGHBOUR not in text
        assert not any(guess in text for guess in GUESSES)
    assert len(served.redis.keys(keys.auth_failures("*"))) == 1  # the neighbour never failed


def test_a_correct_key_is_not_charged_and_a_few_failures_do_not_block(served: Served) -> None:
    """A client that mistypes its key a few times and then sends the right one is served."""
    for guess in GUESSES[:5]:
        assert served.client.post("/v1/track", json=TRACK, headers=from_address(NEIGHBOUR, guess)).status_code == 401
    for _ in range(30):
        response = served.client.post("/v1/track", json=TRACK, headers=from_address(NEIGHBOUR, API_SECRET))
        assert response.status_code == 202
