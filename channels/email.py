"""E-mail through SendGrid's v3 Mail Send API, using the official ``sendgrid`` SDK.

Without ``SENDGRID_API_KEY`` the plugin registers an outbox-backed ``email`` channel instead, so
journeys keep saying ``send: email`` in development and in ``loyaloop demo``.

Environment: ``SENDGRID_API_KEY`` (secret), ``SENDGRID_API_HOST`` (base URL override for
sandboxes and contract tests), ``LOYALOOP_EMAIL_FROM`` (``Brand <news@brand.example>``),
``LOYALOOP_EMAIL_REPLY_TO``, ``SENDGRID_ASM_GROUP_ID`` (unsubscribe group for marketing mail),
``SENDGRID_SANDBOX_MODE`` (``1``/``true``: SendGrid validates but does not deliver).
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import urllib.error
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parseaddr
from typing import Any

from python_http_client import exceptions as sg_exceptions
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import (
    Asm,
    Category,
    CustomArg,
    From,
    GroupId,
    Header,
    Mail,
    MailSettings,
    ReplyTo,
    SandBoxMode,
    To,
)

from channels import outbox
from channels.http import TIMEOUT, error_for_status, redact
from orchestrator.errors import ConfigurationError, PermanentError, TransientError
from orchestrator.hookspecs import hookimpl
from orchestrator.message import Channel, Message, Receipt
from orchestrator.settings import Settings

PROVIDER = "sendgrid"
DEFAULT_HOST = "https://api.sendgrid.com"
#: SendGrid's own limits: at most 10 categories, custom args at most 10,000 bytes.
MAX_CATEGORIES = 10
MAX_CUSTOM_ARGS_BYTES = 10_000
_TRUE = {"1", "true", "yes", "on"}
#: Headers SendGrid refuses to take from the caller (it sets them itself).
RESERVED_HEADERS = frozenset(
    name.lower()
    for name in (
        "x-sg-id",
        "x-sg-eid",
        "received",
        "dkim-signature",
        "Content-Type",
        "Content-Transfer-Encoding",
        "To",
        "From",
        "Subject",
        "Reply-To",
        "CC",
        "BCC",
    )
)


class _DropRequestDumps(logging.Filter):
    """python_http_client logs whole request bodies (recipient addresses) at DEBUG: never let them out."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG


logging.getLogger("python_http_client.client").addFilter(_DropRequestDumps())


@dataclass(frozen=True)
class SendGridConfig:
    """What the channel needs from the environment; the key never appears in a repr."""

    api_key: str = field(repr=False)
    from_email: str
    from_name: str | None = None
    reply_to: str | None = None
    host: str = DEFAULT_HOST
    asm_group_id: int | None = None
    sandbox: bool = False
    timeout: float = TIMEOUT

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SendGridConfig | None:
        """None when no API key is set (the outbox is used); ConfigurationError when half set."""
        api_key = env.get("SENDGRID_API_KEY", "").strip()
        if not api_key:
            return None
        name, address = parseaddr(env.get("LOYALOOP_EMAIL_FROM", ""))
        if "@" not in address:
            raise ConfigurationError(
                "SENDGRID_API_KEY is set but LOYALOOP_EMAIL_FROM is missing or not an address; "
                "set it to a verified sender such as 'Brand <news@brand.example>'"
            )
        group = env.get("SENDGRID_ASM_GROUP_ID", "").strip()
        if group and not group.isdigit():
            raise ConfigurationError(f"SENDGRID_ASM_GROUP_ID must be a number, got {group!r}")
        return cls(
            api_key=api_key,
            from_email=address,
            from_name=name or None,
            reply_to=env.get("LOYALOOP_EMAIL_REPLY_TO") or None,
            host=(env.get("SENDGRID_API_HOST") or DEFAULT_HOST).rstrip("/"),
            asm_group_id=int(group) if group else None,
            sandbox=env.get("SENDGRID_SANDBOX_MODE", "").strip().lower() in _TRUE,
        )


def _address(cls: type[Any], address: str, name: str | None = None) -> Any:
    """An SDK address object holding ``address`` verbatim (the SDK's parser drops what it cannot parse)."""
    value = cls()
    value.email = address
    if name:
        value.name = name
    return value


