"""/healthz, /metrics and the shape of error answers for unknown routes."""

from __future__ import annotations

import logging

import pytest

from orchestrator.gate.unsubscribe import make_token
from orchestrator.store import keys
from tests.http.conftest import Served, bearer
from tests.http.helpers import SECRET_KEY


def test_healthz(served: Served) -> None:
    """A plain liveness answer."""
    response = served.client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_metrics_count_requests_by_route_template(served: Served) -> None:
    """Prometheus text with per-route counters and latency; routes appear as templates, never raw paths."""
    served.client.post("/v1/track", json={"customer_id": "c", "event": "e"}, headers=bearer())
    token = make_token(SECRET_KEY.encode(), "c-1", "email")
    served.client.get(f"/u/{token}")
    text = served.client.get("/metrics").text
    assert 'loyaloop_http_requests_total{method="POST",route="/v1/track",status="202"}' in text
    assert 'route="/u/{token}"' in text and token not in text
    assert "loyaloop_http_request_seconds_bucket" in text
    assert "loyaloop_http_events_accepted_total" in text


@pytest.mark.parametrize(("method", "path", "status"), [("GET", "/nope/secret-path", 404), ("GET", "/v1/track", 405)])
def test_unknown_routes_and_methods_answer_json(
    served: Served, caplog: pytest.LogCaptureFixture, method: str, path: str, status: int
) -> None:
    """404/405 are JSON errors, and the access log does not echo a scanner's path."""
    with caplog.at_level(logging.INFO, logger="loyaloop.http.access"):
        response = served.client.request(method, path)
    assert response.status_code == status
    assert "error" in response.json()
    if status == 405:
        assert response.headers["allow"] == "POST"
    text = "\n".join(r.getMessage() for r in caplog.records if r.name == "loyaloop.http.access")
    assert "secret-path" not in text


def test_metrics_show_unknown_events_with_a_did_you_mean(served: Served) -> None:
    """Counts workers kept in Redis appear in /metrics, each with the closest catalogue event; a
    track of such an event is still accepted (202): producers must not break."""
    served.redis.delete(keys.unknown_events())
    served.redis.hset(keys.unknown_events(), "signup", 3)
    try:
        response = served.client.post("/v1/track", json={"customer_id": "c", "event": "signup"}, headers=bearer())
        assert response.status_code == 202
        text = served.client.get("/metrics").text
    finally:
        served.redis.delete(keys.unknown_events())
    assert 'loyaloop_unknown_events{event="signup",did_you_mean="customer.signed_up"} 3' in text
