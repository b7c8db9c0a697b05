"""POST /v1/track, /v1/identify, /v1/batch over real HTTP: auth, validation, limits, idempotency."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import redis

from orchestrator.http import create_app
from orchestrator.store import keys
from tests.http.conftest import Served, bearer, make_config, make_settings
from tests.http.helpers import API_SECRET, OTHER_SECRET, RecordingIntake, SendGridSigner, serve

NOW = datetime.now(UTC)


def stored_keys(client: redis.Redis) -> set[str]:
    """Every key in Redis except the rate-limit state (which a refused request may legitimately touch):
    the key's rate and the client address's failed-authentication budget."""
    limits = (keys.api_rate(""), keys.auth_failures(""))
    return {key for key in client.keys("*") if not key.startswith(limits)}


def test_track_is_accepted_and_handed_to_the_runtime(served: Served) -> None:
    """A valid track answers 202 with the event id, after the intake received every field."""
    body = {
        "customer_id": "c-1",
        "event": "order.placed",
        "properties": {"total": 42.5, "items": [{"sku": "A"}]},
        "event_id": "evt-1",
        "timestamp": "2026-01-31T09:30:00+01:00",
    }
    response = served.client.post("/v1/track", json=body, headers=bearer())
    assert response.status_code == 202
    assert response.json() == {"accepted": True, "event_id": "evt-1"}
    [call] = served.intake.tracked
    assert call["customer_id"] == "c-1" and call["event"] == "order.placed"
    assert call["properties"] == body["properties"]
    assert call["timestamp"] == datetime(2026, 1, 31, 8, 30, tzinfo=UTC)


def test_identify_is_accepted(served: Served) -> None:
    """identify hands the attributes to the runtime and answers 202."""
    response = served.client.post(
        "/v1/identify", json={"customer_id": "c-1", "attributes": {"first_name": "Ada"}}, headers=bearer()
    )
    assert response.status_code == 202
    assert served.intake.identified == [("c-1", {"first_name": "Ada"})]


def test_batch_mixes_track_and_identify(served: Served) -> None:
    """A batch hands every item over in order and reports one result per item."""
    batch = [
        {"type": "identify", "customer_id": "c-1", "attributes": {"plan": "gold"}},
        {"type": "track", "customer_id": "c-1", "event": "signed_up", "event_id": "e-1"},
        {"type": "track", "customer_id": "c-2", "event": "signed_up"},
    ]
    response = served.client.post("/v1/batch", json={"batch": batch}, headers=bearer())
    assert response.status_code == 202
    assert response.json()["accepted"] == 3
    assert [c["customer_id"] for c in served.intake.tracked] == ["c-1", "c-2"]
    assert served.intake.identified == [("c-1", {"plan": "gold"})]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-key-0123456789"},
        {"Authorization": f"Basic {API_SECRET}"},
        {"Authorization": "Bearer"},
    ],
    ids=["missing", "unknown", "wrong-scheme", "empty"],
)
def test_requests_without_a_valid_key_are_refused(served: Served, headers: dict[str, str]) -> None:
    """401 with WWW-Authenticate, nothing handed over, nothing stored but the failure (counted
    against the client address's budget)."""
    response = served.client.post("/v1/track", json={"customer_id": "c", "event": "e"}, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "error" in response.json()
    assert served.intake.tracked == []
    assert stored_keys(served.redis) == set()
    assert len(served.redis.keys(keys.auth_failures("*"))) == 1


FUTURE = (NOW + timedelta(days=2)).isoformat()
MALFORMED: list[tuple[str, str, bytes, str | None]] = [
    ("not-json", "/v1/track", b"{nope", None),
    ("empty", "/v1/track", b"", None),
    ("nan", "/v1/track", b'{"customer_id": "c", "event": "e", "properties": {"x": NaN}}', None),
    ("array", "/v1/track", b"[]", None),
    ("no-customer", "/v1/track", b'{"event": "e"}', "customer_id"),
    ("customer-number", "/v1/track", b'{"customer_id": 7, "event": "e"}', "customer_id"),
    ("customer-blank", "/v1/track", b'{"customer_id": "  ", "event": "e"}', "customer_id"),
    ("customer-brace", "/v1/track", b'{"customer_id": "a{b}", "event": "e"}', "customer_id"),
    ("customer-long", "/v1/track", json.dumps({"customer_id": "x" * 129, "event": "e"}).encode(), "customer_id"),
    ("no-event", "/v1/track", b'{"customer_id": "c"}', "event"),
    ("event-control", "/v1/track", b'{"customer_id": "c", "event": "a\\nb"}', "event"),
    ("properties-list", "/v1/track", b'{"customer_id": "c", "event": "e", "properties": [1]}', "properties"),
    (
        "huge-int",
        "/v1/track",
        b'{"customer_id": "c", "event": "e", "properties": {"n": 99999999999999999999999}}',
        "properties.n",
    ),
    ("event-id-number", "/v1/track", b'{"customer_id": "c", "event": "e", "event_id": 5}', "event_id"),
    (
        "time-no-zone",
        "/v1/track",
        b'{"customer_id": "c", "event": "e", "timestamp": "2026-01-31T09:30:00"}',
        "timestamp",
    ),
    ("time-garbage", "/v1/track", b'{"customer_id": "c", "event": "e", "timestamp": "yesterday"}', "timestamp"),
    ("time-number", "/v1/track", b'{"customer_id": "c", "event": "e", "timestamp": 1700000000}', "timestamp"),
    (
        "time-future",
        "/v1/track",
        json.dumps({"customer_id": "c", "event": "e", "timestamp": FUTURE}).encode(),
        "timestamp",
    ),
    (
        "deep-properties",
        "/v1/track",
        b'{"customer_id": "c", "event": "e", "properties": {"a": ' + b"[" * 985 + b"]" * 985 + b"}}",
        None,
    ),
    ("deep-body", "/v1/track", b"[" * 20000 + b"]" * 20000, None),
    (
        "time-year-one",
        "/v1/track",
        b'{"customer_id": "c", "event": "e", "timestamp": "0001-01-01T00:00:00+05:00"}',
        "timestamp",
    ),
    (
        "time-before-1970",
        "/v1/track",
        b'{"customer_id": "c", "event": "e", "timestamp": "1969-07-20T20:17:00Z"}',
        "timestamp",
    ),
    ("unknown-field", "/v1/track", b'{"customer_id": "c", "event": "e", "propertes": {}}', "propertes"),
    ("identify-no-attributes", "/v1/identify", b'{"customer_id": "c"}', "attributes"),
    ("identify-attributes-string", "/v1/identify", b'{"customer_id": "c", "attributes": "x"}', "attributes"),
    ("batch-missing", "/v1/batch", b"{}", "batch"),
    ("batch-empty", "/v1/batch", b'{"batch": []}', "batch"),
    ("batch-item-type", "/v1/batch", b'{"batch": [{"type": "page", "customer_id": "c"}]}', "batch[0].type"),
    (
        "batch-second-item-bad",
        "/v1/batch",
        b'{"batch": [{"type": "track", "customer_id": "c", "event": "e"}, {"type": "track", "customer_id": "c"}]}',
        "batch[1].event",
    ),
    (
        "batch-too-many",
        "/v1/batch",
        json.dumps({"batch": [{"type": "track", "customer_id": "c", "event": "e"}] * 501}).encode(),
        "batch",
    ),
]


@pytest.mark.parametrize(("path", "body", "field"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_bodies_are_refused_and_nothing_is_stored(
    served: Served, path: str, body: bytes, field: str | None
) -> None:
    """400 with a JSON error naming the field; the runtime never sees the request and Redis holds nothing."""
    response = served.client.post(path, content=body, headers={**bearer(), "Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    payload = response.json()
    assert isinstance(payload["error"], str) and payload["error"]
    assert payload.get("field") == field
    assert served.intake.tracked == [] and served.intake.identified == []
    assert stored_keys(served.redis) == set()


def test_a_runtime_refusal_becomes_a_400_with_its_field(served: Served) -> None:
    """InputError raised by the intake is answered as 400 with the intake's field."""
    served.intake.refuse_customers.add("banned")
    response = served.client.post("/v1/track", json={"customer_id": "banned", "event": "e"}, headers=bearer())
    assert response.status_code == 400
    assert response.json()["field"] == "customer_id"


def test_a_runtime_refusal_in_a_batch_says_which_item_and_how_many_went_in(served: Served) -> None:
    """A batch's tracks between two identifies go in together or not at all; the 400 names the item
    the runtime refused and how many items at the start of the batch went in."""
    served.intake.refuse_customers.add("banned")
    track = {"type": "track", "event": "e"}
    items = [
        {**track, "customer_id": "c-1"},
        {"type": "identify", "customer_id": "c-1", "attributes": {"tier": "gold"}},
        {**track, "customer_id": "c-2"},
        {**track, "customer_id": "banned"},
    ]
    response = served.client.post("/v1/batch", json={"batch": items}, headers=bearer())
    assert response.status_code == 400
    assert (response.json()["field"], response.json()["accepted"]) == ("batch[3].customer_id", 2)
    assert [item["customer_id"] for item in served.intake.tracked] == ["c-1"]  # c-2 went in with banned: not at all
    served.intake.clear()
    served.intake.refuse_customers.add("banned")
    items[1] = {"type": "identify", "customer_id": "banned", "attributes": {"tier": "gold"}}
    response = served.client.post("/v1/batch", json={"batch": items[:2]}, headers=bearer())
    assert response.status_code == 400
    assert (response.json()["field"], response.json()["accepted"]) == ("batch[1].customer_id", 1)


@pytest.mark.parametrize("path", ["/v1/track", "/v1/batch"])
def test_bodies_over_the_limit_are_refused_with_413(served: Served, path: str) -> None:
    """413 whether the size is declared (Content-Length) or only discovered while streaming (chunked)."""
    limit = 64 * 1024 if path == "/v1/track" else 1024 * 1024
    big = b'{"customer_id": "c", "event": "e", "properties": {"pad": "' + b"x" * limit + b'"}}'
    declared = served.client.post(path, content=big, headers=bearer())
    assert declared.status_code == 413

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(big), 8192):
            yield big[start : start + 8192]

    streamed = served.client.post(path, content=chunks(), headers=bearer())
    assert streamed.status_code == 413
    assert "error" in streamed.json()
    assert served.intake.tracked == []


def test_a_repeated_event_id_already_handled_is_reported_as_duplicate(served: Served) -> None:
    """Once the runtime has marked an event id seen, a repeat answers 202 duplicate and is not enqueued."""
    body = {"customer_id": "c-1", "event": "order.placed", "event_id": "evt-9"}
    first = served.client.post("/v1/track", json=body, headers=bearer())
    assert first.status_code == 202 and "duplicate" not in first.json()
    served.redis.hset(keys.seen_events("c-1"), "evt-9", "done")  # what the runtime records once handled
    again = served.client.post("/v1/track", json=body, headers=bearer())
    assert again.status_code == 202
    assert again.json() == {"accepted": True, "event_id": "evt-9", "duplicate": True}
    assert len(served.intake.tracked) == 1


def test_an_event_applied_but_not_finished_is_taken_again(served: Served) -> None:
    """An event the runtime applied and could not finish (kept aside after a failure) does not block
    its id: the same id is queued again, and the runtime resumes it from the applied state."""
    served.redis.hset(keys.seen_events("c-1"), "evt-10", "applied")
    again = served.client.post(
        "/v1/track", json={"customer_id": "c-1", "event": "order.placed", "event_id": "evt-10"}, headers=bearer()
    )
    assert again.json() == {"accepted": True, "event_id": "evt-10"}
    assert [item["event_id"] for item in served.intake.tracked] == ["evt-10"]


@pytest.fixture
def tight(redis_url: str) -> Iterator[tuple[httpx.Client, RecordingIntake]]:
    """An app whose keys may send 3 events at once and then one every 10 s (slow machines cannot refill it)."""
    intake = RecordingIntake()
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    config = make_config(SendGridSigner(), rate=0.1, burst=3, max_batch_items=3)
    app = create_app(make_settings(), intake, client, config=config)
    with serve(app) as base_url, httpx.Client(base_url=base_url, timeout=10) as http:
        yield http, intake
    client.close()


def test_rate_limit_answers_429_with_retry_after_per_key(tight: tuple[httpx.Client, RecordingIntake]) -> None:
    """After the burst a key gets 429 with Retry-After; another key is unaffected; refused events stay out."""
    http, intake = tight
    body: dict[str, Any] = {"customer_id": "c", "event": "e"}
    statuses = [http.post("/v1/track", json=body, headers=bearer()).status_code for _ in range(3)]
    assert statuses == [202, 202, 202]
    refused = http.post("/v1/track", json=body, headers=bearer())
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert len(intake.tracked) == 3
    assert http.post("/v1/track", json=body, headers=bearer(OTHER_SECRET)).status_code == 202


def test_a_batch_costs_one_unit_per_item(tight: tuple[httpx.Client, RecordingIntake]) -> None:
    """A 3-item batch uses the whole burst of 3, so the next single track is refused."""
    http, _ = tight
    items = [{"type": "track", "customer_id": "c", "event": "e"}] * 3
    assert http.post("/v1/batch", json={"batch": items}, headers=bearer()).status_code == 202
    assert http.post("/v1/track", json={"customer_id": "c", "event": "e"}, headers=bearer()).status_code == 429


def _access_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "loyaloop.http.access"]


def test_access_log_names_the_key_id_never_the_key_or_the_body(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    """The access log line has method, route, status and key id; no secret, customer id or client address."""
    with caplog.at_level(logging.INFO, logger="loyaloop.http.access"):
        served.client.post("/v1/track", json={"customer_id": "ada@example.com", "event": "e"}, headers=bearer())
        # The server's thread writes the line once the answer is out: the client can be first.
        deadline = time.monotonic() + 5
        while not _access_lines(caplog) and time.monotonic() < deadline:
            time.sleep(0.01)
    lines = _access_lines(caplog)
    assert lines and lines[-1].startswith("POST /v1/track 202 ")
    assert "key=shop" in lines[-1]
    text = "\n".join(lines)
    assert API_SECRET not in text and "ada@example.com" not in text and "127.0.0.1" not in text


RUNTIME_RULES: list[tuple[str, str, dict[str, Any], str]] = [
    ("customer-space", "/v1/track", {"customer_id": "a b", "event": "e"}, "customer_id"),
    ("event-upper", "/v1/track", {"customer_id": "c", "event": "Order Placed"}, "event"),
    ("event-id-slash", "/v1/track", {"customer_id": "c", "event": "e", "event_id": "a/b"}, "event_id"),
    (
        "derived-attribute",
        "/v1/identify",
        {"customer_id": "c", "attributes": {"orders_count": 3}},
        "attributes.orders_count",
    ),
    ("bad-zone", "/v1/identify", {"customer_id": "c", "attributes": {"timezone": "Mars/Base"}}, "attributes.timezone"),
    (
        "batch-identify-zone",
        "/v1/batch",
        {
            "batch": [
                {"type": "track", "customer_id": "c", "event": "e"},
                {"type": "identify", "customer_id": "c", "attributes": {"timezone": "Nowhere/Town"}},
            ]
        },
        "batch[1].attributes.timezone",
    ),
]


@pytest.mark.parametrize(("path", "body", "field"), [r[1:] for r in RUNTIME_RULES], ids=[r[0] for r in RUNTIME_RULES])
def test_the_runtimes_own_rules_are_checked_before_anything_is_handed_over(
    served: Served, path: str, body: dict[str, Any], field: str
) -> None:
    """Rules the runtime enforces are applied up front, so a batch is refused whole, never half-stored."""
    response = served.client.post(path, json=body, headers=bearer())
    assert response.status_code == 400, response.text
    assert response.json()["field"] == field
    assert served.intake.tracked == [] and served.intake.identified == []
    assert stored_keys(served.redis) == set()


def test_an_internal_failure_answers_500_json_and_accepts_nothing(served: Served) -> None:
    """When the runtime cannot enqueue, the client gets a JSON 500 (retry with the same event id), never a 202."""
    served.intake.broken = True
    response = served.client.post(
        "/v1/track", json={"customer_id": "c", "event": "e", "event_id": "x-1"}, headers=bearer()
    )
    assert response.status_code == 500
    assert "retry" in response.json()["error"]
    assert served.intake.tracked == []


def test_a_bearer_with_the_key_id_gets_a_hint(served: Served) -> None:
    """`Authorization: Bearer shop:SECRET` (id and secret, as in LOYALOOP_API_KEYS) got a bare 401."""
    response = served.client.post(
        "/v1/track", json={"customer_id": "c", "event": "e"}, headers={"Authorization": f"Bearer shop:{API_SECRET}"}
    )
    assert response.status_code == 401
    assert "send only the secret" in response.text and API_SECRET not in response.text
    wrong = served.client.post(
        "/v1/track", json={"customer_id": "c", "event": "e"}, headers={"Authorization": "Bearer shop:nope-nope-nope"}
    )
    assert wrong.status_code == 401 and "send only the secret" not in wrong.text
