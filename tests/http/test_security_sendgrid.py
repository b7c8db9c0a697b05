"""The SendGrid webhook against the attacks a probe of the front door found: bodies buffered before
the signature check, deep or unreadable signed bodies that answered 500 and left the replay marker
set, headers that crashed the parser, and identifiers written into Redis keys unchecked."""

from __future__ import annotations

import base64
import json
import logging
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from orchestrator.gate import consent
from orchestrator.runtime.message_status import StatusBook
from tests.http.conftest import Served
from tests.http.helpers import SendGridSigner, chunks, raw_exchange, request_head
from tests.http.test_sendgrid_webhook import PATH, event, post

MIB = 1024 * 1024
#: What the probe sent: a current timestamp and a well-formed signature that is not SendGrid's.
JUNK_SIGNATURE = base64.b64encode(b"\x30\x44" + b"\x01" * 68).decode()


def junk_headers() -> dict[str, str]:
    return {
        "X-Twilio-Email-Event-Webhook-Signature": JUNK_SIGNATURE,
        "X-Twilio-Email-Event-Webhook-Timestamp": str(int(time.time())),
        "Content-Type": "application/json",
    }


def refused(reason: str) -> float:
    return REGISTRY.get_sample_value("loyaloop_webhook_refused_total", {"provider": "sendgrid", "reason": reason}) or 0


def signed_post(served: Served, body: bytes) -> httpx.Response:
    return served.client.post(PATH, content=body, headers=served.signer.headers(body))


# --- 2. bodies are limited before they are read -------------------------------------------------


def test_a_declared_oversized_body_is_refused_before_it_is_read(served: Served) -> None:
    """An 8 MiB Content-Length is answered 413 at once: no byte of the body is waited for."""
    head = request_head(PATH, junk_headers(), length=8 * MIB)
    status, _ = raw_exchange(served.base_url, head)
    assert status == 413
    assert served.redis.keys("*") == []


def test_a_streamed_body_is_refused_as_soon_as_it_passes_the_limit(served: Served) -> None:
    """A chunked body (no length) is read only until it passes 1 MiB, then answered 413 while the
    sender is still sending."""
    status, sent = raw_exchange(served.base_url, request_head(PATH, junk_headers(), length=None), chunks(16 * MIB))
    assert status == 413
    assert sent < 8 * MIB


