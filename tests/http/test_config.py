"""HTTP configuration from the environment: refused loudly when wrong."""

from __future__ import annotations

import pytest

from orchestrator.errors import ConfigurationError
from orchestrator.http.config import load_http_config
from tests.http.helpers import SendGridSigner


def test_defaults_and_overrides() -> None:
    """Every variable is optional; numbers and keys are parsed."""
    signer = SendGridSigner()
    config = load_http_config(
        {
            "LOYALOOP_API_KEYS": "shop:0123456789abcdefXYZ",
            "LOYALOOP_API_RATE": "50",
            "LOYALOOP_API_BURST": "600",
            "SENDGRID_WEBHOOK_PUBLIC_KEY": signer.public_key_b64,
            "TWILIO_AUTH_TOKEN": "tok",
            "LOYALOOP_SENDGRID_MAX_BODY": "2048",
            "LOYALOOP_TWILIO_MAX_BODY": "1024",
        }
    )
    assert config.rate == 50 and config.burst == 600 and config.max_batch_items == 500
    assert (config.sendgrid_max_body, config.twilio_max_body) == (2048, 1024)
    assert config.sendgrid_public_key is not None
    assert "tok" not in repr(config)
    empty = load_http_config({})
    assert empty.api_keys == () and empty.sendgrid_public_key is None and empty.twilio_auth_token is None
    assert empty.redis_timeout == 0.5 and empty.auth_failures == 20
    tuned = load_http_config({"LOYALOOP_REDIS_TIMEOUT": "2", "LOYALOOP_AUTH_FAILURES": "5"})
    assert tuned.redis_timeout == 2.0 and tuned.auth_failures == 5


@pytest.mark.parametrize(
    ("env", "match"),
    [
        ({"SENDGRID_WEBHOOK_PUBLIC_KEY": "not base64!"}, "Verification Key"),
        ({"SENDGRID_WEBHOOK_PUBLIC_KEY": "AAAA"}, "Verification Key"),
        ({"LOYALOOP_API_RATE": "fast"}, "not a number"),
        ({"LOYALOOP_API_RATE": "0"}, "positive"),
        ({"LOYALOOP_API_BURST": "10"}, "batch size"),
        ({"LOYALOOP_SENDGRID_MAX_BODY": "0"}, "positive numbers of bytes"),
        ({"LOYALOOP_TWILIO_MAX_BODY": "big"}, "not a number"),
        ({"LOYALOOP_REDIS_TIMEOUT": "0"}, "LOYALOOP_REDIS_TIMEOUT=0.0 must be"),
        ({"LOYALOOP_REDIS_TIMEOUT": "nan"}, "LOYALOOP_REDIS_TIMEOUT=nan must be"),
        ({"LOYALOOP_AUTH_FAILURES": "0"}, "at least 1"),
    ],
)
def test_wrong_settings_are_refused(env: dict[str, str], match: str) -> None:
    """A bad value stops start-up with a message that says what to fix."""
    with pytest.raises(ConfigurationError, match=match):
        load_http_config(env)
