"""The Twilio webhooks against the attacks a probe of the front door found: a captured START
re-split into new parameters under its original signature, replayed status callbacks, oversized
forms, and identifiers written into Redis keys unchecked."""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from prometheus_client import REGISTRY

from orchestrator.gate import consent
from orchestrator.http.twilio_webhook import compute_signature
from orchestrator.runtime.message_status import StatusBook
from tests.http.conftest import Served
from tests.http.helpers import PUBLIC_URL, TWILIO_TOKEN, SendGridSigner, chunks, raw_exchange, request_head
from tests.http.test_twilio_webhook import INBOUND, PHONE, STATUS, remember_sms, signed_post, status_params

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
#: The probe's captured inbound START, exactly as Twilio posted it.
START = (
    "AccountSid=AC1&Body=START&From=%2B31612345678&MessageSid=SMin-start1&SmsMessageSid=SMin-start1"
    "&SmsSid=SMin-start1&SmsStatus=received&To=%2B3197000"
)
#: The same signed string split differently: a new MessageSid, the same signature.
RESPLIT = (
    "AccountSid=AC1&Body=START&From=%2B31612345678&MessageSi=dSMin-start1&SmsMessageSi=dSMin-start1"
    "&SmsSid=SMin-start1Sms&Status=received&To=%2B3197000"
)


def signature_of(path: str, body: str) -> str:
    return compute_signature(TWILIO_TOKEN, PUBLIC_URL + path, parse_qsl(body, keep_blank_values=True))


def post_raw(served: Served, path: str, body: str, signature: str) -> httpx.Response:
    return served.client.post(path, content=body.encode(), headers={**FORM, "X-Twilio-Signature": signature})


def refused(reason: str) -> float:
    return REGISTRY.get_sample_value("loyaloop_webhook_refused_total", {"provider": "twilio", "reason": reason}) or 0


def texted(served: Served) -> None:
    """c-1 was texted at PHONE (the status callback that lets an inbound message find them)."""
    remember_sms(served)
    assert signed_post(served, STATUS, status_params("delivered")).status_code == 204


# --- 1. a replayed START never undoes a later STOP -------------------------------------------------


def test_a_resplit_replay_of_a_start_cannot_undo_a_later_stop(served: Served) -> None:
    """The probe: START, then STOP, then the START's signature on a body re-split so that it shows a
    new MessageSid.  The signed string is byte-identical, so the signature passes; the replay guard
    keys on that string, so nothing changes: consent stays withdrawn and the number suppressed."""
    texted(served)
    signature = signature_of(INBOUND, START)
    assert signature_of(INBOUND, RESPLIT) == signature  # the attack is real: one signature, two forms
    assert post_raw(served, INBOUND, START, signature).status_code == 200
    assert consent.read_consent(served.redis, "c-1") == {"sms": True}
    stop = {"MessageSid": "SMin-stop1", "From": PHONE, "Body": "STOP", "To": "+3197000"}
    assert signed_post(served, INBOUND, stop).status_code == 200
    history = consent.consent_history(served.redis, "c-1")

    replay = post_raw(served, INBOUND, RESPLIT, signature)
    assert replay.status_code == 200 and "<Response></Response>" in replay.text
    assert post_raw(served, INBOUND, START, signature).status_code == 200  # the exact replay too
    assert consent.read_consent(served.redis, "c-1") == {"sms": False}
    assert consent.suppression_reason(served.redis, PHONE) == "twilio:stop"
    assert consent.consent_history(served.redis, "c-1") == history


def test_a_start_older_than_the_stop_it_would_undo_is_refused(served: Served) -> None:
    """A START received before a STOP but handled after it (two workers, a slow thread) must not win:
    consent changes are ordered by receipt time, and an opt-in older than the last opt-out is refused
    (and the number stays suppressed)."""
    texted(served)
    # The STOP, as a worker that received it a minute from now records it.
    consent.suppress(served.redis, PHONE, "twilio:stop")
    consent.set_consent(served.redis, "c-1", "sms", False, source="twilio:stop", at=time.time() + 60)
    before = refused("out_of_order")
    assert signed_post(served, INBOUND, {"MessageSid": "SMlate", "From": PHONE, "Body": "START"}).status_code == 200
    assert consent.read_consent(served.redis, "c-1") == {"sms": False}
    assert consent.suppression_reason(served.redis, PHONE) == "twilio:stop"
    assert refused("out_of_order") == before + 1


def test_a_start_after_a_stop_still_resubscribes(served: Served) -> None:
    """The ordering refuses only what goes backwards: a customer who texts START after STOP is back."""
    texted(served)
    assert signed_post(served, INBOUND, {"MessageSid": "SMa", "From": PHONE, "Body": "STOP"}).status_code == 200
    assert signed_post(served, INBOUND, {"MessageSid": "SMb", "From": PHONE, "Body": "START"}).status_code == 200
    assert consent.read_consent(served.redis, "c-1") == {"sms": True}
    assert not consent.is_suppressed(served.redis, PHONE)