def test_parallel_oversized_posts_do_not_pile_up_in_memory(served: Served) -> None:
    """The probe: parallel 8 MiB POSTs with a junk signature were each buffered whole before the
    403 (memory 77 → 257 MB).  Now each is refused unread: the process allocates almost nothing."""
    body = memoryview(b"[" + b" " * (8 * MIB - 2) + b"]")
    head = request_head(PATH, junk_headers(), length=len(body))

    def send(_: int) -> int:
        return raw_exchange(served.base_url, head, [body], timeout=20)[0]

    tracemalloc.start()
    try:
        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(send, range(8)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * MIB, f"{peak / MIB:.1f} MiB allocated while refusing 64 MiB of bodies"
    assert statuses == [413] * 8


def test_the_limit_is_the_configured_one(small_limits: tuple[httpx.Client, SendGridSigner], redis_url: str) -> None:
    """sendgrid_max_body (LOYALOOP_SENDGRID_MAX_BODY) is the limit: a signed body just over it is a
    413, one under it is handled."""
    http, signer = small_limits
    small = json.dumps([event("delivered")]).encode()
    assert http.post(PATH, content=small, headers=signer.headers(small)).status_code == 200
    large = json.dumps([event("delivered", padding="x" * 4096)]).encode()
    response = http.post(PATH, content=large, headers=signer.headers(large))
    assert response.status_code == 413
    assert "4096 bytes" in response.json()["error"]


def test_a_junk_signature_header_is_refused_before_the_body(served: Served) -> None:
    """A signature header that is not base64 DER is a 403 without waiting for the body."""
    headers = {**junk_headers(), "X-Twilio-Email-Event-Webhook-Signature": "not*base64" * 4}
    status, _ = raw_exchange(served.base_url, request_head(PATH, headers, length=1000))
    assert status == 403


# --- 3. a signed body nested deep is a 400 and leaves no replay marker ----------------------------


@pytest.mark.parametrize("depth", [50_000, 5_000, 33])
def test_a_deeply_nested_signed_body_is_a_400_and_its_retry_is_not_a_replay(served: Served, depth: int) -> None:
    """Nesting past MAX_DEPTH (32, the limit of every door) is refused with 400, not a 500 with a
    traceback, and no replay marker is left: SendGrid's retry gets the same 400, never a 409."""
    body = b"[" * depth + b"]" * depth
    headers = served.signer.headers(body)
    first = served.client.post(PATH, content=body, headers=headers)
    assert first.status_code == 400
    assert "nested more than 32 levels" in first.json()["error"]
    assert served.redis.keys("*") == []
    assert served.client.post(PATH, content=body, headers=headers).status_code == 400


def test_nesting_up_to_the_limit_is_handled(served: Served) -> None:
    """A batch 32 deep (the array, the event, 30 levels of an extra field) is an ordinary batch."""
    nested: Any = "leaf"
    for _ in range(30):
        nested = {"n": nested}
    response = post(served, [event("delivered", extra=nested)])
    assert response.status_code == 200 and response.json()["handled"] == 1


def test_brackets_inside_strings_do_not_count_as_nesting(served: Served) -> None:
    """The depth is measured on the JSON structure, not on characters inside strings."""
    response = post(served, [event("click", url="https://shop.test/?q=" + "[{" * 100 + '\\"' + "]}" * 100)])
    assert response.status_code == 200 and response.json()["handled"] == 1


# --- 4. headers and fields never crash the parser --------------------------------------------------


@pytest.mark.parametrize("stamp", [b"\xb2", b"1" * 5_000, b"-1", b"1e9", b"0x10"])
def test_a_malformed_timestamp_header_is_a_403_not_a_500(served: Served, stamp: bytes) -> None:
    """'²'.isdigit() is true but int() refuses it; a 5,000-digit value overflows int(): both are
    refused as malformed (403) before the body or the signature is looked at."""
    body = json.dumps([event("delivered")]).encode()
    headers: list[tuple[bytes, bytes]] = [
        (name.encode(), value.encode()) for name, value in served.signer.headers(body).items()
    ]
    headers = [(n, stamp if n == b"X-Twilio-Email-Event-Webhook-Timestamp" else v) for n, v in headers]
    response = served.client.post(PATH, content=body, headers=headers)
    assert response.status_code == 403
    assert served.redis.keys("*") == []


@pytest.mark.parametrize(
    "number",
    ["1e400", "-1e400", "1" * 5_000, "-" + "9" * 30],
)
def test_an_unusable_number_in_a_signed_body_is_a_400_without_pythons_hint(served: Served, number: str) -> None:
    """1e400 (infinite once read) and integers no 64-bit reader holds are refused with a message of
    our own (never Python's 'sys.set_int_max_str_digits()' hint), and leave no replay marker."""
    body = json.dumps([event("delivered", timestamp="NUMBER")]).encode().replace(b'"NUMBER"', number.encode())
    headers = served.signer.headers(body)
    response = served.client.post(PATH, content=body, headers=headers)
    assert response.status_code == 400
    assert "set_int_max_str_digits" not in response.text and "4300" not in response.text
    assert served.redis.keys("*") == []
    assert served.client.post(PATH, content=body, headers=headers).status_code == 400


@pytest.mark.parametrize("body", [b"", b"{}", b'"events"', b"[1, 2", b"\xff\xfe[]", b"[NaN]"])
def test_a_signed_body_that_is_not_an_array_of_events_is_a_400(served: Served, body: bytes) -> None:
    """Anything but a JSON array is a 400 that names no value from the body, and leaves no marker."""
    response = signed_post(served, body)
    assert response.status_code == 400
    assert served.redis.keys("*") == []


def test_a_failure_half_way_clears_the_replay_marker(served: Served) -> None:
    """If handling fails (500) no marker is left behind, so the retry is handled, not refused (409)."""
    body = json.dumps([event("delivered")]).encode()
    served.intake.broken = True
    assert signed_post(served, body).status_code == 500
    assert served.redis.keys("lp:http:seen:*") == []


# --- 5. identifiers go through the checks of /v1 ---------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("customer_id", "{x}|y"),
        ("customer_id", "bad id with space"),
        ("customer_id", 42),
        ("idempotency_key", "{run}:welcome"),
        ("run_id", "run{1}"),
        ("step_id", "a b"),
        ("journey_id", "{j}"),
        ("email", "not-an-address"),
        ("sg_event_id", "x" * 1_000),
        ("timestamp", -5),
        ("timestamp", "yesterday"),
        ("timestamp", True),
    ],
)
def test_an_event_with_a_bad_identifier_is_skipped_and_the_rest_applies(served: Served, field: str, value: Any) -> None:
    """A signed event whose customer_id is '{x}|y' wrote lp:c:{{x}|y}:consent, skipping the check
    every other door applies.  Now the bad event is skipped and counted, nothing of it is written,
    and the good event in the same batch still applies."""
    before = refused("invalid_event")
    bad = event("spamreport", **{field: value})
    good = event("unsubscribe", customer_id="c-2", idempotency_key="run-2:welcome", email="bo@example.com")
    response = post(served, [bad, good])
    assert response.status_code == 200
    assert response.json() == {"received": 2, "handled": 1}
    assert refused("invalid_event") == before + 1
    assert consent.read_consent(served.redis, "c-2") == {"email": False}
    assert StatusBook(served.redis).status("run-2:welcome")["status"] == "unsubscribed"
    # Nothing of the bad event: no consent, no status, no suppression, no key outside c-2's.
    assert consent.read_consent(served.redis, "c-1") == {}
    assert StatusBook(served.redis).status("run-1:welcome") == {}
    assert not consent.is_suppressed(served.redis, "ada@example.com")
    assert all(
        "{c-2}" in key or key.startswith(("lp:msgstatus:run-2", "lp:http:seen:")) for key in served.redis.keys("*")
    )


