"""The Twilio SMS channel: E.164 checks, segment counting, request shape and failure mapping."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from channels import sms as sms_channel
from channels.outbox import OutboxChannel
from channels.sms import TwilioConfig, TwilioSms, e164, sms_segments
from orchestrator.errors import ConfigurationError, PermanentError, TransientError
from orchestrator.settings import Settings
from tests.channels import factories
from tests.channels.loopback import LoopbackServer, Reply

SID = "AC" + "0123456789abcdef" * 2
TOKEN = "twilio-token-never-logged"
SERVICE = "MG" + "fedcba9876543210" * 2
CREATED = {"sid": "SM" + "1" * 32, "status": "queued", "num_segments": "1"}


def channel(url: str, **changes: object) -> TwilioSms:
    values: dict[str, object] = {
        "account_sid": SID,
        "auth_token": TOKEN,
        "from_number": "+3197010254321",
        "base_url": url,
        "timeout": 2.0,
    }
    values.update(changes)
    return TwilioSms(TwilioConfig(**values))  # type: ignore[arg-type]


def form(loopback: LoopbackServer) -> dict[str, list[str]]:
    return parse_qs(loopback.requests[-1].body.decode())


# --- segments ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "count", "encoding"),
    [
        ("", 0, "GSM-7"),
        ("a" * 160, 1, "GSM-7"),
        ("a" * 161, 2, "GSM-7"),
        ("a" * 306, 2, "GSM-7"),
        ("a" * 307, 3, "GSM-7"),
        ("€" * 80, 1, "GSM-7"),  # each € costs two septets: exactly 160
        ("€" * 81, 2, "GSM-7"),
        ("a" * 152 + "€" + "a" * 10, 2, "GSM-7"),  # the escape pair is not split across parts
        ("é" * 160, 1, "GSM-7"),  # é is in the GSM basic table
        ("ç" * 70, 1, "UCS-2"),  # ç (lower case) is not
        ("ç" * 71, 2, "UCS-2"),
        ("🎉" * 35, 1, "UCS-2"),  # an emoji is two UTF-16 units
        ("🎉" * 36, 2, "UCS-2"),
        ("a" * 66 + "🎉" + "a" * 66, 3, "UCS-2"),  # 134 units, but a surrogate pair is never split
    ],
)
def test_segment_count_follows_gsm7_and_ucs2_rules(text: str, count: int, encoding: str) -> None:
    """160/153 septets for GSM-7 (extension characters cost two), 70/67 UTF-16 units for UCS-2."""
    segments = sms_segments(text)
    assert (segments.count, segments.encoding) == (count, encoding)


# --- configuration -----------------------------------------------------------------------------
def test_no_credentials_means_outbox_under_the_sms_name(tmp_path: Path) -> None:
    """Without a Twilio account, `send: sms` goes to the outbox."""
    chosen = sms_channel.make_channel(Settings(outbox_path=tmp_path / "o.jsonl"), env={"TWILIO_ACCOUNT_SID": SID})
    assert isinstance(chosen, OutboxChannel)
    assert (chosen.name, chosen.address_field, chosen.consent_key) == ("sms", "phone", "sms")


def test_credentials_mean_twilio(tmp_path: Path) -> None:
    """With an account and a sender the real provider is used; the token stays out of reprs."""
    env = {
        "TWILIO_ACCOUNT_SID": SID,
        "TWILIO_AUTH_TOKEN": TOKEN,
        "TWILIO_MESSAGING_SERVICE_SID": SERVICE,
        "TWILIO_STATUS_CALLBACK_URL": "https://brand.example/twilio/status",
        "TWILIO_API_BASE_URL": "http://127.0.0.1:9/",
    }
    chosen = sms_channel.make_channel(Settings(outbox_path=tmp_path / "o.jsonl"), env=env)
    assert isinstance(chosen, TwilioSms)
    assert chosen.config.base_url == "http://127.0.0.1:9"
    assert chosen.client.api.base_url == "http://127.0.0.1:9"
    assert TOKEN not in repr(chosen.config)


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"TWILIO_ACCOUNT_SID": SID, "TWILIO_AUTH_TOKEN": TOKEN}, "TWILIO_FROM_NUMBER"),
        ({"TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": TOKEN, "TWILIO_FROM_NUMBER": "+1"}, "TWILIO_ACCOUNT_SID"),
        (
            {"TWILIO_ACCOUNT_SID": SID, "TWILIO_AUTH_TOKEN": TOKEN, "TWILIO_MESSAGING_SERVICE_SID": "MGx"},
            "TWILIO_MESSAGING_SERVICE_SID",
        ),
    ],
)
def test_half_configured_twilio_refuses_to_start(env: dict[str, str], needle: str) -> None:
    """Missing sender or malformed SIDs stop the worker at start-up, naming the variable."""
    with pytest.raises(ConfigurationError, match=needle):
        TwilioConfig.from_env(env)


# --- sending -----------------------------------------------------------------------------------
def test_e164_normalises_valid_numbers() -> None:
    """A valid international number is passed on in strict E.164."""
    assert e164("+31 6 1234 5678") == "+31612345678"


@pytest.mark.parametrize("number", ["0612345678", "+3161234", "not a number", "+999123456789"])
def test_invalid_numbers_are_refused_without_calling_twilio(loopback: LoopbackServer, number: str) -> None:
    """Invalid or non-E.164 numbers fail permanently (and drop the address) before any API call."""
    with pytest.raises(PermanentError) as caught:
        channel(loopback.url).send(factories.sms(to=number))
    assert caught.value.remove_address and caught.value.code == "invalid_e164"
    assert number not in str(caught.value)
    assert loopback.requests == []


def test_request_with_sender_number_and_status_callback(loopback: LoopbackServer) -> None:
    """The form carries To, Body, From and StatusCallback; the receipt has the SID and the segment count."""
    loopback.queue(Reply(201, CREATED))
    receipt = channel(loopback.url, status_callback="https://brand.example/twilio/status").send(
        factories.sms(body="🎉" * 36)
    )
    seen = loopback.requests[0]
    assert seen.path == f"/2010-04-01/Accounts/{SID}/Messages.json"
    assert seen.headers["Authorization"].startswith("Basic ")
    assert form(loopback) == {
        "To": ["+31612345678"],
        "Body": ["🎉" * 36],
        "From": ["+3197010254321"],
        "StatusCallback": ["https://brand.example/twilio/status"],
    }
    assert receipt.provider_message_id == CREATED["sid"]
    assert receipt.details == {"segments": 2, "encoding": "UCS-2", "status": "queued"}


def test_messaging_service_replaces_the_sender_number(loopback: LoopbackServer) -> None:
    """With a Messaging Service SID, Twilio picks the sender: no From is sent."""
    loopback.queue(Reply(201, CREATED))
    channel(loopback.url, messaging_service_sid=SERVICE).send(factories.sms())
    sent = form(loopback)
    assert sent["MessagingServiceSid"] == [SERVICE] and "From" not in sent


@pytest.mark.parametrize(
    ("code", "suppress", "withdraw", "remove"),
    [(21211, True, False, True), (21610, False, True, False), (21614, False, False, True)],
)
def test_twilio_error_codes_map_to_permanent_outcomes(
    loopback: LoopbackServer, code: int, suppress: bool, withdraw: bool, remove: bool
) -> None:
    """21211 suppresses and drops the number, 21610 (STOP) withdraws SMS consent, 21614 drops the number."""
    message = f"The 'To' number +31612345678 is not valid (code {code})"
    loopback.queue(Reply(400, {"code": code, "message": message, "status": 400}))
    with pytest.raises(PermanentError) as caught:
        channel(loopback.url).send(factories.sms())
    error = caught.value
    assert (error.suppress, error.withdraw_consent, error.remove_address, error.code) == (
        suppress,
        withdraw,
        remove,
        str(code),
    )
    assert "+31612345678" not in str(error)


def test_other_client_errors_are_permanent_with_their_code(loopback: LoopbackServer) -> None:
    """Any other 4xx is not retried and keeps Twilio's code for the record."""
    loopback.queue(Reply(400, {"code": 21408, "message": "Permission to send to this region", "status": 400}))
    with pytest.raises(PermanentError) as caught:
        channel(loopback.url).send(factories.sms())
    assert caught.value.code == "21408"


