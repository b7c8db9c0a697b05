"""The built-in ``webhook`` action kind: an HTTPS POST of the step's JSON body to the shop.

Every request carries what the shop needs to trust it and to apply it once:

- ``Idempotency-Key``: the run and step, the same on every retry and worker;
- ``Loyaloop-Signature: t=<unix seconds>,v1=<hex>``: HMAC-SHA256 under the endpoint's secret of
  ``<t>.<raw body>``, so the receiver checks origin and freshness (refuse a ``t`` more than five
  minutes away) the way Loyaloop checks SendGrid's and Twilio's webhooks (docs/actions.md shows
  the receiving side, and ``orchestrator/cli/reference_receiver.py`` is the reference receiver).

Timeouts, connection failures, ``429`` and ``5xx`` are transient (retried with back-off,
honouring ``Retry-After``); any other ``4xx`` is permanent, recorded with its status only (a body
may hold personal data).  The URL and secret come from the environment variables the endpoint
names; plain ``http://`` is allowed only to a loopback host.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import os
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import requests

from orchestrator.errors import ConfigurationError, PermanentError, TransientError
from orchestrator.hookspecs import hookimpl
from orchestrator.message import ActionCall, ActionKind, ActionReply
from orchestrator.settings import Settings

#: Shortest signing secret accepted (bytes of text).
MIN_SECRET = 32
SIGNATURE_HEADER = "Loyaloop-Signature"


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The signature header's value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    return float(value) if value.isdigit() else None


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Webhook:
    """POSTs to the endpoint's URL; configured per call from the endpoint's settings."""

    name = "webhook"

    def __init__(self, env: Mapping[str, str] | None = None, clock: Callable[[], float] = time.time) -> None:
        self._env = os.environ if env is None else env
        self._clock = clock
        self._session = requests.Session()

    def target(self, config: dict[str, Any]) -> tuple[str, bytes]:
        """The endpoint's URL and secret from the environment, checked (a start-up check calls this)."""
        url_env, secret_env = config.get("url_env"), config.get("secret_env")
        if not url_env or not secret_env:
            raise ConfigurationError("a webhook endpoint needs url_env and secret_env (environment variable names)")
        url = self._env.get(url_env, "").strip()
        secret = self._env.get(secret_env, "")
        if not url:
            raise ConfigurationError(f"{url_env} is not set; export {url_env}=https://… (the endpoint's URL)")
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ConfigurationError(f"{url_env} is not an http(s) URL")
        if parts.scheme == "http" and not _loopback(parts.hostname):
            raise ConfigurationError(f"{url_env} must use https:// (plain http is allowed only to a loopback host)")
        if len(secret) < MIN_SECRET:
            raise ConfigurationError(f"{secret_env} must be set to a secret of at least {MIN_SECRET} characters")
        return url, secret.encode()

    def call(self, call: ActionCall, config: dict[str, Any]) -> ActionReply:
        url, secret = self.target(config)
        body = json.dumps(call.body, separators=(",", ":"), ensure_ascii=False).encode()
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": call.idempotency_key,
            SIGNATURE_HEADER: sign(secret, int(self._clock()), body),
            "User-Agent": "Loyaloop",
        }
        limit = int(config.get("max_response", 65_536))
        try:
            with self._session.post(
                url, data=body, headers=headers, timeout=float(config.get("timeout", 5.0)), stream=True
            ) as response:
                status = response.status_code
                if status == 429 or status >= 500:
                    raise TransientError(f"endpoint answered {status}", retry_after=_retry_after(response))
                if status >= 400:
                    raise PermanentError(f"endpoint refused the call with {status}")
                raw = response.raw.read(limit + 1, decode_content=True)
        except requests.RequestException as exc:
            raise TransientError(f"endpoint unreachable: {type(exc).__name__}") from None
        if len(raw) > limit:
            raise PermanentError(f"endpoint answered more than {limit} bytes")
        if not raw.strip():
            return ActionReply(status)
        try:
            return ActionReply(status, json.loads(raw))
        except (ValueError, UnicodeDecodeError):
            return ActionReply(status)  # a 2xx without JSON: done, with nothing to keep


@hookimpl
def loyaloop_register_action_kinds(register: Callable[[ActionKind], None], settings: Settings) -> None:
    register(Webhook())
