"""The SendGrid e-mail channel: request shape, configuration, and how every failure is mapped."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from channels import email as email_channel
from channels.email import SendGridConfig, SendGridEmail
from channels.outbox import OutboxChannel
from orchestrator.errors import ConfigurationError, PermanentError, TransientError
from orchestrator.settings import Settings
from tests.channels import factories
from tests.channels.loopback import LoopbackServer, Reply

KEY = "SG.test-key-never-logged"


def channel(url: str, **changes: object) -> SendGridEmail:
    values: dict[str, object] = {
        "api_key": KEY,
        "from_email": "news@brand.example",
        "from_name": "Brand",
        "reply_to": "care@brand.example",
        "host": url,
        "asm_group_id": 42,
        "timeout": 2.0,
    }
    values.update(changes)
    return SendGridEmail(SendGridConfig(**values))  # type: ignore[arg-type]


def test_no_api_key_means_outbox_under_the_email_name(tmp_path: Path) -> None:
    """Without SENDGRID_API_KEY the journeys still send `email`, into the outbox."""
    chosen = email_channel.make_channel(Settings(outbox_path=tmp_path / "o.jsonl"), env={})
    assert isinstance(chosen, OutboxChannel)
    assert (chosen.name, chosen.address_field, chosen.consent_key) == ("email", "email", "email")


def test_api_key_means_sendgrid_with_the_environment_settings(tmp_path: Path) -> None:
    """With a key the real provider is used, configured from the environment only."""
    env = {
        "SENDGRID_API_KEY": KEY,
        "SENDGRID_API_HOST": "http://127.0.0.1:9/",
        "LOYALOOP_EMAIL_FROM": "Brand News <news@brand.example>",
        "LOYALOOP_EMAIL_REPLY_TO": "care@brand.example",
        "SENDGRID_ASM_GROUP_ID": "17",
        "SENDGRID_SANDBOX_MODE": "true",
    }
    chosen = email_channel.make_channel(Settings(outbox_path=tmp_path / "o.jsonl"), env=env)
    assert isinstance(chosen, SendGridEmail)
    config = chosen.config
    assert (config.from_email, config.from_name, config.host) == (
        "news@brand.example",
        "Brand News",
        "http://127.0.0.1:9",
    )
    assert (config.asm_group_id, config.sandbox, config.reply_to) == (17, True, "care@brand.example")
    assert KEY not in repr(config)


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"SENDGRID_API_KEY": KEY}, "LOYALOOP_EMAIL_FROM"),
        ({"SENDGRID_API_KEY": KEY, "LOYALOOP_EMAIL_FROM": "a@b.example", "SENDGRID_ASM_GROUP_ID": "x"}, "ASM"),
    ],
)
def test_half_configured_sendgrid_refuses_to_start(env: dict[str, str], needle: str) -> None:
    """A key without a sender (or a non-numeric ASM group) is a start-up error naming the variable."""
    with pytest.raises(ConfigurationError, match=needle):
        SendGridConfig.from_env(env)


def test_request_carries_everything_sendgrid_needs(loopback: LoopbackServer) -> None:
    """From/reply-to, subject, text + HTML, categories, custom args, headers and the ASM group reach SendGrid."""
    loopback.queue(Reply(202, b"", {"X-Message-Id": "sg-msg-1"}))
    message = factories.email(headers={"List-Unsubscribe": "<https://brand.example/u/t>"}, metadata={"utm": "x"})
    receipt = channel(loopback.url).send(message)
    assert (receipt.provider, receipt.provider_message_id, receipt.details["status"]) == ("sendgrid", "sg-msg-1", 202)
    [seen] = loopback.requests
    assert (seen.method, seen.path) == ("POST", "/v3/mail/send")
    assert seen.headers["Authorization"] == f"Bearer {KEY}"
    body = seen.json()
    assert body["from"] == {"email": "news@brand.example", "name": "Brand"}
    assert body["reply_to"] == {"email": "care@brand.example"}
    assert body["personalizations"][0]["to"] == [{"email": "jane@example.com"}]
    assert body["subject"] == "Welcome to Loyaloop"
    assert body["content"] == [
        {"type": "text/plain", "value": "Welcome aboard, Jane."},
        {"type": "text/html", "value": "<p>Welcome aboard, Jane.</p>"},
    ]
    assert sorted(body["categories"]) == ["welcome", "welcome_email"]
    assert "custom_args" not in body
    assert body["personalizations"][0]["custom_args"] == {
        "utm": "x",
        "journey_id": "welcome",
        "step_id": "welcome_email",
        "run_id": "run-1",
        "customer_id": "cust-1",
        "idempotency_key": "run-1:welcome_email",
    }
    assert body["headers"] == {"List-Unsubscribe": "<https://brand.example/u/t>"}
    assert body["asm"] == {"group_id": 42}
    assert "mail_settings" not in body


def test_transactional_mail_has_no_unsubscribe_group_and_sandbox_is_passed_on(loopback: LoopbackServer) -> None:
    """The ASM group is for marketing only; sandbox mode asks SendGrid to validate without delivering."""
    loopback.queue(Reply(202, b""))
    channel(loopback.url, sandbox=True).send(factories.email(category="transactional"))
    body = loopback.requests[0].json()
    assert "asm" not in body
    assert body["mail_settings"] == {"sandbox_mode": {"enable": True}}


def test_a_mail_without_subject_is_refused_before_any_call(loopback: LoopbackServer) -> None:
    """A template that produced no subject is a permanent error, and SendGrid is never called."""
    with pytest.raises(PermanentError, match="subject"):
        channel(loopback.url).send(factories.email(subject=None))
    assert loopback.requests == []


def test_429_honours_retry_after(loopback: LoopbackServer) -> None:
    """HTTP 429 is transient and carries the provider's Retry-After in seconds."""
    loopback.queue(Reply(429, {"errors": [{"message": "too many"}]}, {"Retry-After": "7"}))
    with pytest.raises(TransientError) as caught:
        channel(loopback.url).send(factories.email())
    assert caught.value.retry_after == 7


