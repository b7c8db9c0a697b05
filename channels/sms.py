"""SMS through Twilio's Messages API, using the official ``twilio`` SDK.

Without ``TWILIO_ACCOUNT_SID`` and ``TWILIO_AUTH_TOKEN`` the plugin registers an outbox-backed
``sms`` channel instead.

Environment: ``TWILIO_ACCOUNT_SID``, ``TWILIO_AUTH_TOKEN`` (secret), ``TWILIO_FROM_NUMBER`` or
``TWILIO_MESSAGING_SERVICE_SID`` (one is required; the service wins when both are set),
``TWILIO_STATUS_CALLBACK_URL`` (delivery receipts), ``TWILIO_API_BASE_URL`` (base URL override).

Numbers are checked as E.164 with ``phonenumbers`` before any call, so a malformed number costs
nothing and is reported the same way Twilio's 21211 would be.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import phonenumbers
import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from channels import outbox
from channels.http import TIMEOUT, error_for_status, redact
from orchestrator.errors import ConfigurationError, PermanentError, TransientError
from orchestrator.hookspecs import hookimpl
from orchestrator.message import Channel, Message, Receipt
from orchestrator.message import sms_segments as message_segments
from orchestrator.settings import Settings

PROVIDER = "twilio"
#: Twilio refuses longer bodies (error 21617); checked before calling.
MAX_BODY_CHARS = 1600


# --- segments --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Segments:
    """How a carrier splits a text: ``count`` parts in ``encoding`` (``GSM-7`` or ``UCS-2``)."""

    count: int
    encoding: str


def sms_segments(text: str) -> Segments:
    """Segments of ``text``, counted by :func:`orchestrator.message.sms_segments` (one rule for previews and sends)."""
    encoding, count = message_segments(text)
    return Segments(count=count, encoding=encoding)


# --- configuration ---------------------------------------------------------------------------
_ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
_SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")


@dataclass(frozen=True)
class TwilioConfig:
    """What the channel needs from the environment; the token never appears in a repr."""

    account_sid: str
    auth_token: str = field(repr=False)
    from_number: str | None = None
    messaging_service_sid: str | None = None
    status_callback: str | None = None
    base_url: str | None = None
    timeout: float = TIMEOUT

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TwilioConfig | None:
        """None when the account is not configured (the outbox is used); ConfigurationError when half set."""
        sid = env.get("TWILIO_ACCOUNT_SID", "").strip()
        token = env.get("TWILIO_AUTH_TOKEN", "").strip()
        if not sid or not token:
            return None
        if not _ACCOUNT_SID.match(sid):
            raise ConfigurationError(f"TWILIO_ACCOUNT_SID must look like AC followed by 32 hex digits, got {sid!r}")
        service = env.get("TWILIO_MESSAGING_SERVICE_SID", "").strip() or None
        sender = env.get("TWILIO_FROM_NUMBER", "").strip() or None
        if service is None and sender is None:
            raise ConfigurationError(
                "Twilio credentials are set but no sender: set TWILIO_MESSAGING_SERVICE_SID (MG…) "
                "or TWILIO_FROM_NUMBER (E.164, e.g. +3197010254321)"
            )
        if service is not None and not _SERVICE_SID.match(service):
            raise ConfigurationError(
                f"TWILIO_MESSAGING_SERVICE_SID must look like MG followed by 32 hex digits, got {service!r}"
            )
        return cls(
            account_sid=sid,
            auth_token=token,
            from_number=sender,
            messaging_service_sid=service,
            status_callback=env.get("TWILIO_STATUS_CALLBACK_URL") or None,
            base_url=(env.get("TWILIO_API_BASE_URL") or "").rstrip("/") or None,
        )


# --- the channel -----------------------------------------------------------------------------
_silent = logging.getLogger("loyaloop.twilio.requests")
_silent.disabled = True  # Twilio's client logs request bodies (phone numbers) at INFO.


class RecordingHttpClient(TwilioHttpClient):  # type: ignore[misc]
    """Twilio's HTTP client, remembering each thread's last response so a 429's Retry-After can be read.

    The SDK raises ``TwilioRestException`` without the response headers; this keeps them.
    """

    def __init__(self, timeout: float = TIMEOUT, **kwargs: Any) -> None:
        kwargs.setdefault("logger", _silent)
        super().__init__(timeout=timeout, **kwargs)
        self._local = threading.local()

    def request(self, *args: Any, **kwargs: Any) -> Response:
        self._local.response = None
        response = super().request(*args, **kwargs)
        self._local.response = response
        return response

    @property
    def thread_response(self) -> Response | None:
        return getattr(self._local, "response", None)


def e164(number: str) -> str:
    """``number`` in E.164, or PermanentError without calling anyone (the number is never quoted)."""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        parsed = None
    if parsed is None or not phonenumbers.is_valid_number(parsed):
        raise PermanentError(
            "the phone number is not a valid E.164 number (expected +<country><number>)",
            remove_address=True,
            code="invalid_e164",
        )
    formatted: str = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return formatted


class TwilioSms:
    """The ``sms`` channel on Twilio.  ``http_client`` may be injected (a ``TwilioHttpClient``)."""

    name = "sms"
    address_field = "phone"
    consent_key = "sms"

    def __init__(self, config: TwilioConfig, http_client: TwilioHttpClient | None = None) -> None:
        self.config = config
        self.http_client = http_client or RecordingHttpClient(timeout=config.timeout)
        self.client = Client(config.account_sid, config.auth_token, http_client=self.http_client)
        if config.base_url:
            self.client.api.base_url = config.base_url

    def send(self, message: Message) -> Receipt:
        to = e164(message.to)
        if len(message.body) > MAX_BODY_CHARS:
            raise PermanentError(
                f"the SMS is {len(message.body)} characters, Twilio allows {MAX_BODY_CHARS}; shorten the template",
                code="body_too_long",
            )
        if not message.body.strip():
            raise PermanentError("the SMS body is empty; check the template", code="empty_body")
        segments = sms_segments(message.body)
        params: dict[str, Any] = {"to": to, "body": message.body}
        if self.config.messaging_service_sid:
            params["messaging_service_sid"] = self.config.messaging_service_sid
        else:
            params["from_"] = self.config.from_number
        if self.config.status_callback:
            params["status_callback"] = self.config.status_callback
        try:
            created = self.client.messages.create(**params)
        except TwilioRestException as exc:
            raise self._error(exc) from None
        except requests.RequestException as exc:
            raise TransientError(f"Twilio unreachable: {type(exc).__name__}") from None
        except TwilioException as exc:
            raise TransientError(f"Twilio client error: {type(exc).__name__}") from None
        return Receipt(
            channel=self.name,
            provider=PROVIDER,
            provider_message_id=str(created.sid or ""),
            details={"segments": segments.count, "encoding": segments.encoding, "status": str(created.status or "")},
        )

    def _error(self, exc: TwilioRestException) -> Exception:
        code = exc.code
        detail = redact(str(exc.msg or ""))
        if code == 21211:
            return PermanentError(
                f"Twilio: invalid 'To' number (21211): {detail}", suppress=True, remove_address=True, code="21211"
            )
        if code == 21610:
            return PermanentError(
                f"Twilio: the customer replied STOP (21610): {detail}", withdraw_consent=True, code="21610"
            )
        if code == 21614:
            return PermanentError(
                f"Twilio: the number is not a mobile (21614): {detail}", remove_address=True, code="21614"
            )
        recording = self.http_client if isinstance(self.http_client, RecordingHttpClient) else None
        response = recording.thread_response if recording else None
        headers = dict(response.headers) if response is not None and response.headers else {}
        status = 429 if code == 20429 else int(exc.status)
        label = f"{detail} (Twilio code {code})" if code else detail
        return error_for_status("Twilio", status, headers, label, code=str(code) if code else None)


def make_channel(settings: Settings, env: Mapping[str, str] | None = None) -> Channel:
    """Twilio when the account is configured, else the outbox under the name ``sms``."""
    config = TwilioConfig.from_env(os.environ if env is None else env)
    if config is None:
        return outbox.fallback("sms", settings, address_field="phone", consent_key="sms")
    return TwilioSms(config)


@hookimpl
def loyaloop_configure(settings: Settings) -> None:
    """Refuse to start with a half-configured Twilio account."""
    TwilioConfig.from_env(os.environ)


@hookimpl
def loyaloop_register_channels(register: Callable[[Channel], None], settings: Settings) -> None:
    register(make_channel(settings))


__all__ = ["Segments", "TwilioConfig", "TwilioSms", "e164", "sms_segments"]
