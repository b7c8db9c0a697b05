"""HTTP in, message out, provider feedback back in: the front door on the real runtime.

Real uvicorn, real Redis, a RedisBroker worked by real Dramatiq worker threads, the outbox channel
standing in for the provider, and SendGrid webhooks signed with a real ECDSA key.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from click.testing import CliRunner
from twilio.request_validator import RequestValidator

from orchestrator.cli.consent import unsubscribe
from orchestrator.gate import consent
from orchestrator.gate.unsubscribe import make_token
from orchestrator.http import create_app
from orchestrator.language.profile import Profile
from orchestrator.runtime.message_status import StatusBook
from tests.http.conftest import bearer, make_config
from tests.http.helpers import PUBLIC_URL, TWILIO_TOKEN, SendGridSigner, serve
from tests.runtime.harness import STATE_URL_VARIABLE, Harness, journey, running

WELCOME = journey(
    {
        "id": "welcome",
        "name": "Welcome",
        "trigger": {"event": "signup"},
        "steps": [
            {"id": "hello", "send": "email", "template": "hello"},
            {"id": "pause", "wait": "2d"},
            {"id": "tips", "send": "email", "template": "tips"},
        ],
    }
)
CLICKED = journey(
    {
        "id": "clicked",
        "name": "Thank clickers",
        "trigger": {"event": "signup"},
        "steps": [
            {"id": "hello", "send": "email", "template": "hello"},
            {"id": "await_click", "wait": {"event": "email.clicked", "timeout": "3d", "on_event": "thanks"}},
            {"id": "nudge", "send": "email", "template": "tips"},
            {"id": "end", "exit": "nudged"},
            {"id": "thanks", "send": "email", "template": "winback"},
        ],
    }
)


@contextmanager
def front_door(h: Harness) -> Iterator[tuple[httpx.Client, SendGridSigner]]:
    """The HTTP app over the harness's real intake and Redis, served by uvicorn."""
    signer = SendGridSigner()
    app = create_app(h.settings, h.api, h.client, config=make_config(signer))
    with serve(app) as base_url, httpx.Client(base_url=base_url, timeout=10) as client:
        yield client, signer


def sign_up(client: httpx.Client, customer_id: str) -> None:
    attributes = {"email": f"{customer_id}@example.com", "consent": {"email": True}, "timezone": "Europe/Amsterdam"}
    assert (
        client.post(
            "/v1/identify", json={"customer_id": customer_id, "attributes": attributes}, headers=bearer()
        ).status_code
        == 202
    )
    tracked = client.post(
        "/v1/track",
        json={"customer_id": customer_id, "event": "signup", "event_id": f"signup-{customer_id}"},
        headers=bearer(),
    )
    assert tracked.status_code == 202


def sendgrid_event(sent: dict[str, Any], kind: str, **extra: Any) -> dict[str, Any]:
    """What SendGrid reports for a message we sent: the custom_args our e-mail channel attaches."""
    return {
        "email": sent["to"],
        "timestamp": 1_790_000_000,
        "event": kind,
        "sg_event_id": base64.b64encode(f"{kind}>{sent['idempotency_key']}?".encode()).decode(),  # has '+', '/', '='
        "customer_id": sent["customer_id"],
        "run_id": sent["run_id"],
        "step_id": sent["step_id"],
        "idempotency_key": sent["idempotency_key"],
        **extra,
    }


def webhook(client: httpx.Client, signer: SendGridSigner, events: list[dict[str, Any]]) -> httpx.Response:
    body = json.dumps(events).encode()
    return client.post("/webhooks/sendgrid", content=body, headers=signer.headers(body))