def test_the_hash_tag_injection_writes_no_key(served: Served) -> None:
    """The probe's exact event: customer_id '{x}|y' on an unsubscribe."""
    assert post(served, [event("unsubscribe", customer_id="{x}|y")]).status_code == 200
    assert [key for key in served.redis.keys("*") if "{x}" in key or "|" in key] == []


# --- 6. no value from the request reaches a log or a client ----------------------------------------


def test_a_bad_customer_id_is_logged_by_field_name_never_by_value(served: Served, caplog: Any) -> None:
    """The warning said "customer id 'bad id with space' is not valid"; now it names the field only."""
    with caplog.at_level(logging.WARNING, logger="loyaloop.http.sendgrid"):
        response = post(served, [event("open", customer_id="bad id with space")])
    assert response.status_code == 200
    assert "customer_id" in caplog.text
    assert "bad id with space" not in caplog.text and "bad id with space" not in response.text


def test_an_intake_refusal_is_logged_without_its_message(served: Served, caplog: Any) -> None:
    """The intake's refusal names the value it refused; the log keeps only the field."""
    served.intake.refuse_customers.add("c-1")
    with caplog.at_level(logging.WARNING, logger="loyaloop.http.sendgrid"):
        assert post(served, [event("open")]).status_code == 200
    assert "customer_id" in caplog.text
    assert "customer refused by the runtime" not in caplog.text


# --- 1. consent changes are dated by SendGrid's own time -----------------------------------------


def test_a_withdrawal_is_dated_by_sendgrids_event_time_never_after_its_receipt(served: Served) -> None:
    """The history keeps when the customer unsubscribed (SendGrid's timestamp); a timestamp ahead of
    our clock is dated at receipt, so it can never outrank a later choice."""
    earlier = int(time.time()) - 600
    assert post(served, [event("unsubscribe", timestamp=earlier)]).status_code == 200
    assert consent.consent_history(served.redis, "c-1")[-1]["at"] == f"{earlier:.3f}"
    served.redis.flushall()
    assert post(served, [event("unsubscribe", timestamp=int(time.time()) + 86_400)]).status_code == 200
    assert float(consent.consent_history(served.redis, "c-1")[-1]["at"]) <= time.time()
