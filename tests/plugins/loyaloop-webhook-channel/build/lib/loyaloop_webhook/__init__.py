"""A webhook channel for Loyaloop: each message is POSTed as JSON to ``LOYALOOP_WEBHOOK_URL``.

Everything a channel plugin needs is here: read configuration in ``loyaloop_configure`` (and
refuse to start with a clear fix), register a channel object, map HTTP outcomes to Loyaloop's
``TransientError`` / ``PermanentError``, and pass an explicit timeout on every call.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from orchestrator.errors import ConfigurationError, PermanentError, TransientError
from orchestrator.hookspecs import hookimpl
from orchestrator.message import Channel, Message, Receipt
from orchestrator.settings import Settings

TIMEOUT = 10.0


class WebhookChannel:
    """Sends to the customer's e-mail address as the recipient key, with the consent given for e-mail."""

    name = "webhook"
    address_field = "email"
    consent_key = "email"

    def __init__(self, url: str, token: str | None = None, timeout: float = TIMEOUT) -> None:
        self.url = url
        self._token = token
        self.timeout = timeout

    def send(self, message: Message) -> Receipt:
        payload: dict[str, Any] = {
            "idempotency_key": message.idempotency_key,
            "channel": message.channel,
            "customer_id": message.customer_id,
            "journey_id": message.journey_id,
            "step_id": message.step_id,
            "category": message.category,
            "locale": message.locale,
            "to": message.to,
            "subject": message.subject,
            "body": message.body,
            "data": dict(message.data),
        }
        headers = {"Content-Type": "application/json", "Idempotency-Key": message.idempotency_key}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        request = urllib.request.Request(self.url, data=json.dumps(payload).encode(), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                answer = json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code == 429 or exc.code >= 500:
                retry = exc.headers.get("Retry-After")
                raise TransientError(
                    f"webhook answered {exc.code}", retry_after=float(retry) if retry else None
                ) from None
            raise PermanentError(f"webhook refused the message ({exc.code})", code=str(exc.code)) from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise TransientError(f"webhook unreachable: {type(exc).__name__}") from None
        return Receipt(channel=self.name, provider="webhook", provider_message_id=str(answer.get("id", "")))


@hookimpl
def loyaloop_configure(settings: Settings) -> None:
    if not os.environ.get("LOYALOOP_WEBHOOK_URL"):
        raise ConfigurationError(
            "the webhook channel is installed but LOYALOOP_WEBHOOK_URL is not set; "
            "set it, or uninstall loyaloop-webhook-channel"
        )


@hookimpl
def loyaloop_register_channels(register: Callable[[Channel], None], settings: Settings) -> None:
    register(WebhookChannel(os.environ["LOYALOOP_WEBHOOK_URL"], os.environ.get("LOYALOOP_WEBHOOK_TOKEN")))
