"""What every provider adapter shares: timeouts, Retry-After parsing, status mapping, redaction.

Kept apart so the three adapters map the same HTTP situation to the same error the same way:
429 and 5xx and network trouble are transient (retry later), other 4xx are permanent.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

from orchestrator.errors import DeliveryError, PermanentError, TransientError

#: Seconds to wait for a connection and for a response; every provider call passes these.
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 15.0
#: A single number for clients (SendGrid's urllib, Twilio's requests) that take one.
TIMEOUT = READ_TIMEOUT
#: When a 401/403 comes back the credentials are wrong or revoked: retry slowly, the fix is ops'.
AUTH_RETRY_AFTER = 300.0

_EMAIL = re.compile(r"[^\s@<>\"',;:()]+@[^\s@<>\"',;:()]+")
_PHONE = re.compile(r"\+?\d[\d\s().-]{6,}\d")


def redact(text: str) -> str:
    """Remove anything that looks like an e-mail address or a phone number (for errors and logs)."""
    return _PHONE.sub("<phone>", _EMAIL.sub("<email>", text))


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    if not headers:
        return None
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return str(value)
    return None


def retry_after(headers: Mapping[str, str] | None, *, now: float | None = None) -> float | None:
    """Seconds the provider asked us to wait: ``Retry-After`` (seconds or HTTP date), else ``X-RateLimit-Reset``.

    ``X-RateLimit-Reset`` is an epoch timestamp at SendGrid; small values are taken as a delay in
    seconds, which is what some gateways send.  Returns None when neither header is usable.
    """
    current = time.time() if now is None else now
    value = _header(headers, "Retry-After")
    if value:
        value = value.strip()
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - current)
        except (TypeError, ValueError, IndexError):
            pass
    reset = _header(headers, "X-RateLimit-Reset")
    if reset:
        try:
            number = float(reset.strip())
        except ValueError:
            return None
        return max(0.0, number - current) if number > 1_000_000_000 else max(0.0, number)
    return None


def error_for_status(
    provider: str, status: int, headers: Mapping[str, str] | None, detail: str = "", *, code: str | None = None
) -> DeliveryError:
    """The error a non-2xx answer means.  ``detail`` is redacted before it goes into the message."""
    suffix = f": {redact(detail)}" if detail else ""
    if status == 429:
        return TransientError(f"{provider} rate limit (HTTP 429){suffix}", retry_after=retry_after(headers))
    if status in (408, 425) or status >= 500:
        return TransientError(f"{provider} unavailable (HTTP {status}){suffix}", retry_after=retry_after(headers))
    if status in (401, 403):
        return TransientError(
            f"{provider} refused the credentials (HTTP {status}); check the API key in the environment{suffix}",
            retry_after=AUTH_RETRY_AFTER,
        )
    return PermanentError(f"{provider} rejected the message (HTTP {status}){suffix}", code=code or str(status))
