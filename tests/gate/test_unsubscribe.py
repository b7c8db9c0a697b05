"""Signed one-click unsubscribe: tokens that survive the round trip and refuse tampering, the
RFC 8058 headers, consent withdrawn in Redis, and ``loyaloop unsubscribe`` against a real Redis."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from pydantic import SecretStr

from orchestrator.cli import main
from orchestrator.errors import ConfigurationError, UnsubscribeTokenError
from orchestrator.gate.consent import read_consent, set_consent
from orchestrator.gate.unsubscribe import (
    make_token,
    read_token,
    secret_bytes,
    unsubscribe,
    unsubscribe_headers,
    unsubscribe_url,
)
from orchestrator.settings import Settings

SECRET = b"test-secret-0123456789abcdef"
ISSUED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_round_trip_keeps_every_claim() -> None:
    """What goes into a token comes back out; the address is never in it."""
    token = make_token(SECRET, "cust-42", "sms", "winback", issued_at=ISSUED)
    claim = read_token(SECRET, token)
    assert (claim.customer_id, claim.channel, claim.journey_id, claim.issued_at) == (
        "cust-42",
        "sms",
        "winback",
        ISSUED,
    )
    assert read_token(SECRET, make_token(SECRET, "cust-42")).channel == "email"
    assert read_token(SECRET, make_token(SECRET, "cust-42")).journey_id is None
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")


def _flip(text: str, position: int) -> str:
    replacement = "A" if text[position] != "A" else "B"
    return text[:position] + replacement + text[position + 1 :]


def test_tampered_tokens_are_refused() -> None:
    """Changing the payload, the signature, or signing with another secret breaks the token."""
    token = make_token(SECRET, "cust-42", "email", issued_at=ISSUED)
    payload, signature = token.split(".")
    forged_body = base64.urlsafe_b64encode(json.dumps({"v": 1, "c": "someone-else", "ch": "email", "t": 1}).encode())
    candidates = [
        _flip(token, 3),
        _flip(token, len(token) - 2),
        forged_body.decode().rstrip("=") + "." + signature,
        make_token(b"another-secret-0123456789", "cust-42"),
        payload + "." + signature[:-4],
    ]
    for bad in candidates:
        with pytest.raises(UnsubscribeTokenError, match="signature"):
            read_token(SECRET, bad)


@pytest.mark.parametrize("bad", ["", "nodot", "a.b.c", "é.é", "x" * 2000, "....", " . "])
def test_malformed_tokens_are_refused(bad: str) -> None:
    """Anything that is not ``payload.signature`` is refused before any crypto or parsing."""
    with pytest.raises(UnsubscribeTokenError, match=r"malformed|signature"):
        read_token(SECRET, bad)


def test_signed_garbage_is_malformed_not_a_crash() -> None:
    """A payload signed with our secret but not ours in shape (a bug elsewhere) is still refused cleanly."""
    import hashlib
    import hmac

    for body in (b"not json", b'{"v":1,"c":"","ch":"email","t":1}', b'{"v":2,"c":"a","ch":"email","t":1}', b"[]"):
        payload = base64.urlsafe_b64encode(body).decode().rstrip("=")
        signature = base64.urlsafe_b64encode(hmac.new(SECRET, payload.encode(), hashlib.sha256).digest())
        with pytest.raises(UnsubscribeTokenError, match="malformed"):
            read_token(SECRET, payload + "." + signature.decode().rstrip("="))


def test_max_age_is_optional() -> None:
    """Old links work by default (people click old newsletters); callers may set a limit."""
    old = make_token(SECRET, "cust-42", issued_at=datetime.now(UTC) - timedelta(days=400))
    assert read_token(SECRET, old).customer_id == "cust-42"
    with pytest.raises(UnsubscribeTokenError, match="expired"):
        read_token(SECRET, old, max_age=timedelta(days=365))


def test_headers_follow_rfc_8058() -> None:
    """List-Unsubscribe carries the https link (and an optional mailto); the POST header says one-click."""
    token = make_token(SECRET, "cust-42")
    headers = unsubscribe_headers("https://shop.example/", token, mailto="unsubscribe@shop.example")
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link, mail = headers["List-Unsubscribe"].split(", ")
    assert link == f"<https://shop.example/u/{token}>"
    assert mail.startswith("<mailto:unsubscribe@shop.example?subject=unsubscribe%20") and mail.endswith(">")
    assert unsubscribe_headers("https://shop.example", token) == {
        "List-Unsubscribe": f"<{unsubscribe_url('https://shop.example', token)}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def test_secret_comes_from_settings_or_a_clear_error() -> None:
    """No secret (or a short one) is a configuration error that says how to set one."""
    with pytest.raises(ConfigurationError, match="LOYALOOP_SECRET_KEY"):
        secret_bytes(Settings())
    with pytest.raises(ConfigurationError, match="at least 16"):
        secret_bytes(Settings(secret_key=SecretStr("short")))
    assert secret_bytes(Settings(secret_key=SecretStr(SECRET.decode()))) == SECRET


def test_unsubscribe_withdraws_consent_and_records_why(redis_client: redis.Redis) -> None:
    """The token's channel loses consent, other channels keep theirs; clicking twice is harmless."""
    set_consent(redis_client, "cust-42", "email", True, source="signup")
    set_consent(redis_client, "cust-42", "sms", True, source="signup")
    token = make_token(SECRET, "cust-42", "email", "newsletter")
    unsubscribe(redis_client, SECRET, token)
    unsubscribe(redis_client, SECRET, token)
    assert read_consent(redis_client, "cust-42") == {"email": False, "sms": True}
    sources = [entry[1]["source"] for entry in redis_client.xrange("lp:c:{cust-42}:consent-history")]
    assert sources == ["signup", "signup", "unsubscribe:newsletter", "unsubscribe:newsletter"]