def test_a_replayed_opt_out_status_callback_changes_nothing(served: Served) -> None:
    """A 21610 callback (carrier opt-out) only ever withdraws, so replaying it cannot re-subscribe
    anyone; it is also handled once, so replaying it (exactly or re-split) after the customer
    texted START does not withdraw their consent again, and never records a status backwards."""
    remember_sms(served)
    params = status_params("undelivered", ErrorCode="21610")
    body = "&".join(f"{name}={value}" for name, value in sorted(params.items())).replace("+", "%2B")
    signature = signature_of(STATUS, body)
    assert post_raw(served, STATUS, body, signature).status_code == 204
    assert consent.read_consent(served.redis, "c-1") == {"sms": False}
    assert signed_post(served, INBOUND, {"MessageSid": "SMback", "From": PHONE, "Body": "START"}).status_code == 200
    assert consent.read_consent(served.redis, "c-1") == {"sms": True}
    history = consent.consent_history(served.redis, "c-1")

    # 'ErrorCod' + 'e21610MessageSidSM1' signs like 'ErrorCode' + '21610' + 'MessageSid' + 'SM1'.
    resplit = body.replace("ErrorCode=21610&MessageSid=SM1", "ErrorCod=e21610MessageSidSM1")
    assert signature_of(STATUS, resplit) == signature
    for replay in (body, resplit):
        assert post_raw(served, STATUS, replay, signature).status_code == 204
    assert consent.read_consent(served.redis, "c-1") == {"sms": True}
    assert consent.consent_history(served.redis, "c-1") == history
    assert StatusBook(served.redis).status("run-1:reminder")["status"] == "undelivered"
    assert not consent.is_suppressed(served.redis, PHONE)


# --- 2. forms are limited before they are read ------------------------------------------------------


@pytest.mark.parametrize("path", [STATUS, INBOUND])
def test_a_declared_oversized_form_is_refused_before_it_is_read(served: Served, path: str) -> None:
    """A Content-Length past the limit (64 KiB) is a 413 at once; no byte of the body is waited for."""
    headers = {**FORM, "X-Twilio-Signature": "A" * 28}
    status, _ = raw_exchange(served.base_url, request_head(path, headers, length=8 * 1024 * 1024))
    assert status == 413


@pytest.mark.parametrize("path", [STATUS, INBOUND])
def test_a_streamed_form_is_refused_as_soon_as_it_passes_the_limit(served: Served, path: str) -> None:
    """A chunked form is read only until it passes the limit, then answered 413 mid-upload."""
    headers = {**FORM, "X-Twilio-Signature": "A" * 28}
    status, sent = raw_exchange(served.base_url, request_head(path, headers, length=None), chunks(8 * 1024 * 1024))
    assert status == 413
    assert sent < 4 * 1024 * 1024


def test_the_form_limit_is_the_configured_one(
    small_limits: tuple[httpx.Client, SendGridSigner], redis_url: str
) -> None:
    """twilio_max_body (LOYALOOP_TWILIO_MAX_BODY) is the limit: a form just over it is a 413."""
    http, _ = small_limits
    params = {"MessageSid": "SM1", "From": PHONE, "Body": "x" * 600}
    signature = compute_signature(TWILIO_TOKEN, PUBLIC_URL + INBOUND, params.items())
    response = http.post(INBOUND, data=params, headers={"X-Twilio-Signature": signature})
    assert response.status_code == 413
    assert "512 bytes" in response.json()["error"]


@pytest.mark.parametrize("signature", ["A" * 5_000, "\xb2" * 28])
def test_a_malformed_signature_header_is_a_403(served: Served, signature: str) -> None:
    """An overlong or non-ASCII signature is refused as forged, never a 500."""
    response = served.client.post(
        INBOUND, content=START.encode(), headers=[(b"X-Twilio-Signature", signature.encode("latin-1")), *FORM.items()]
    )
    assert response.status_code == 403


def test_a_form_with_too_many_fields_is_a_400(served: Served) -> None:
    """Twilio sends a few dozen fields; thousands are refused before the signature is computed."""
    body = "&".join(f"f{i}=1" for i in range(1_000))
    assert post_raw(served, INBOUND, body, "A" * 28).status_code == 400


# --- 5. identifiers go through the checks of /v1 ---------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"MessageSid": "SMx", "From": "{x}|y", "Body": "STOP"},
        {"MessageSid": "SMx", "From": "not a phone", "Body": "STOP"},
        {"MessageSid": "{SMx}", "From": PHONE, "Body": "STOP"},
        {"MessageSid": "SM x", "From": PHONE, "Body": "START"},
    ],
)
def test_an_inbound_message_with_a_bad_identifier_is_skipped(served: Served, params: dict[str, str]) -> None:
    """A bad number or message id is skipped and counted, and nothing is written for it."""
    texted(served)
    before, keys_before = refused("invalid_event"), set(served.redis.keys())
    response = signed_post(served, INBOUND, params)
    assert response.status_code == 200 and "<Response></Response>" in response.text
    assert refused("invalid_event") == before + 1
    assert set(served.redis.keys()) == keys_before
    assert consent.read_consent(served.redis, "c-1") == {}


@pytest.mark.parametrize("extra", [{"To": "{x}|y"}, {"MessageSid": "SM{1}"}])
def test_a_status_callback_with_a_bad_identifier_is_skipped(served: Served, extra: dict[str, str]) -> None:
    """A status callback whose number or message id fails its check records nothing."""
    remember_sms(served)
    remember_sms(served, "SM{1}")
    keys_before = set(served.redis.keys())
    assert signed_post(served, STATUS, {**status_params("delivered"), **extra}).status_code == 204
    assert set(served.redis.keys()) == keys_before
    assert served.intake.tracked == []


def test_a_bad_number_is_logged_by_field_name_never_by_value(served: Served, caplog: Any) -> None:
    """The warning names the field, never what the request put in it."""
    with caplog.at_level(logging.WARNING, logger="loyaloop.http.twilio"):
        signed_post(served, INBOUND, {"MessageSid": "SMx", "From": "+1 not-a-number 55", "Body": "STOP"})
    assert "From" in caplog.text
    assert "not-a-number" not in caplog.text