class SendGridEmail:
    """The ``email`` channel on SendGrid.  ``client`` may be injected (any SendGridAPIClient)."""

    name = "email"
    address_field = "email"
    consent_key = "email"

    def __init__(self, config: SendGridConfig, client: SendGridAPIClient | None = None) -> None:
        self.config = config
        self.client = client or SendGridAPIClient(api_key=config.api_key, host=config.host)
        # python_http_client passes this to every urllib call it makes for this client.
        self.client.client.timeout = config.timeout

    def build(self, message: Message) -> dict[str, Any]:
        """The Mail Send request body for ``message`` (also used by the contract tests)."""
        if not message.subject:
            raise PermanentError("an e-mail needs a subject; add one to the template", code="no_subject")
        mail = Mail(
            from_email=_address(From, self.config.from_email, self.config.from_name),
            to_emails=_address(To, message.to),
            subject=message.subject,
            plain_text_content=message.body,
            html_content=message.html or None,
        )
        if self.config.reply_to:
            mail.reply_to = _address(ReplyTo, self.config.reply_to)
        categories = list(dict.fromkeys((message.journey_id, message.step_id, *message.categories)))
        mail.category = [Category(value[:255]) for value in categories[:MAX_CATEGORIES]]
        custom_args = {
            **message.metadata,
            "journey_id": message.journey_id,
            "step_id": message.step_id,
            "run_id": message.run_id,
            "customer_id": message.customer_id,
            "idempotency_key": message.idempotency_key,
        }
        if len(json.dumps(custom_args).encode()) > MAX_CUSTOM_ARGS_BYTES:
            raise PermanentError(
                f"custom args exceed SendGrid's {MAX_CUSTOM_ARGS_BYTES} bytes; send less metadata", code="custom_args"
            )
        # On the recipient's personalization: SendGrid's contract types the top-level custom_args as a
        # string, the personalization's as an object, and the two are merged on SendGrid's side anyway.
        for key, value in custom_args.items():
            mail.add_custom_arg(CustomArg(key, str(value), p=0))
        reserved = sorted(name for name in message.headers if name.lower() in RESERVED_HEADERS)
        if reserved:
            raise PermanentError(
                f"SendGrid does not let a message set the header(s) {', '.join(reserved)}; "
                "the plugin or step that added them must leave them out",
                code="reserved_header",
            )
        if message.headers:
            mail.header = [Header(key, value) for key, value in message.headers.items()]
        if message.category == "marketing" and self.config.asm_group_id is not None:
            mail.asm = Asm(GroupId(self.config.asm_group_id))
        if self.config.sandbox:
            mail.mail_settings = MailSettings(sandbox_mode=SandBoxMode(True))
        body: dict[str, Any] = mail.get()
        return body

    def send(self, message: Message) -> Receipt:
        body = self.build(message)
        try:
            response = self.client.send(body)
        except sg_exceptions.HTTPError as exc:
            raise _error(exc) from None
        except (TimeoutError, urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            raise TransientError(f"SendGrid unreachable: {type(exc).__name__}") from None
        message_id = response.headers.get("X-Message-Id", "") if response.headers else ""
        return Receipt(
            channel=self.name,
            provider=PROVIDER,
            provider_message_id=str(message_id or ""),
            details={"status": response.status_code, "sandbox": self.config.sandbox},
        )


def _error(exc: sg_exceptions.HTTPError) -> Exception:
    """Map a SendGrid error answer; a 400 names the offending fields from SendGrid's error body."""
    status = int(exc.status_code)
    detail = ""
    try:
        errors = json.loads(exc.body or b"{}").get("errors") or []
    except (ValueError, AttributeError):
        errors = []
    if errors:
        parts = []
        for item in errors:
            if isinstance(item, dict):
                field_name = item.get("field") or "(no field)"
                parts.append(f"field {field_name!s}: {item.get('message', '')}".strip())
        detail = "; ".join(parts)
    headers = dict(exc.headers.items()) if exc.headers else {}
    error = error_for_status(PROVIDER, status, headers, detail)
    if isinstance(error, PermanentError) and status == 400:
        fields = [str(item.get("field")) for item in errors if isinstance(item, dict) and item.get("field")]
        return PermanentError(
            f"SendGrid rejected the message (HTTP 400): {redact(detail) or 'no detail given'}",
            code="400:" + ",".join(fields) if fields else "400",
        )
    return error


def make_channel(settings: Settings, env: Mapping[str, str] | None = None) -> Channel:
    """SendGrid when ``SENDGRID_API_KEY`` is set, else the outbox under the name ``email``."""
    config = SendGridConfig.from_env(os.environ if env is None else env)
    if config is None:
        return outbox.fallback("email", settings, address_field="email", consent_key="email")
    return SendGridEmail(config)


@hookimpl
def loyaloop_configure(settings: Settings) -> None:
    """Refuse to start with a half-configured SendGrid (key without sender)."""
    SendGridConfig.from_env(os.environ)


@hookimpl
def loyaloop_register_channels(register: Callable[[Channel], None], settings: Settings) -> None:
    register(make_channel(settings))
