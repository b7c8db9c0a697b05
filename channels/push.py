"""Push notifications through Firebase Cloud Messaging's HTTP v1 API.

Authentication is a Google service account: google-auth signs a JWT with the account's key,
exchanges it at the account's ``token_uri`` for an OAuth2 access token, and the token is reused
until shortly before it expires (one exchange per hour per process, not per send).

Environment: ``FCM_SERVICE_ACCOUNT_JSON`` (the JSON itself) or ``GOOGLE_APPLICATION_CREDENTIALS``
(a path to it), ``FCM_PROJECT_ID`` (defaults to the account's ``project_id``), ``FCM_API_BASE_URL``
(base URL override).  Without credentials the plugin registers an outbox-backed ``push`` channel.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import google.auth.exceptions
import google.auth.transport.requests
import requests
from google.oauth2 import service_account

from channels import outbox
from channels.http import CONNECT_TIMEOUT, READ_TIMEOUT, error_for_status, redact
from orchestrator.errors import ConfigurationError, DeliveryError, PermanentError, TransientError
from orchestrator.hookspecs import hookimpl
from orchestrator.message import Channel, Message, Receipt
from orchestrator.settings import Settings

PROVIDER = "fcm"
DEFAULT_BASE_URL = "https://fcm.googleapis.com"
SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
#: FCM refuses a message whose payload (notification, data, platform blocks) exceeds 4096 bytes.
MAX_PAYLOAD_BYTES = 4096
#: FcmError codes that mean the token will never work again: remove it from the profile.
DEAD_TOKEN_CODES = {"UNREGISTERED", "SENDER_ID_MISMATCH"}
TRANSIENT_CODES = {"UNAVAILABLE", "INTERNAL", "QUOTA_EXCEEDED"}


@dataclass(frozen=True)
class FcmConfig:
    """The project and the service account (kept out of every repr)."""

    project_id: str
    service_account: dict[str, Any] = field(repr=False)
    base_url: str = DEFAULT_BASE_URL
    connect_timeout: float = CONNECT_TIMEOUT
    read_timeout: float = READ_TIMEOUT

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> FcmConfig | None:
        """None without credentials (the outbox is used); ConfigurationError when they are unusable."""
        raw = env.get("FCM_SERVICE_ACCOUNT_JSON", "").strip()
        source = "FCM_SERVICE_ACCOUNT_JSON"
        if not raw:
            path = env.get("GOOGLE_APPLICATION_CREDENTIALS", "").strip()
            if not path:
                return None
            source = "GOOGLE_APPLICATION_CREDENTIALS"
            try:
                raw = Path(path).read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigurationError(f"{source} points to {path!r}, which cannot be read: {exc.strerror}") from None
        try:
            info = json.loads(raw)
        except ValueError:
            raise ConfigurationError(f"{source} is not JSON; use the service-account key file from Firebase") from None
        missing = [
            key for key in ("client_email", "private_key", "token_uri") if not isinstance(info, dict) or key not in info
        ]
        if missing:
            raise ConfigurationError(f"{source} is not a service-account key: it lacks {', '.join(missing)}")
        project = env.get("FCM_PROJECT_ID", "").strip() or str(info.get("project_id") or "")
        if not project:
            raise ConfigurationError("set FCM_PROJECT_ID (the service account names no project_id)")
        base = (env.get("FCM_API_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        return cls(project_id=project, service_account=info, base_url=base)


def _fcm_error_code(body: Any) -> tuple[str, str]:
    """(FcmError errorCode or google.rpc status, message) from an FCM error body."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return "", ""
    code = str(error.get("status") or "")
    for detail in error.get("details") or []:
        if isinstance(detail, dict) and detail.get("errorCode"):
            code = str(detail["errorCode"])
    return code, str(error.get("message") or "")


