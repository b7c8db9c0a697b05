"""POST /webhooks/twilio/*: X-Twilio-Signature checked with Twilio's own RequestValidator algorithm."""

from __future__ import annotations

from typing import Any

import pytest
from twilio.request_validator import RequestValidator

from orchestrator.gate import consent
from orchestrator.http.twilio_webhook import compute_signature, keyword_kind
from orchestrator.runtime.message_status import StatusBook
from orchestrator.store import Store
from tests.http.conftest import Served
from tests.http.helpers import PUBLIC_URL, TWILIO_TOKEN

PHONE = "+31612345678"
STATUS = "/webhooks/twilio/status"
INBOUND = "/webhooks/twilio/inbound"


def signed_post(served: Served, path: str, params: dict[str, str], *, token: str = TWILIO_TOKEN) -> Any:
    """Post a form signed the way Twilio signs it (the SDK's validator computes the signature)."""
    signature = RequestValidator(token).compute_signature(PUBLIC_URL + path, params)
    return served.client.post(path, data=params, headers={"X-Twilio-Signature": signature})


def remember_sms(served: Served, sid: str = "SM1") -> None:
    """What the runtime records when Twilio accepts a message."""
    Store(served.redis).remember_provider_message(
        sid, customer_id="c-1", run_id="run-1", step_id="reminder", channel="sms", key="run-1:reminder"
    )


def status_params(status: str, sid: str = "SM1", **extra: str) -> dict[str, str]:
    return {"MessageSid": sid, "MessageStatus": status, "To": PHONE, "AccountSid": "AC1", **extra}


def test_our_signature_matches_the_sdk_for_repeated_and_special_parameters() -> None:
    """compute_signature follows Twilio's documented algorithm exactly (cross-checked with the SDK)."""
    params = {"Body": "stop please & thanks+", "From": PHONE, "A": "", "To": "+1 (555) 010"}
    url = "https://hooks.example.test/webhooks/twilio/inbound?x=1"
    ours = compute_signature(TWILIO_TOKEN, url, params.items())
    assert ours == RequestValidator(TWILIO_TOKEN).compute_signature(url, params)


def test_delivered_status_is_recorded_and_becomes_an_sms_delivered_event(served: Served) -> None:
    """The status is stored per message; delivered is tracked with an event id unique to the message."""
    remember_sms(served)
    assert signed_post(served, STATUS, status_params("sent")).status_code == 204
    assert signed_post(served, STATUS, status_params("delivered")).status_code == 204
    assert StatusBook(served.redis).status("run-1:reminder")["status"] == "delivered"
    [tracked] = served.intake.tracked
    assert (tracked["customer_id"], tracked["event"], tracked["event_id"]) == (
        "c-1",
        "sms.delivered",
        "twilio:SM1:delivered",
    )


def test_error_21610_withdraws_sms_consent(served: Served) -> None:
    """Twilio's 'recipient unsubscribed' error is an opt-out."""
    remember_sms(served)
    assert signed_post(served, STATUS, status_params("undelivered", ErrorCode="21610")).status_code == 204
    assert consent.read_consent(served.redis, "c-1") == {"sms": False}
    assert StatusBook(served.redis).status("run-1:reminder")["status"] == "undelivered"


def test_a_landline_is_suppressed(served: Served) -> None:
    """30006 (landline or unreachable carrier) can never receive SMS: the number is suppressed."""
    remember_sms(served)
    assert signed_post(served, STATUS, status_params("failed", ErrorCode="30006")).status_code == 204
    assert consent.suppression_reason(served.redis, PHONE) == "twilio:30006"


def test_status_for_an_unknown_message_is_accepted_and_ignored(served: Served) -> None:
    """Callbacks for messages we do not know are acknowledged (no Twilio retries) and change nothing."""
    assert signed_post(served, STATUS, status_params("delivered", sid="SMunknown")).status_code == 204
    assert served.intake.tracked == []