def test_http_track_sends_and_a_bounce_webhook_suppresses_the_next_send(redis_url: str, tmp_path: Path) -> None:
    """signup over HTTP → welcome e-mail sent; SendGrid reports a hard bounce → the follow-up is never sent."""
    with running(redis_url, tmp_path, [WELCOME]) as h, front_door(h) as (client, signer):
        sign_up(client, "c1")
        h.settle()
        [hello] = h.outbox()
        assert (hello["customer_id"], hello["step_id"]) == ("c1", "hello")

        response = webhook(
            client, signer, [sendgrid_event(hello, "delivered"), sendgrid_event(hello, "bounce", type="bounce")]
        )
        assert response.status_code == 200
        assert consent.is_suppressed(h.client, "c1@example.com")
        assert StatusBook(h.client).status(hello["idempotency_key"])["status"] == "bounced"

        h.tick(days=2, minutes=1)
        assert [m["step_id"] for m in h.outbox()] == ["hello"]
        stats = h.stats("welcome")
        assert stats.get("tips:sent:email", 0) == 0 and stats["tips:suppressed:email"] == 1


def test_a_click_webhook_is_an_event_a_journey_can_wait_for(redis_url: str, tmp_path: Path) -> None:
    """SendGrid's click becomes email.clicked, which ends `wait: {event: email.clicked}` and takes its branch."""
    with running(redis_url, tmp_path, [CLICKED]) as h, front_door(h) as (client, signer):
        sign_up(client, "c2")
        h.settle()
        [hello] = h.outbox()
        assert webhook(client, signer, [sendgrid_event(hello, "click", url="https://shop.test/")]).status_code == 200
        h.settle()
        assert [m["step_id"] for m in h.outbox()] == ["hello", "thanks"]


def test_a_repeated_http_track_enrolls_once(redis_url: str, tmp_path: Path) -> None:
    """The same event id sent twice over HTTP is handled once by the runtime, and the repeat says duplicate."""
    with running(redis_url, tmp_path, [WELCOME]) as h, front_door(h) as (client, _):
        sign_up(client, "c3")
        h.settle()
        again = client.post(
            "/v1/track", json={"customer_id": "c3", "event": "signup", "event_id": "signup-c3"}, headers=bearer()
        )
        assert again.status_code == 202 and again.json()["duplicate"] is True
        h.settle()
        assert [m["step_id"] for m in h.outbox()] == ["hello"]


SMS = journey(
    {
        "id": "sms_welcome",
        "name": "SMS welcome",
        "trigger": {"event": "signup"},
        "steps": [
            {"id": "hello", "send": "sms", "template": "hello"},
            {"id": "await_delivery", "wait": {"event": "sms.delivered", "timeout": "1d", "on_event": "pause"}},
            {"id": "undelivered", "exit": "undelivered"},
            {"id": "pause", "wait": "2d"},
            {"id": "tips", "send": "sms", "template": "tips"},
        ],
    }
)
PHONE = "+31612345678"


def twilio_post(client: httpx.Client, path: str, params: dict[str, str]) -> httpx.Response:
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(f"{PUBLIC_URL}{path}", params)
    return client.post(path, data=params, headers={"X-Twilio-Signature": signature})


def test_twilio_delivery_moves_the_journey_and_an_inbound_stop_ends_sms(redis_url: str, tmp_path: Path) -> None:
    """Twilio's delivered callback becomes sms.delivered (the journey moves on); the customer's STOP reply
    withdraws SMS consent, so the follow-up text is never sent."""
    with running(redis_url, tmp_path, [SMS], settings={"public_url": PUBLIC_URL}) as h, front_door(h) as (client, _):
        attributes = {"phone": PHONE, "consent": {"sms": True}, "timezone": "Europe/Amsterdam"}
        assert (
            client.post(
                "/v1/identify", json={"customer_id": "c4", "attributes": attributes}, headers=bearer()
            ).status_code
            == 202
        )
        assert (
            client.post("/v1/track", json={"customer_id": "c4", "event": "signup"}, headers=bearer()).status_code == 202
        )
        h.settle()
        [hello] = h.outbox()
        assert (hello["channel"], hello["step_id"]) == ("sms", "hello")

        sid = hello["idempotency_key"]  # the outbox channel's provider message id
        status = {"MessageSid": sid, "MessageStatus": "delivered", "To": PHONE, "AccountSid": "AC1"}
        assert twilio_post(client, "/webhooks/twilio/status", status).status_code == 204
        h.settle()
        assert StatusBook(h.client).status(sid)["status"] == "delivered"

        stop = twilio_post(client, "/webhooks/twilio/inbound", {"MessageSid": "SMin", "From": PHONE, "Body": "Stop"})
        assert stop.status_code == 200
        assert consent.read_consent(h.client, "c4")["sms"] is False

        h.tick(days=2, minutes=1)
        assert [m["step_id"] for m in h.outbox()] == ["hello"]
        stats = h.stats("sms_welcome")
        assert stats["await_delivery:event"] == 1  # sms.delivered ended the wait (not the timeout)
        assert stats["tips:suppressed:sms"] == 1 and stats.get("tips:sent:sms", 0) == 0