class FcmPush:
    """The ``push`` channel on FCM HTTP v1.  ``session`` may be injected (any ``requests.Session``)."""

    name = "push"
    address_field = "push_token"
    consent_key = "push"

    def __init__(self, config: FcmConfig, session: requests.Session | None = None) -> None:
        self.config = config
        self.session = session or requests.Session()
        self.url = f"{config.base_url}/v1/projects/{config.project_id}/messages:send"
        try:
            self._credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                config.service_account, scopes=[SCOPE]
            )
        except (ValueError, KeyError) as exc:
            raise ConfigurationError(f"the FCM service account cannot be used: {type(exc).__name__}") from None
        self._token_lock = threading.Lock()
        self._stale = False

    def access_token(self) -> str:
        """A valid OAuth2 token, exchanged only when the cached one is missing, expiring or refused."""
        with self._token_lock:
            if self._stale or not self._credentials.valid:
                transport = google.auth.transport.requests.Request(session=self.session)

                def request(*args: Any, **kwargs: Any) -> Any:
                    # google-auth would wait up to 120 s for the token endpoint; use our own timeouts.
                    kwargs["timeout"] = (self.config.connect_timeout, self.config.read_timeout)
                    return transport(*args, **kwargs)

                try:
                    self._credentials.refresh(request)
                except google.auth.exceptions.RefreshError as exc:
                    raise TransientError(f"FCM token exchange refused: {type(exc).__name__}", retry_after=60) from None
                except google.auth.exceptions.TransportError as exc:
                    raise TransientError(f"FCM token endpoint unreachable: {type(exc).__name__}") from None
                self._stale = False
            token: str = self._credentials.token
            return token

    def payload(self, message: Message) -> dict[str, Any]:
        """The ``message`` object of the v1 request, without checking its size."""
        urgent = message.category == "transactional"
        collapse = f"{message.journey_id}.{message.step_id}"[:64]
        data = {
            **message.data,
            "loyaloop_journey": message.journey_id,
            "loyaloop_step": message.step_id,
            "loyaloop_run": message.run_id,
        }
        notification = {"title": message.title or message.subject or "", "body": message.body}
        return {
            "token": message.to,
            "notification": notification,
            "data": {key: str(value) for key, value in data.items()},
            "android": {"priority": "HIGH" if urgent else "NORMAL", "collapse_key": collapse},
            "apns": {
                "headers": {"apns-priority": "10" if urgent else "5", "apns-collapse-id": collapse},
                "payload": {"aps": {"sound": "default"}},
            },
        }

    def send(self, message: Message) -> Receipt:
        payload = self.payload(message)
        size = len(json.dumps({k: v for k, v in payload.items() if k != "token"}, separators=(",", ":")).encode())
        if size > MAX_PAYLOAD_BYTES:
            raise PermanentError(
                f"push payload is {size} bytes, FCM allows {MAX_PAYLOAD_BYTES}; shorten the template or its data",
                code="payload_too_large",
            )
        token = self.access_token()
        try:
            response = self.session.post(
                self.url,
                json={"message": payload},
                headers={"Authorization": f"Bearer {token}"},
                timeout=(self.config.connect_timeout, self.config.read_timeout),
            )
        except requests.RequestException as exc:
            raise TransientError(f"FCM unreachable: {type(exc).__name__}") from None
        if response.status_code >= 300:
            raise self._error(response)
        try:
            name = str(response.json().get("name", ""))
        except ValueError:
            name = ""
        return Receipt(channel=self.name, provider=PROVIDER, provider_message_id=name, details={})

    def _error(self, response: requests.Response) -> DeliveryError:
        try:
            body = response.json()
        except ValueError:
            body = {}
        code, text = _fcm_error_code(body)
        detail = redact(f"{code}: {text}" if code else text)
        if code in DEAD_TOKEN_CODES:
            return PermanentError(
                f"FCM: the device token is no longer valid ({detail})", remove_address=True, code=code
            )
        if response.status_code == 401:
            self._stale = True  # the token was revoked or expired early: exchange a new one next time
        if code in TRANSIENT_CODES:
            status = 429 if code == "QUOTA_EXCEEDED" else max(response.status_code, 500)
            return error_for_status("FCM", status, response.headers, detail, code=code)
        error = error_for_status("FCM", response.status_code, response.headers, detail, code=code or None)
        return error


def make_channel(settings: Settings, env: Mapping[str, str] | None = None) -> Channel:
    """FCM when a service account is configured, else the outbox under the name ``push``."""
    config = FcmConfig.from_env(os.environ if env is None else env)
    if config is None:
        return outbox.fallback("push", settings, address_field="push_token", consent_key="push")
    return FcmPush(config)


@hookimpl
def loyaloop_configure(settings: Settings) -> None:
    """Refuse to start with unusable FCM credentials."""
    FcmConfig.from_env(os.environ)


@hookimpl
def loyaloop_register_channels(register: Callable[[Channel], None], settings: Settings) -> None:
    register(make_channel(settings))
