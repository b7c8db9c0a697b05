"""A fake Google: the OAuth2 token endpoint (verifying the service-account JWT) and the FCM v1 send endpoint.

Both run on one loopback server; the send endpoint accepts only the last token the token endpoint
issued, so a test proves the channel really went through google-auth's service-account flow.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from channels.push import SCOPE
from tests.channels.loopback import LoopbackServer, Reply, Seen

PROJECT = "demo-project"
CLIENT_EMAIL = "loyaloop@demo-project.iam.gserviceaccount.com"
SEND_PATH = f"/v1/projects/{PROJECT}/messages:send"


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


@dataclass
class FakeGoogle:
    """The token endpoint and the FCM endpoint, sharing the tokens issued so far."""

    server: LoopbackServer
    key: rsa.RSAPrivateKey
    issued: list[str] = field(default_factory=list)
    fcm_reply: Callable[[Seen], Reply] | None = None

    def service_account(self) -> dict[str, str]:
        pem = self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        return {
            "type": "service_account",
            "project_id": PROJECT,
            "private_key_id": "key-1",
            "private_key": pem,
            "client_email": CLIENT_EMAIL,
            "client_id": "1",
            "token_uri": f"{self.server.url}/token",
        }

    def handle(self, seen: Seen) -> Reply:
        if seen.path == "/token":
            return self._token(seen)
        if seen.path == SEND_PATH:
            if seen.headers.get("Authorization") != f"Bearer {self.issued[-1] if self.issued else ''}":
                return Reply(401, {"error": {"code": 401, "status": "UNAUTHENTICATED", "message": "bad token"}})
            problem = shape_problem(seen.json())
            if problem:
                return Reply(400, {"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": problem}})
            if self.fcm_reply is not None:
                return self.fcm_reply(seen)
            return Reply(200, {"name": f"projects/{PROJECT}/messages/0:{len(self.server.requests)}"})
        return Reply(404, {"error": {"code": 404, "status": "NOT_FOUND", "message": seen.path}})

    def _token(self, seen: Seen) -> Reply:
        form = parse_qs(seen.body.decode())
        assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
        header, claims, signature = form["assertion"][0].split(".")
        self.key.public_key().verify(
            _b64decode(signature), f"{header}.{claims}".encode(), padding.PKCS1v15(), hashes.SHA256()
        )
        payload = json.loads(_b64decode(claims))
        assert payload["iss"] == CLIENT_EMAIL and payload["aud"] == "https://oauth2.googleapis.com/token"
        assert SCOPE in payload["scope"].split()
        token = f"ya29.fake-{len(self.issued) + 1}"
        self.issued.append(token)
        return Reply(200, {"access_token": token, "expires_in": 3600, "token_type": "Bearer"})

    def sends(self) -> list[Seen]:
        return [seen for seen in self.server.requests if seen.path == SEND_PATH]


MESSAGE_FIELDS = {"token", "notification", "data", "android", "apns", "webpush", "fcm_options", "name"}


def shape_problem(body: Any) -> str | None:
    """What is wrong with a v1 send request, checked the way FCM checks it (None when it is valid)."""
    if not isinstance(body, dict) or set(body) != {"message"} or not isinstance(body["message"], dict):
        return "the body must be {'message': {...}}"
    message = body["message"]
    if set(message) - MESSAGE_FIELDS:
        return f"unknown message fields {sorted(set(message) - MESSAGE_FIELDS)}"
    if not isinstance(message.get("token"), str) or not message["token"]:
        return "message.token must be a non-empty string"
    notification = message.get("notification", {})
    if set(notification) - {"title", "body", "image"} or not all(isinstance(v, str) for v in notification.values()):
        return "message.notification takes string title, body and image only"
    data = message.get("data", {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        return "message.data values must be strings"
    if any(k in {"from", "notification", "message_type"} or k.startswith(("google", "gcm")) for k in data):
        return "message.data uses a reserved key"
    android = message.get("android", {})
    if android.get("priority", "NORMAL") not in {"NORMAL", "HIGH"}:
        return "message.android.priority must be NORMAL or HIGH"
    apns_headers = message.get("apns", {}).get("headers", {})
    if not all(isinstance(v, str) for v in apns_headers.values()):
        return "message.apns.headers values must be strings"
    return None