def test_429_falls_back_to_x_ratelimit_reset(loopback: LoopbackServer) -> None:
    """Without Retry-After, SendGrid's X-RateLimit-Reset (an epoch time) gives the wait."""
    loopback.queue(Reply(429, {"errors": []}, {"X-RateLimit-Reset": str(int(time.time()) + 30)}))
    with pytest.raises(TransientError) as caught:
        channel(loopback.url).send(factories.email())
    assert caught.value.retry_after is not None and 25 <= caught.value.retry_after <= 31


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_transient(loopback: LoopbackServer, status: int) -> None:
    """5xx answers are retried later."""
    loopback.queue(Reply(status, {"errors": [{"message": "boom"}]}))
    with pytest.raises(TransientError, match=str(status)):
        channel(loopback.url).send(factories.email())


def test_timeout_is_transient(loopback: LoopbackServer) -> None:
    """A provider slower than the explicit timeout is a transient failure, not a hang."""
    loopback.queue(Reply(202, b"", delay=1.5))
    started = time.monotonic()
    with pytest.raises(TransientError, match="unreachable"):
        channel(loopback.url, timeout=0.3).send(factories.email())
    assert time.monotonic() - started < 1.4


def test_connection_refused_is_transient() -> None:
    """Nothing listening is transient (the provider or the network may come back)."""
    with pytest.raises(TransientError):
        channel("http://127.0.0.1:9").send(factories.email())


def test_400_names_the_wrong_field_and_is_permanent(loopback: LoopbackServer) -> None:
    """SendGrid's 400 is never retried; the error names the field SendGrid complained about, not the address."""
    loopback.queue(
        Reply(
            400,
            {
                "errors": [
                    {
                        "field": "personalizations.0.to.0.email",
                        "message": "Does not contain a valid address: jane@example.com",
                    }
                ]
            },
        )
    )
    with pytest.raises(PermanentError) as caught:
        channel(loopback.url).send(factories.email())
    assert "personalizations.0.to.0.email" in str(caught.value)
    assert caught.value.code == "400:personalizations.0.to.0.email"
    assert "jane@example.com" not in str(caught.value)


def test_nothing_personal_or_secret_is_logged(loopback: LoopbackServer, caplog: pytest.LogCaptureFixture) -> None:
    """Even at DEBUG, neither the recipient's address nor the API key reaches the logs."""
    loopback.queue(Reply(202, b""), Reply(500, {"errors": [{"message": "jane@example.com broke"}]}))
    caplog.set_level(logging.DEBUG)
    sender = channel(loopback.url)
    sender.send(factories.email())
    with pytest.raises(TransientError) as caught:
        sender.send(factories.email())
    assert "jane@example.com" not in caplog.text + str(caught.value)
    assert KEY not in caplog.text


def test_reserved_headers_are_refused_before_any_call(loopback: LoopbackServer) -> None:
    """A plugin setting a header SendGrid reserves (Reply-To, From…) gets a permanent error naming it."""
    with pytest.raises(PermanentError, match="Reply-To") as caught:
        channel(loopback.url).send(factories.email(headers={"Reply-To": "x@brand.example", "X-Campaign": "w"}))
    assert caught.value.code == "reserved_header"
    assert loopback.requests == []