@pytest.mark.parametrize("word", ["STOP", "stop", "Unsubscribe", " cancel ", "END", "quit", "STOPALL"])
def test_stop_keywords_withdraw_consent_and_suppress_the_number(served: Served, word: str) -> None:
    """An inbound STOP from a number we texted withdraws that customer's SMS consent."""
    remember_sms(served)
    signed_post(served, STATUS, status_params("delivered"))
    response = signed_post(served, INBOUND, {"MessageSid": "SMin1", "From": PHONE, "Body": word})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    assert "<Response></Response>" in response.text
    assert consent.read_consent(served.redis, "c-1") == {"sms": False}
    assert consent.suppression_reason(served.redis, PHONE) == "twilio:stop"


@pytest.mark.parametrize("word", ["START", "yes", "Unstop"])
def test_start_keywords_grant_consent_and_lift_the_stop(served: Served, word: str) -> None:
    """START after STOP grants consent again and lifts the STOP suppression."""
    remember_sms(served)
    signed_post(served, STATUS, status_params("delivered"))
    signed_post(served, INBOUND, {"MessageSid": "SMin1", "From": PHONE, "Body": "STOP"})
    assert signed_post(served, INBOUND, {"MessageSid": "SMin2", "From": PHONE, "Body": word}).status_code == 200
    assert consent.read_consent(served.redis, "c-1") == {"sms": True}
    assert not consent.is_suppressed(served.redis, PHONE)


def test_start_does_not_lift_a_suppression_for_another_reason(served: Served) -> None:
    """A number suppressed because it is a landline stays suppressed whatever is texted from it."""
    consent.suppress(served.redis, PHONE, "twilio:30006")
    signed_post(served, INBOUND, {"MessageSid": "SMin2", "From": PHONE, "Body": "START"})
    assert consent.suppression_reason(served.redis, PHONE) == "twilio:30006"


def test_help_answers_with_twiml(served: Served) -> None:
    """HELP gets a short reply message and changes nothing."""
    response = signed_post(served, INBOUND, {"MessageSid": "SMin3", "From": PHONE, "Body": "help"})
    assert response.status_code == 200
    assert "<Message>Reply STOP to unsubscribe, START to subscribe again.</Message>" in response.text
    assert served.redis.keys("lp:c:*") == []


def test_a_replayed_start_cannot_undo_a_later_stop(served: Served) -> None:
    """Each inbound MessageSid is handled once: replaying an old START after a STOP changes nothing."""
    remember_sms(served)
    signed_post(served, STATUS, status_params("delivered"))
    start = {"MessageSid": "SMold", "From": PHONE, "Body": "START"}
    signed_post(served, INBOUND, start)
    signed_post(served, INBOUND, {"MessageSid": "SMnew", "From": PHONE, "Body": "STOP"})
    assert signed_post(served, INBOUND, start).status_code == 200
    assert consent.read_consent(served.redis, "c-1") == {"sms": False}


@pytest.mark.parametrize("path", [STATUS, INBOUND])
def test_forged_signatures_are_refused(served: Served, path: str) -> None:
    """Wrong token, missing header, signed for another URL or tampered parameters: 403, nothing stored."""
    params = {"MessageSid": "SMf", "From": PHONE, "Body": "STOP", "MessageStatus": "delivered", "To": PHONE}
    remember_sms(served, "SMf")
    before = set(served.redis.keys("*"))
    assert signed_post(served, path, params, token="not-the-token").status_code == 403
    assert served.client.post(path, data=params).status_code == 403
    other_url = RequestValidator(TWILIO_TOKEN).compute_signature("https://evil.test" + path, params)
    assert served.client.post(path, data=params, headers={"X-Twilio-Signature": other_url}).status_code == 403
    good = RequestValidator(TWILIO_TOKEN).compute_signature(PUBLIC_URL + path, params)
    tampered = {**params, "Body": "START", "MessageStatus": "failed"}
    assert served.client.post(path, data=tampered, headers={"X-Twilio-Signature": good}).status_code == 403
    assert set(served.redis.keys("*")) == before
    assert served.intake.tracked == []


@pytest.mark.parametrize(
    ("body", "kind"),
    [("STOP", "stop"), ("stop.", "stop"), ("Quit now please", "stop"), ("yes!", "start"), ("info", "help"),
     ("", "other"), ("I want to stop", "other")],
)  # fmt: skip
def test_keywords_are_the_first_word_only(body: str, kind: str) -> None:
    """Only the first word counts (as on Twilio), so a sentence that merely mentions stop changes nothing."""
    assert keyword_kind(body) == kind