# --- the command --------------------------------------------------------------------------------
@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, redis_url: str, tmp_path: Path) -> dict[str, str]:
    env = {"REDIS_URL": redis_url, "LOYALOOP_SECRET_KEY": SECRET.decode(), "LOYALOOP_JOURNEYS": str(tmp_path)}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def test_cli_unsubscribes(
    cli_env: dict[str, str], redis_client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    """``loyaloop unsubscribe TOKEN`` withdraws consent in the Redis named by REDIS_URL."""
    set_consent(redis_client, "cust-7", "email", True, source="signup")
    main(["unsubscribe", make_token(SECRET, "cust-7", "email", "welcome")])
    assert read_consent(redis_client, "cust-7") == {"email": False}
    assert capsys.readouterr().out.strip() == "unsubscribed customer cust-7 from email (link from journey welcome)"


def test_cli_refuses_a_tampered_token_in_one_line(
    cli_env: dict[str, str], redis_client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    """A forged token changes nothing and prints one ``error:`` line with exit code 1."""
    set_consent(redis_client, "cust-7", "email", True, source="signup")
    token = _flip(make_token(SECRET, "cust-7"), 2)
    with pytest.raises(SystemExit) as exited:
        main(["unsubscribe", token])
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: the unsubscribe token")
    assert read_consent(redis_client, "cust-7") == {"email": True}


def test_cli_without_secret_says_how_to_set_it(
    cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without LOYALOOP_SECRET_KEY the command explains how to set it instead of failing obscurely."""
    monkeypatch.delenv("LOYALOOP_SECRET_KEY")
    with pytest.raises(SystemExit) as exited:
        main(["unsubscribe", make_token(SECRET, "cust-7")])
    assert exited.value.code == 1
    assert "export LOYALOOP_SECRET_KEY=" in capsys.readouterr().err


def test_installed_command_end_to_end(cli_env: dict[str, str], redis_client: redis.Redis) -> None:
    """The real ``loyaloop`` entry point in a fresh process: success, then a refusal with exit 1."""
    set_consent(redis_client, "cust-9", "sms", True, source="signup")
    command = [sys.executable, "-c", "from orchestrator.cli import main; main()", "unsubscribe"]
    ok = subprocess.run([*command, make_token(SECRET, "cust-9", "sms")], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert read_consent(redis_client, "cust-9") == {"sms": False}
    bad = subprocess.run([*command, "garbage"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines() == [
        "error: the unsubscribe token is malformed (expected '<payload>.<signature>')"
    ]


def test_cli_without_redis_url_says_so(
    cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without REDIS_URL there is no Redis to withdraw consent in: a clear error, not a default guess."""
    monkeypatch.delenv("REDIS_URL")
    with pytest.raises(SystemExit) as exited:
        main(["unsubscribe", make_token(SECRET, "cust-7")])
    assert exited.value.code == 1
    assert capsys.readouterr().err.startswith("error: REDIS_URL is not set")
