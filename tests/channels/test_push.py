"""The FCM HTTP v1 push channel, against a fake FCM endpoint and a fake OAuth2 token endpoint on loopback.

The access token comes from google-auth's real service-account flow: a JWT signed with an RSA key
generated here, exchanged at the loopback token endpoint, which verifies the signature.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from channels import push as push_channel
from channels.outbox import OutboxChannel
from channels.push import MAX_PAYLOAD_BYTES, FcmConfig, FcmPush
from orchestrator.errors import ConfigurationError, PermanentError, TransientError
from orchestrator.settings import Settings
from tests.channels import factories
from tests.channels.fake_google import PROJECT, FakeGoogle
from tests.channels.loopback import Reply, Seen


def channel(google: FakeGoogle, **changes: Any) -> FcmPush:
    config = FcmConfig(project_id=PROJECT, service_account=google.service_account(), base_url=google.server.url)
    for key, value in changes.items():
        object.__setattr__(config, key, value)
    return FcmPush(config)


def test_no_credentials_means_outbox_under_the_push_name(tmp_path: Path) -> None:
    """Without a service account, `send: push` goes to the outbox."""
    chosen = push_channel.make_channel(Settings(outbox_path=tmp_path / "o.jsonl"), env={})
    assert isinstance(chosen, OutboxChannel)
    assert (chosen.name, chosen.address_field, chosen.consent_key) == ("push", "push_token", "push")


def test_credentials_from_a_file_or_the_environment(tmp_path: Path, google: FakeGoogle) -> None:
    """The key may come as JSON in FCM_SERVICE_ACCOUNT_JSON or as a file in GOOGLE_APPLICATION_CREDENTIALS."""
    info = google.service_account()
    key_file = tmp_path / "sa.json"
    key_file.write_text(json.dumps(info))
    settings = Settings(outbox_path=tmp_path / "o.jsonl")
    by_file = push_channel.make_channel(settings, env={"GOOGLE_APPLICATION_CREDENTIALS": str(key_file)})
    by_env = push_channel.make_channel(
        settings,
        env={"FCM_SERVICE_ACCOUNT_JSON": json.dumps(info), "FCM_PROJECT_ID": "other", "FCM_API_BASE_URL": "http://x/"},
    )
    assert isinstance(by_file, FcmPush) and isinstance(by_env, FcmPush)
    assert by_file.url == f"https://fcm.googleapis.com/v1/projects/{PROJECT}/messages:send"
    assert by_env.url == "http://x/v1/projects/other/messages:send"
    assert "PRIVATE KEY" not in repr(by_env.config)


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"FCM_SERVICE_ACCOUNT_JSON": "{not json"}, "not JSON"),
        ({"FCM_SERVICE_ACCOUNT_JSON": '{"client_email": "a"}'}, "private_key"),
        ({"GOOGLE_APPLICATION_CREDENTIALS": "/nonexistent/sa.json"}, "cannot be read"),
    ],
)
def test_unusable_credentials_refuse_to_start(env: dict[str, str], needle: str) -> None:
    """Broken credentials are a start-up error saying what is wrong."""
    with pytest.raises(ConfigurationError, match=needle):
        FcmConfig.from_env(env)


def test_send_has_the_v1_shape_and_a_real_bearer_token(google: FakeGoogle) -> None:
    """Token, notification, data, Android and APNs blocks reach FCM with the exchanged OAuth2 token."""
    receipt = channel(google).send(factories.push(category="transactional"))
    [sent] = google.sends()
    assert sent.headers["Authorization"] == "Bearer ya29.fake-1"
    message = sent.json()["message"]
    assert message["token"] == "device-token-abc123"
    assert message["notification"] == {"title": "Welcome", "body": "Your first reward is waiting"}
    assert message["data"] == {
        "screen": "rewards",
        "loyaloop_journey": "welcome",
        "loyaloop_step": "welcome_push",
        "loyaloop_run": "run-1",
    }
    assert message["android"] == {"priority": "HIGH", "collapse_key": "welcome.welcome_push"}
    assert message["apns"]["headers"] == {"apns-priority": "10", "apns-collapse-id": "welcome.welcome_push"}
    assert message["apns"]["payload"] == {"aps": {"sound": "default"}}
    assert receipt.provider == "fcm" and receipt.provider_message_id.startswith(f"projects/{PROJECT}/messages/")


def test_token_is_cached_until_refused(google: FakeGoogle) -> None:
    """One token exchange serves many sends; a 401 makes the next send exchange a fresh one."""
    sender = channel(google)
    sender.send(factories.push())
    sender.send(factories.push())
    assert google.issued == ["ya29.fake-1"]
    google.issued.append("ya29.rotated-elsewhere")  # the endpoint no longer accepts our token
    with pytest.raises(TransientError, match="401"):
        sender.send(factories.push())
    sender.send(factories.push())
    assert google.issued[-1] == "ya29.fake-3"
    assert google.sends()[-1].headers["Authorization"] == "Bearer ya29.fake-3"


def test_marketing_push_is_normal_priority(google: FakeGoogle) -> None:
    """Only transactional pushes wake a device (high priority)."""
    channel(google).send(factories.push(category="marketing"))
    message = google.sends()[0].json()["message"]
    assert message["android"]["priority"] == "NORMAL" and message["apns"]["headers"]["apns-priority"] == "5"


def test_payload_over_4kb_is_refused_before_sending(google: FakeGoogle) -> None:
    """FCM's 4096-byte payload limit is checked locally: permanent, and neither FCM nor the token endpoint is called."""
    big = factories.push(data={"blob": "x" * MAX_PAYLOAD_BYTES})
    with pytest.raises(PermanentError, match="4096") as caught:
        channel(google).send(big)
    assert caught.value.code == "payload_too_large"
    assert google.server.requests == []


