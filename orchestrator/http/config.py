"""What the HTTP front door needs to know that journeys' ``settings.yaml`` must not: keys and limits.

Everything here comes from the environment because it is either a secret (API keys, the Twilio
auth token) or an ops decision (rates, sizes).  It is read once at start-up and refused loudly when
wrong, so a worker never serves half-configured.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

from orchestrator.errors import ConfigurationError
from orchestrator.http.auth import ApiKey, parse_api_keys

#: Defaults documented in docs/http.md.
DEFAULT_MAX_BODY = 64 * 1024
DEFAULT_MAX_BATCH_BODY = 1024 * 1024
DEFAULT_MAX_BATCH_ITEMS = 500
DEFAULT_RATE = 1000.0
DEFAULT_BURST = 2000
DEFAULT_WEBHOOK_TOLERANCE = 300
#: SendGrid posts batches of events well under 1 MiB (it flushes at 768 KB); Twilio posts small forms.
DEFAULT_SENDGRID_MAX_BODY = 1024 * 1024
DEFAULT_TWILIO_MAX_BODY = 64 * 1024
DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_BODY_TIMEOUT = 30.0
DEFAULT_MAX_CONNECTIONS = 1000
DEFAULT_HELP_TEXT = "Reply STOP to unsubscribe, START to subscribe again."
DEFAULT_REDIS_TIMEOUT = 0.5
DEFAULT_AUTH_FAILURES = 20


@dataclass(frozen=True)
class HttpConfig:
    """Keys, limits and provider secrets for one HTTP worker."""

    api_keys: tuple[ApiKey, ...] = ()
    #: Events per second per API key (a batch costs one per item), shared by all workers.
    rate: float = DEFAULT_RATE
    #: Events a key may send at once above the steady rate; at least the batch size.
    burst: int = DEFAULT_BURST
    max_body: int = DEFAULT_MAX_BODY
    max_batch_body: int = DEFAULT_MAX_BATCH_BODY
    max_batch_items: int = DEFAULT_MAX_BATCH_ITEMS
    #: A track timestamp may be at most this far ahead of the server clock (clock skew).
    max_future_seconds: int = 3600
    sendgrid_public_key: ec.EllipticCurvePublicKey | None = None
    twilio_auth_token: str | None = field(default=None, repr=False)
    webhook_tolerance: int = DEFAULT_WEBHOOK_TOLERANCE
    #: Largest webhook bodies, bytes; checked before any byte is read (the signature needs the whole body).
    sendgrid_max_body: int = DEFAULT_SENDGRID_MAX_BODY
    twilio_max_body: int = DEFAULT_TWILIO_MAX_BODY
    sms_help_text: str = DEFAULT_HELP_TEXT
    #: Seconds a connection may take to send its request headers, then its body.
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    #: Open connections per server process; past it the oldest one still sending headers is closed.
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    #: Seconds a Redis connect, read or write may take before the request is answered 503.
    redis_timeout: float = DEFAULT_REDIS_TIMEOUT
    #: Failed authentications a client address may make in a minute before it is refused with 429.
    auth_failures: int = DEFAULT_AUTH_FAILURES

    def __post_init__(self) -> None:
        if self.burst < self.max_batch_items:
            raise ConfigurationError(
                f"LOYALOOP_API_BURST={self.burst!r} is smaller than the batch size {self.max_batch_items!r}; "
                "a full batch could never pass the rate limit (raise the burst or lower LOYALOOP_API_MAX_BATCH)"
            )
        if min(self.header_timeout, self.body_timeout) <= 0 or self.max_connections < 1:
            raise ConfigurationError(
                "LOYALOOP_HTTP_HEADER_TIMEOUT and LOYALOOP_HTTP_BODY_TIMEOUT must be positive seconds and "
                f"LOYALOOP_HTTP_MAX_CONNECTIONS at least 1 (got {self.header_timeout!r}, {self.body_timeout!r}, "
                f"{self.max_connections!r})"
            )
        if min(self.sendgrid_max_body, self.twilio_max_body) < 1:
            raise ConfigurationError(
                "LOYALOOP_SENDGRID_MAX_BODY and LOYALOOP_TWILIO_MAX_BODY must be positive numbers of bytes "
                f"(got {self.sendgrid_max_body!r}, {self.twilio_max_body!r})"
            )
        if self.rate <= 0:
            raise ConfigurationError(f"LOYALOOP_API_RATE={self.rate!r} must be a positive number of events/s")
        if not 0 < self.redis_timeout <= 60:
            raise ConfigurationError(
                f"LOYALOOP_REDIS_TIMEOUT={self.redis_timeout!r} must be a number of seconds above 0 and at most 60 "
                "(a Redis that takes longer is treated as unreachable: requests get 503)"
            )
        if self.auth_failures < 1:
            raise ConfigurationError(
                f"LOYALOOP_AUTH_FAILURES={self.auth_failures!r} must be at least 1 failed authentication a minute"
            )


def load_sendgrid_key(value: str) -> ec.EllipticCurvePublicKey:
    """The verification key SendGrid shows in its settings: base64 of a DER SubjectPublicKeyInfo."""
    try:
        key = load_der_public_key(base64.b64decode(value.strip(), validate=True))
    except (ValueError, binascii.Error) as exc:
        raise ConfigurationError(
            "SENDGRID_WEBHOOK_PUBLIC_KEY is not a base64 DER public key; copy the 'Verification Key' "
            "from SendGrid's Mail Settings > Event Webhook page"
        ) from exc
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ConfigurationError("SENDGRID_WEBHOOK_PUBLIC_KEY is not an ECDSA key (expected P-256)")
    return key


def _number(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigurationError(f"{name}={raw!r} is not a number") from exc


def load_http_config(env: Mapping[str, str] | None = None) -> HttpConfig:
    """Read the HTTP configuration from the environment (see docs/http.md for every variable)."""
    environ = os.environ if env is None else env
    public_key = environ.get("SENDGRID_WEBHOOK_PUBLIC_KEY")
    return HttpConfig(
        api_keys=parse_api_keys(environ.get("LOYALOOP_API_KEYS", "")),
        rate=_number(environ, "LOYALOOP_API_RATE", DEFAULT_RATE),
        burst=int(_number(environ, "LOYALOOP_API_BURST", DEFAULT_BURST)),
        max_body=int(_number(environ, "LOYALOOP_API_MAX_BODY", DEFAULT_MAX_BODY)),
        max_batch_body=int(_number(environ, "LOYALOOP_API_MAX_BATCH_BODY", DEFAULT_MAX_BATCH_BODY)),
        max_batch_items=int(_number(environ, "LOYALOOP_API_MAX_BATCH", DEFAULT_MAX_BATCH_ITEMS)),
        sendgrid_public_key=load_sendgrid_key(public_key) if public_key else None,
        twilio_auth_token=environ.get("TWILIO_AUTH_TOKEN") or None,
        webhook_tolerance=int(_number(environ, "LOYALOOP_WEBHOOK_TOLERANCE", DEFAULT_WEBHOOK_TOLERANCE)),
        sendgrid_max_body=int(_number(environ, "LOYALOOP_SENDGRID_MAX_BODY", DEFAULT_SENDGRID_MAX_BODY)),
        twilio_max_body=int(_number(environ, "LOYALOOP_TWILIO_MAX_BODY", DEFAULT_TWILIO_MAX_BODY)),
        sms_help_text=environ.get("LOYALOOP_SMS_HELP_TEXT") or DEFAULT_HELP_TEXT,
        header_timeout=_number(environ, "LOYALOOP_HTTP_HEADER_TIMEOUT", DEFAULT_HEADER_TIMEOUT),
        body_timeout=_number(environ, "LOYALOOP_HTTP_BODY_TIMEOUT", DEFAULT_BODY_TIMEOUT),
        max_connections=int(_number(environ, "LOYALOOP_HTTP_MAX_CONNECTIONS", DEFAULT_MAX_CONNECTIONS)),
        redis_timeout=_number(environ, "LOYALOOP_REDIS_TIMEOUT", DEFAULT_REDIS_TIMEOUT),
        auth_failures=int(_number(environ, "LOYALOOP_AUTH_FAILURES", DEFAULT_AUTH_FAILURES)),
    )
