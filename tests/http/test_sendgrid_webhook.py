"""POST /webhooks/sendgrid: ECDSA signatures from a real key pair; forged, stale and replayed requests refused."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from orchestrator.gate import consent
from orchestrator.http.sendgrid_webhook import verify_signature
from orchestrator.runtime.intake import check_event_id
from orchestrator.runtime.message_status import StatusBook
from orchestrator.store import keys
from tests.http.conftest import Served
from tests.http.helpers import SendGridSigner

PATH = "/webhooks/sendgrid"


def event(kind: str, **extra: Any) -> dict[str, Any]:
    """A SendGrid event as the Event Webhook posts it, with the custom_args our sends carry."""
    body: dict[str, Any] = {
        "email": "Ada@Example.com",
        "timestamp": 1_790_000_000,
        "event": kind,
        "sg_event_id": f"c2ctZXZlbnQ+{kind}/x==",
        "sg_message_id": "msg-1.filter",
        "customer_id": "c-1",
        "journey_id": "welcome",
        "run_id": "run-1",
        "step_id": "welcome",
        "idempotency_key": "run-1:welcome",
    }
    body.update(extra)
    return body


def post(served: Served, events: list[dict[str, Any]], *, signer: SendGridSigner | None = None, **kw: Any) -> Any:
    body = json.dumps(events).encode()
    headers = (signer or served.signer).headers(body, **kw)
    return served.client.post(PATH, content=body, headers=headers)


def test_delivered_open_click_update_the_status_and_become_journey_events(served: Served) -> None:
    """Engagement events move the status forward and are tracked as email.* events with a stable event id."""
    response = post(served, [event("delivered"), event("open"), event("click", url="https://shop.test/p/1")])
    assert response.status_code == 200
    assert response.json() == {"received": 3, "handled": 3}
    assert StatusBook(served.redis).status("run-1:welcome")["status"] == "clicked"
    names = [(c["customer_id"], c["event"]) for c in served.intake.tracked]
    assert names == [("c-1", "email.delivered"), ("c-1", "email.opened"), ("c-1", "email.clicked")]
    click = served.intake.tracked[2]
    assert click["properties"]["url"] == "https://shop.test/p/1"
    assert click["properties"]["step_id"] == "welcome" and click["properties"]["journey_id"] == "welcome"
    assert click["event_id"].startswith("sendgrid:")
    assert check_event_id(click["event_id"])  # SendGrid's base64 ids ('+', '/', '=') are not valid as they are
    assert len({c["event_id"] for c in served.intake.tracked}) == 3
    assert "email" not in click["properties"]


def test_an_open_reported_after_a_click_does_not_move_the_status_back(served: Served) -> None:
    """Providers report out of order; the status only moves forward."""
    assert post(served, [event("click"), event("open")]).status_code == 200
    status = StatusBook(served.redis).status("run-1:welcome")
    assert status["status"] == "clicked" and "opened_at" in status


def test_hard_bounce_suppresses_the_address_but_a_blocked_bounce_does_not(served: Served) -> None:
    """type=bounce is permanent (suppress); type=blocked is temporary (status only)."""
    assert post(served, [event("bounce", type="blocked", email="soft@example.com")]).status_code == 200
    assert not consent.is_suppressed(served.redis, "soft@example.com")
    assert post(served, [event("bounce", type="bounce")]).status_code == 200
    assert consent.suppression_reason(served.redis, "ada@example.com") == "sendgrid:bounce"
    assert consent.read_consent(served.redis, "c-1") == {}
    assert StatusBook(served.redis).status("run-1:welcome")["status"] == "bounced"
    assert served.intake.tracked == []


def test_spam_report_suppresses_and_withdraws_consent(served: Served) -> None:
    """A complaint stops every mail to the address and records the opt-out with its source."""
    assert post(served, [event("spamreport")]).status_code == 200
    assert consent.is_suppressed(served.redis, "ada@example.com")
    assert consent.read_consent(served.redis, "c-1") == {"email": False}
    assert consent.consent_history(served.redis, "c-1")[-1]["source"] == "sendgrid:spamreport"


@pytest.mark.parametrize("kind", ["unsubscribe", "group_unsubscribe"])
def test_unsubscribe_withdraws_consent_without_suppressing(served: Served, kind: str) -> None:
    """An unsubscribe is a marketing opt-out: receipts must still reach the address."""
    assert post(served, [event(kind)]).status_code == 200
    assert consent.read_consent(served.redis, "c-1") == {"email": False}
    assert not consent.is_suppressed(served.redis, "ada@example.com")


def test_dropped_updates_the_status_only(served: Served) -> None:
    """A drop is recorded on the message; it changes neither consent nor suppression."""
    assert post(served, [event("dropped", reason="Bounced Address")]).status_code == 200
    assert StatusBook(served.redis).status("run-1:welcome")["status"] == "dropped"
    assert served.redis.hlen(keys.suppressed()) == 0


def test_unknown_events_and_events_without_our_custom_args_are_tolerated(served: Served) -> None:
    """Events from mail we did not send through a journey are accepted (200) and change nothing."""
    foreign = {"email": "x@example.com", "event": "open", "timestamp": 1, "sg_event_id": "abc"}
    response = post(served, [foreign, event("new_future_event"), "junk"])  # type: ignore[list-item]
    assert response.status_code == 200
    assert response.json()["handled"] == 1
    assert served.intake.tracked == []


def assert_nothing_stored(served: Served) -> None:
    assert served.redis.keys("*") == []
    assert served.intake.tracked == []


def test_a_signature_from_another_key_is_refused(served: Served) -> None:
    """403 for a request signed by anyone but the configured key; nothing stored."""
    response = post(served, [event("spamreport")], signer=SendGridSigner())
    assert response.status_code == 403
    assert_nothing_stored(served)


def test_a_tampered_body_is_refused(served: Served) -> None:
    """The signature covers the raw body: changing one byte is refused."""
    body = json.dumps([event("delivered")]).encode()
    headers = served.signer.headers(body)
    response = served.client.post(PATH, content=body.replace(b"c-1", b"c-2"), headers=headers)
    assert response.status_code == 403
    assert_nothing_stored(served)


def test_a_changed_timestamp_is_refused(served: Served) -> None:
    """The signature covers the timestamp: moving it (to dodge staleness) breaks it."""
    body = json.dumps([event("delivered")]).encode()
    headers = served.signer.headers(body, timestamp=int(time.time()) - 60)
    headers["X-Twilio-Email-Event-Webhook-Timestamp"] = str(int(time.time()))
    assert served.client.post(PATH, content=body, headers=headers).status_code == 403
    assert_nothing_stored(served)


@pytest.mark.parametrize("age", [301, 3600, -400])
def test_stale_or_future_timestamps_are_refused_even_when_signed(served: Served, age: int) -> None:
    """A correctly signed request older (or newer) than 5 minutes is refused."""
    response = post(served, [event("delivered")], timestamp=int(time.time()) - age)
    assert response.status_code == 403
    assert_nothing_stored(served)


@pytest.mark.parametrize("drop", ["X-Twilio-Email-Event-Webhook-Signature", "X-Twilio-Email-Event-Webhook-Timestamp"])
def test_unsigned_requests_are_refused(served: Served, drop: str) -> None:
    """Missing either header is a 403."""
    body = json.dumps([event("delivered")]).encode()
    headers = served.signer.headers(body)
    del headers[drop]
    assert served.client.post(PATH, content=body, headers=headers).status_code == 403
    assert_nothing_stored(served)


def test_a_replayed_request_is_refused(served: Served) -> None:
    """The exact same signed request a second time is refused with 409 and handled once."""
    body = json.dumps([event("delivered")]).encode()
    headers = served.signer.headers(body)
    assert served.client.post(PATH, content=body, headers=headers).status_code == 200
    replay = served.client.post(PATH, content=body, headers=headers)
    assert replay.status_code == 409
    assert len(served.intake.tracked) == 1


def test_verify_signature_rejects_garbage() -> None:
    """Non-base64 or non-DER signatures are simply invalid, never an exception."""
    signer = SendGridSigner()
    key = signer.private_key.public_key()
    assert not verify_signature(key, "%%%", "1", b"[]")
    assert not verify_signature(key, "AAAA", "1", b"[]")
    good = signer.headers(b"[]", timestamp=1)
    assert verify_signature(key, good["X-Twilio-Email-Event-Webhook-Signature"], "1", b"[]")


def test_a_failed_delivery_can_be_retried_with_the_same_signed_request(served: Served) -> None:
    """If handling fails (500) the replay marker is dropped, so SendGrid's retry of the same payload is accepted."""
    body = json.dumps([event("click")]).encode()
    headers = served.signer.headers(body)
    served.intake.broken = True
    assert served.client.post(PATH, content=body, headers=headers).status_code == 500
    served.intake.broken = False
    assert served.client.post(PATH, content=body, headers=headers).status_code == 200
    assert [c["event"] for c in served.intake.tracked] == ["email.clicked"]


def test_an_oversized_body_is_refused(served: Served) -> None:
    """More than 8 MiB is refused with 413 even when signed headers are present."""
    body = b"[" + b" " * (8 * 1024 * 1024) + b"]"
    response = served.client.post(PATH, content=body, headers=served.signer.headers(b"[]"))
    assert response.status_code == 413
    assert_nothing_stored(served)