def test_429_honours_retry_after(loopback: LoopbackServer) -> None:
    """Twilio's 429 is transient with its Retry-After, read from the response the SDK does not expose."""
    loopback.queue(Reply(429, {"code": 20429, "message": "Too Many Requests", "status": 429}, {"Retry-After": "3"}))
    with pytest.raises(TransientError) as caught:
        channel(loopback.url).send(factories.sms())
    assert caught.value.retry_after == 3


def test_server_error_is_transient(loopback: LoopbackServer) -> None:
    """5xx is retried later."""
    loopback.queue(Reply(503, {"code": 20500, "message": "Service unavailable", "status": 503}))
    with pytest.raises(TransientError, match="503"):
        channel(loopback.url).send(factories.sms())


def test_timeout_and_refused_connection_are_transient(loopback: LoopbackServer) -> None:
    """A slow or absent API is transient, within the explicit timeout."""
    loopback.queue(Reply(201, CREATED, delay=1.5))
    started = time.monotonic()
    with pytest.raises(TransientError, match="unreachable"):
        channel(loopback.url, timeout=0.3).send(factories.sms())
    assert time.monotonic() - started < 1.4
    with pytest.raises(TransientError, match="unreachable"):
        channel("http://127.0.0.1:9").send(factories.sms())


def test_nothing_personal_or_secret_is_logged(loopback: LoopbackServer, caplog: pytest.LogCaptureFixture) -> None:
    """Twilio's client logs request bodies; the channel silences it, so no number or token is logged."""
    loopback.queue(Reply(201, CREATED))
    caplog.set_level(logging.DEBUG)
    channel(loopback.url).send(factories.sms())
    assert "31612345678" not in caplog.text and TOKEN not in caplog.text


@pytest.mark.parametrize(("body", "code"), [("x" * 1601, "body_too_long"), ("  ", "empty_body")])
def test_bodies_twilio_would_refuse_fail_before_calling(loopback: LoopbackServer, body: str, code: str) -> None:
    """Over 1600 characters (Twilio 21617) or empty: permanent, and Twilio is never called."""
    with pytest.raises(PermanentError) as caught:
        channel(loopback.url).send(factories.sms(body=body))
    assert caught.value.code == code
    assert loopback.requests == []
