"""Signed one-click unsubscribe links (RFC 8058) and the act of unsubscribing.

A token is ``<payload>.<signature>``, both URL-safe base64 without padding: the payload is compact
JSON ``{"v":1,"c":customer id,"ch":channel,"j":journey id,"t":issued-at epoch seconds}`` and the
signature is HMAC-SHA256 over the encoded payload with ``settings.secret_key``.  The token carries
the customer id (not secret) but never an address, so a forwarded e-mail leaks nothing else.

Tokens do not expire: a customer may click an old newsletter's link years later and must still be
able to leave (``max_age`` exists for callers that want a limit).  Rotating the secret invalidates
every outstanding link, so rotate only with a grace period that accepts the old key too.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import redis

from orchestrator.errors import ConfigurationError, UnsubscribeTokenError
from orchestrator.gate.consent import set_consent
from orchestrator.settings import Settings

#: Below this many bytes a secret is guessable; refuse it instead of signing with it.
MIN_SECRET_BYTES = 16
#: Longest token accepted; anything longer is not ours.
MAX_TOKEN_LENGTH = 1024
SECRET_HINT = (
    "set LOYALOOP_SECRET_KEY to a long random value, e.g. "
    "export LOYALOOP_SECRET_KEY=$(python -c 'import secrets; print(secrets.token_urlsafe(32))')"
)


@dataclass(frozen=True)
class UnsubscribeClaim:
    """What a valid token says: who leaves which channel, from which journey's message, since when."""

    customer_id: str
    channel: str
    journey_id: str | None
    issued_at: datetime


def secret_bytes(settings: Settings) -> bytes:
    """The signing secret from the settings (``LOYALOOP_SECRET_KEY``); refuses a missing or short one."""
    if settings.secret_key is None or not settings.secret_key.get_secret_value():
        raise ConfigurationError(
            f"LOYALOOP_SECRET_KEY is not set, so unsubscribe links cannot be signed; {SECRET_HINT}"
        )
    secret = settings.secret_key.get_secret_value().encode("utf-8")
    if len(secret) < MIN_SECRET_BYTES:
        raise ConfigurationError(
            f"LOYALOOP_SECRET_KEY is {len(secret)} bytes; use at least {MIN_SECRET_BYTES}. {SECRET_HINT}"
        )
    return secret


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: bytes, payload: str) -> str:
    return _b64(hmac.new(secret, payload.encode("ascii"), hashlib.sha256).digest())


def make_token(
    secret: bytes,
    customer_id: str,
    channel: str = "email",
    journey_id: str | None = None,
    *,
    issued_at: datetime | None = None,
) -> str:
    """A signed token for the customer's unsubscribe link."""
    if not secret:
        raise ConfigurationError(f"cannot sign an unsubscribe token without a secret; {SECRET_HINT}")
    if not customer_id or not channel:
        raise ValueError("an unsubscribe token needs a customer id and a channel")
    moment = issued_at or datetime.now(UTC)
    body: dict[str, Any] = {"v": 1, "c": customer_id, "ch": channel, "t": int(moment.timestamp())}
    if journey_id:
        body["j"] = journey_id
    payload = _b64(json.dumps(body, separators=(",", ":"), sort_keys=True).encode("utf-8"))
    return f"{payload}.{_sign(secret, payload)}"


def read_token(secret: bytes, token: str, *, max_age: timedelta | None = None) -> UnsubscribeClaim:
    """The claim inside a token; :class:`UnsubscribeTokenError` if it is malformed, forged or too old.

    The signature is checked (in constant time) before the payload is parsed, so nothing an
    attacker writes is ever interpreted.
    """
    token = token.strip() if isinstance(token, str) else ""
    if not token or len(token) > MAX_TOKEN_LENGTH or token.count(".") != 1:
        raise UnsubscribeTokenError("the unsubscribe token is malformed (expected '<payload>.<signature>')")
    payload, signature = token.split(".")
    try:
        payload.encode("ascii")
        signature.encode("ascii")
    except UnicodeEncodeError as exc:
        raise UnsubscribeTokenError("the unsubscribe token is malformed (not URL-safe base64)") from exc
    if not hmac.compare_digest(_sign(secret, payload), signature):
        raise UnsubscribeTokenError(
            "the unsubscribe token's signature does not match; it was altered or not issued here"
        )
    try:
        body = json.loads(_unb64(payload))
        claim = UnsubscribeClaim(
            customer_id=_string(body["c"]),
            channel=_string(body["ch"]),
            journey_id=_string(body["j"]) if "j" in body else None,
            issued_at=datetime.fromtimestamp(int(body["t"]), UTC),
        )
        if body.get("v") != 1:
            raise ValueError(f"version {body.get('v')!r}")
    except (ValueError, KeyError, TypeError, binascii.Error, OverflowError, OSError) as exc:
        raise UnsubscribeTokenError(f"the unsubscribe token's content is malformed ({exc})") from exc
    if max_age is not None and datetime.now(UTC) - claim.issued_at > max_age:
        raise UnsubscribeTokenError("the unsubscribe token has expired; use the link in a newer message")
    return claim


def _string(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected a non-empty string, got {value!r}")
    return value


def unsubscribe_url(public_url: str, token: str) -> str:
    """The link to put in the message body (the same one the header points at)."""
    return f"{public_url.rstrip('/')}/u/{quote(token, safe='')}"


def unsubscribe_headers(public_url: str, token: str, *, mailto: str | None = None) -> dict[str, str]:
    """``List-Unsubscribe`` and ``List-Unsubscribe-Post`` for a marketing e-mail (RFC 2369, RFC 8058).

    Mailbox providers show their own "unsubscribe" button from these and POST
    ``List-Unsubscribe=One-Click`` to the URL.  RFC 8058 wants an https URL: set
    ``LOYALOOP_PUBLIC_URL`` to the public https address in production.  ``mailto`` adds a mail
    fallback for clients without one-click support.
    """
    links = [f"<{unsubscribe_url(public_url, token)}>"]
    if mailto:
        links.append(f"<mailto:{mailto}?subject={quote('unsubscribe ' + token, safe='')}>")
    return {"List-Unsubscribe": ", ".join(links), "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}


def unsubscribe(client: redis.Redis, secret: bytes, token: str) -> UnsubscribeClaim:
    """Withdraw the consent a token names; idempotent (clicking twice is fine).

    Only consent is withdrawn, not the address suppressed: the customer still gets receipts.
    """
    claim = read_token(secret, token)
    source = f"unsubscribe:{claim.journey_id}" if claim.journey_id else "unsubscribe"
    set_consent(client, claim.customer_id, claim.channel, False, source=source)
    return claim