def history(h: Harness, customer_id: str) -> list[tuple[str, str, str]]:
    return [(e["channel"], e["granted"], e["source"]) for e in consent.consent_history(h.client, customer_id)]


def test_every_door_that_changes_consent_leaves_a_history_entry(redis_url: str, tmp_path: Path) -> None:
    """Identify over HTTP, Twilio's 21610 status, STOP and START replies, SendGrid's unsubscribe, the
    unsubscribe page, ``loyaloop unsubscribe`` and a profile save each go through the one consent
    writer: every change is in the history with its door as the source, and the hash agrees."""
    with running(redis_url, tmp_path, [], settings={"public_url": PUBLIC_URL}) as h, front_door(h) as (client, signer):
        secret = h.settings.secret_key.get_secret_value().encode() if h.settings.secret_key else b""
        attributes = {"consent": {"email": True, "sms": True}}
        identify = {"customer_id": "door-identify", "attributes": attributes}
        assert client.post("/v1/identify", json=identify, headers=bearer()).status_code == 202

        h.runtime.store.remember_provider_message(
            "SM1", customer_id="door-twilio", run_id="run-1", step_id="hello", channel="sms", key="run-1:hello"
        )
        status = {"MessageSid": "SM1", "MessageStatus": "undelivered", "To": PHONE, "ErrorCode": "21610"}
        assert twilio_post(client, "/webhooks/twilio/status", status).status_code == 204
        for sid, word in (("SMin1", "START"), ("SMin2", "STOP")):
            reply = {"MessageSid": sid, "From": PHONE, "Body": word}
            assert twilio_post(client, "/webhooks/twilio/inbound", reply).status_code == 200

        sent = {"to": "sg@example.com", "customer_id": "door-sendgrid", "run_id": "run-2", "step_id": "hello"}
        sent["idempotency_key"] = "run-2:hello"
        assert webhook(client, signer, [sendgrid_event(sent, "unsubscribe")]).status_code == 200

        one_click = {"Content-Type": "application/x-www-form-urlencoded"}
        page = f"/u/{make_token(secret, 'door-page', 'email', 'welcome')}"
        assert client.post(page, content=b"List-Unsubscribe=One-Click", headers=one_click).status_code == 200

        env = {"REDIS_URL": redis_url, "LOYALOOP_SECRET_KEY": secret.decode(), "LOYALOOP_JOURNEYS": str(tmp_path)}
        if state_url := os.environ.get(STATE_URL_VARIABLE):  # the state on a cluster (test_on_cluster.py)
            env.update(REDIS_URL=state_url, LOYALOOP_BROKER_URL=redis_url)
        cli = CliRunner().invoke(unsubscribe, [make_token(secret, "door-cli", "sms", "welcome")], env=env)
        assert cli.exit_code == 0, cli.output

        h.runtime.store.save_profile(Profile(id="door-save", consent={"push": True}))

        expected = {
            "door-identify": [("email", "1", "identify"), ("sms", "1", "identify")],
            "door-twilio": [("sms", "0", "twilio:21610"), ("sms", "1", "twilio:start"), ("sms", "0", "twilio:stop")],
            "door-sendgrid": [("email", "0", "sendgrid:unsubscribe")],
            "door-page": [("email", "0", "unsubscribe:welcome")],
            "door-cli": [("sms", "0", "unsubscribe:welcome")],
            "door-save": [("push", "1", "profile")],
        }
        assert {customer_id: history(h, customer_id) for customer_id in expected} == expected
        for customer_id, entries in expected.items():
            last = {channel: granted == "1" for channel, granted, _source in entries}
            assert consent.read_consent(h.client, customer_id) == last
