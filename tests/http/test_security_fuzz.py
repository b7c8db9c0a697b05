"""Every /v1 and webhook route, fuzzed: never a 5xx, never a traceback in the body, and a refused
request (4xx) stores nothing about any customer and queues no event.

The app runs on a real uvicorn with the real intake client on a real redis-server (nothing is
recorded in memory instead), so "nothing stored" is read back from Redis itself.  Bodies are
generated around valid ones (hypothesis): right shapes with wrong values, wrong shapes, deep
nesting, odd numbers and strings, unknown fields; webhooks get correctly signed nonsense, since
what a provider signed is trusted only for its origin, not its content.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from orchestrator.http import create_app
from orchestrator.runtime.event_queue import EventQueue
from orchestrator.runtime.intake import Loyaloop
from tests.http.conftest import bearer, make_config, make_settings
from tests.http.helpers import PUBLIC_URL, TWILIO_TOKEN, SendGridSigner, serve
from tests.redis_server import RedisServer

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)


class Nudges:
    """Drain and profile nudges are counted, not sent: no worker runs here."""

    def __init__(self) -> None:
        self.sent = 0

    def nudge_drain(self, shard: int) -> None:
        self.sent += 1

    def nudge_profile(self, customer_id: str) -> None:
        self.sent += 1


class Door:
    def __init__(self, client: httpx.Client, store: redis.Redis, signer: SendGridSigner) -> None:
        self.client = client
        self.redis = store
        self.signer = signer
        self.queue = EventQueue(store)

    def customer_keys(self) -> set[str]:
        """Every key holding something about a customer (their keys carry the ``{id}`` hash tag)."""
        return set(self.redis.scan_iter("lp:c:*", count=1000))

    def check(self, response: httpx.Response, before: tuple[set[str], int]) -> None:
        assert response.status_code < 500, response.text
        assert "Traceback" not in response.text and 'File "' not in response.text
        if 400 <= response.status_code < 500:
            assert (self.customer_keys(), self.queue.depth()) == before, response.text

    def state(self) -> tuple[set[str], int]:
        return self.customer_keys(), self.queue.depth()


@pytest.fixture(scope="module")
def door(redis_server: RedisServer) -> Iterator[Door]:
    store = redis.Redis.from_url(redis_server.url, decode_responses=True)
    signer = SendGridSigner()
    intake = Loyaloop(Nudges(), store, consent_channels=frozenset({"email", "sms", "push"}))
    app = create_app(make_settings(), intake, store, config=make_config(signer, rate=1e9, burst=10**9))
    with serve(app) as base_url, httpx.Client(base_url=base_url, timeout=10) as client:
        yield Door(client, store, signer)
    store.close()


# --- generated values ----------------------------------------------------------------------------
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.sampled_from(["", " ", "{x}|y", "a\r\nBcc: x@evil", "\u0000", "²", "9" * 5000, "c-1", "order.placed"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=25,
)
identifiers = st.one_of(st.sampled_from(["c-1", "c-2", "ab@cd.ef", "{x}|y", "bad id", ""]), st.text(max_size=20))
events = st.one_of(st.sampled_from(["order.placed", "signup", "Sign Up", "", "a" * 200]), st.text(max_size=20))


def deep(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


track_bodies = st.fixed_dictionaries(
    {"customer_id": identifiers, "event": events},
    optional={
        "properties": st.one_of(json_values, st.builds(lambda d: {"x": deep(d)}, st.integers(0, 600))),
        "event_id": identifiers,
        "timestamp": st.one_of(
            scalars, st.sampled_from(["2026-01-01T00:00:00Z", "1e400", "0001-01-01T00:00:00+14:00"])
        ),
        "extra": json_values,
    },
)
identify_bodies = st.fixed_dictionaries(
    {"customer_id": identifiers},
    optional={
        "attributes": st.one_of(
            json_values,
            st.fixed_dictionaries(
                {},
                optional={
                    "email": st.one_of(scalars, st.emails()),
                    "phone": st.one_of(scalars, st.sampled_from(["+31612345678", "0612345678"])),
                    "consent": st.one_of(json_values, st.dictionaries(st.text(max_size=10), st.booleans())),
                    "timezone": st.one_of(scalars, st.sampled_from(["Europe/Amsterdam", "CET", "../etc"])),
                    "first_name": scalars,
                    "orders_count": scalars,
                },
            ),
        )
    },
)
any_body = st.one_of(json_values, track_bodies, identify_bodies)


def encoded(value: Any) -> bytes:
    return json.dumps(value, allow_nan=False).encode() if not isinstance(value, bytes) else value


raw_bodies = st.one_of(st.binary(max_size=64), st.builds(encoded, any_body))


# --- the doors -------------------------------------------------------------------------------------
@FUZZ
@given(
    route=st.sampled_from(["/v1/track", "/v1/identify"]), body=st.one_of(raw_bodies, st.builds(encoded, track_bodies))
)
def test_v1_track_and_identify(door: Door, route: str, body: bytes) -> None:
    before = door.state()
    response = door.client.post(route, content=body, headers={**bearer(), "Content-Type": "application/json"})
    door.check(response, before)


@FUZZ
@given(
    items=st.lists(
        st.one_of(
            any_body,
            st.builds(lambda b: {**b, "type": "track"}, track_bodies),
            st.builds(lambda b: {**b, "type": "identify"}, identify_bodies),
        ),
        max_size=5,
    )
)
def test_v1_batch(door: Door, items: list[Any]) -> None:
    before = door.state()
    response = door.client.post("/v1/batch", json={"batch": items}, headers=bearer())
    door.check(response, before)


def test_a_batch_whose_later_item_names_an_unknown_consent_channel_stores_nothing(door: Door) -> None:
    """The app's own check of a batch knows the registered channels, so an identify that the
    runtime would refuse for its consent is refused before the first item is handed on."""
    before = door.state()
    batch = [
        {"type": "identify", "customer_id": "batch-ok", "attributes": {"email": "ok@example.com"}},
        {"type": "identify", "customer_id": "batch-bad", "attributes": {"consent": {"email": True, "fax": True}}},
    ]
    response = door.client.post("/v1/batch", json={"batch": batch}, headers=bearer())
    assert response.status_code == 400, response.text
    assert response.json()["field"].startswith("batch[1].attributes")
    door.check(response, before)
    alone = door.client.post("/v1/identify", json=batch[1], headers=bearer())
    assert alone.status_code == 400 and door.state() == before


@FUZZ
@given(
    body=st.one_of(
        raw_bodies,
        st.builds(
            encoded,
            st.lists(
                st.dictionaries(
                    st.sampled_from(
                        ["email", "event", "customer_id", "timestamp", "sg_message_id", "sg_event_id", "reason"]
                    ),
                    json_values,
                ),
                max_size=4,
            ),
        ),
    ),
    signed=st.booleans(),
    stamp=st.one_of(st.none(), st.sampled_from(["²", "9" * 5000, "-1", "abc", ""])),
)
def test_sendgrid_webhook(door: Door, body: bytes, signed: bool, stamp: str | None) -> None:
    before = door.state()
    headers: dict[str, Any] = door.signer.headers(body) if signed else {"Content-Type": "application/json"}
    if stamp is not None:  # raw bytes: '²' is not ASCII, which is the point
        headers["X-Twilio-Email-Event-Webhook-Timestamp"] = stamp.encode("utf-8")
    response = door.client.post("/webhooks/sendgrid", content=body, headers=headers)
    door.check(response, before)


@FUZZ
@given(
    path=st.sampled_from(["/webhooks/twilio/status", "/webhooks/twilio/inbound"]),
    params=st.dictionaries(
        st.sampled_from(
            ["MessageSid", "MessageStatus", "From", "To", "Body", "ErrorCode", "AccountSid", "SmsSid", "x"]
        ),
        st.one_of(st.text(max_size=30), st.sampled_from(["STOP", "START", "21610", "+31612345678", "{x}|y"])),
        max_size=6,
    ),
    signed=st.booleans(),
)
def test_twilio_webhooks(door: Door, path: str, params: dict[str, str], signed: bool) -> None:
    before = door.state()
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(PUBLIC_URL + path, params) if signed else "x"
    response = door.client.post(
        path,
        content=urllib.parse.urlencode(params).encode(),
        headers={"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"},
    )
    door.check(response, before)


@FUZZ
@given(token=st.text(max_size=80), method=st.sampled_from(["GET", "POST"]))
def test_unsubscribe_page(door: Door, token: str, method: str) -> None:
    before = door.state()
    response = door.client.request(method, f"/u/{urllib.parse.quote(token, safe='')}")
    assert response.status_code < 500
    assert "Traceback" not in response.text
    if response.status_code >= 400:
        assert door.state() == before