def _fcm_error(status: int, code: str, headers: dict[str, str] | None = None) -> Callable[[Seen], Reply]:
    body = {
        "error": {
            "code": status,
            "message": "Requested entity was not found.",
            "status": "NOT_FOUND" if code == "UNREGISTERED" else code,
            "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}],
        }
    }
    return lambda seen: Reply(status, body, headers or {})


def test_unregistered_token_is_permanent_and_removed(google: FakeGoogle) -> None:
    """UNREGISTERED means the app was uninstalled: never retried, the token is dropped from the profile."""
    google.fcm_reply = _fcm_error(404, "UNREGISTERED")
    with pytest.raises(PermanentError) as caught:
        channel(google).send(factories.push())
    assert caught.value.remove_address and caught.value.code == "UNREGISTERED"


def test_invalid_argument_is_permanent(google: FakeGoogle) -> None:
    """INVALID_ARGUMENT is not retried and keeps the token (the message, not the device, was wrong)."""
    google.fcm_reply = _fcm_error(400, "INVALID_ARGUMENT")
    with pytest.raises(PermanentError) as caught:
        channel(google).send(factories.push())
    assert not caught.value.remove_address and caught.value.code == "INVALID_ARGUMENT"


def test_quota_exceeded_is_transient_with_retry_after(google: FakeGoogle) -> None:
    """FCM's 429 (QUOTA_EXCEEDED) is transient and honours Retry-After."""
    google.fcm_reply = _fcm_error(429, "QUOTA_EXCEEDED", {"Retry-After": "12"})
    with pytest.raises(TransientError) as caught:
        channel(google).send(factories.push())
    assert caught.value.retry_after == 12


@pytest.mark.parametrize(("status", "code"), [(500, "INTERNAL"), (503, "UNAVAILABLE")])
def test_server_errors_are_transient(google: FakeGoogle, status: int, code: str) -> None:
    """INTERNAL / UNAVAILABLE are retried later."""
    google.fcm_reply = _fcm_error(status, code)
    with pytest.raises(TransientError):
        channel(google).send(factories.push())


def test_timeout_is_transient(google: FakeGoogle) -> None:
    """A slow FCM is a transient failure within the explicit read timeout."""
    google.fcm_reply = lambda seen: Reply(200, {"name": "late"}, delay=1.5)
    sender = channel(google, read_timeout=0.3)
    started = time.monotonic()
    with pytest.raises(TransientError, match="unreachable"):
        sender.send(factories.push())
    assert time.monotonic() - started < 1.4


def test_unreachable_token_endpoint_is_transient(google: FakeGoogle) -> None:
    """If the token exchange cannot happen, the send is retried later rather than failed for good."""
    info = google.service_account()
    info["token_uri"] = "http://127.0.0.1:9/token"
    sender = FcmPush(FcmConfig(project_id=PROJECT, service_account=info, base_url=google.server.url))
    with pytest.raises(TransientError, match="token"):
        sender.send(factories.push())


def test_slow_token_endpoint_times_out_as_transient(google: FakeGoogle) -> None:
    """The token exchange uses the channel's own timeouts, not google-auth's two-minute default."""
    exchange = google.handle

    def slow(seen: Seen) -> Reply:
        reply = exchange(seen)
        if seen.path == "/token":
            reply.delay = 1.5
        return reply

    google.server.handler = slow
    sender = channel(google, read_timeout=0.3)
    started = time.monotonic()
    with pytest.raises(TransientError, match="token"):
        sender.send(factories.push())
    assert time.monotonic() - started < 1.4


def test_fake_fcm_refuses_what_fcm_refuses(google: FakeGoogle) -> None:
    """The fake checks the request shape: a reserved data key comes back INVALID_ARGUMENT, a permanent error."""
    with pytest.raises(PermanentError) as caught:
        channel(google).send(factories.push(data={"from": "x"}))
    assert caught.value.code == "INVALID_ARGUMENT" and not caught.value.remove_address
