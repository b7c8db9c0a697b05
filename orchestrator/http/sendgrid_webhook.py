"""``POST /webhooks/sendgrid``: SendGrid's Event Webhook, signed, fresh and heard once.

SendGrid signs ``timestamp + raw body`` with ECDSA P-256 / SHA-256 and sends the base64 DER
signature in ``X-Twilio-Email-Event-Webhook-Signature``.  A request is refused (403) when the
signature is missing or wrong or the timestamp is more than the tolerance (5 minutes) away from
now, and (409) when the same signed payload was already accepted.  Replays are recognised by a
digest of the signed bytes, not of the signature: ECDSA signatures are malleable, so a replayer
could re-encode the signature but not the payload.

Nothing from the request is trusted before the signature holds, nor much after: the headers are
read as a few ASCII digits and a short base64 string, the body is refused (413) past
``sendgrid_max_body`` before or while it is read, and a signed body is parsed with the depth and
number limits of :mod:`orchestrator.http.webhook_input`.  A body that cannot be read is a 400 and
leaves no replay marker; one event with a bad identifier (a ``customer_id`` of ``{x}|y``) is skipped
and counted while the rest of the batch applies; a failure half-way removes the marker so
SendGrid's retry is accepted.

Each event updates the message's status; hard bounces and spam reports put the address on the
suppression list; spam reports and unsubscribes withdraw e-mail consent; ``delivered``, ``open``
and ``click`` become ``email.delivered`` / ``email.opened`` / ``email.clicked`` events a journey can
wait for.  Consent withdrawals are dated by SendGrid's own event time (never later than their
receipt) in the consent history.  Nothing here logs the address or any other value from the
request.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import time
from typing import Any

import redis
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from orchestrator.errors import InputError
from orchestrator.gate import consent
from orchestrator.http.config import HttpConfig
from orchestrator.http.limits import ascii_number, read_body
from orchestrator.http.observability import WEBHOOK_EVENTS, WEBHOOK_REFUSED
from orchestrator.http.protocol import Intake
from orchestrator.http.responses import error
from orchestrator.http.webhook_input import BadField, SendGridEvent, parse_json_list, sendgrid_event
from orchestrator.runtime.message_status import StatusBook
from orchestrator.store import keys

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
#: Epoch seconds have 10 digits until the year 2286; a longer timestamp header is not one.
MAX_TIMESTAMP_DIGITS = 12
#: A base64 DER ECDSA P-256 signature is at most 96 characters; a longer header is not one.
MAX_SIGNATURE_CHARS = 128
#: Events that withdraw e-mail consent.
WITHDRAWALS = frozenset({"spamreport", "unsubscribe", "group_unsubscribe"})

#: SendGrid event → normalised message status.
STATUSES = {
    "processed": "accepted",
    "deferred": "deferred",
    "delivered": "delivered",
    "open": "opened",
    "click": "clicked",
    "bounce": "bounced",
    "blocked": "bounced",
    "dropped": "dropped",
    "spamreport": "spam_reported",
    "unsubscribe": "unsubscribed",
    "group_unsubscribe": "unsubscribed",
}
#: SendGrid event → the event a journey sees (``wait: {event: email.clicked}``).
ENGAGEMENT = {"delivered": "email.delivered", "open": "email.opened", "click": "email.clicked"}

log = logging.getLogger("loyaloop.http.sendgrid")


def decode_signature(signature: str) -> bytes | None:
    """The DER bytes of a base64 signature header, or None when it cannot be one (checked before
    the body is read, so a junk header costs no body)."""
    if len(signature) > MAX_SIGNATURE_CHARS or not signature.isascii():
        return None
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if raw.startswith(b"\x30") else None


def verify_signature(public_key: ec.EllipticCurvePublicKey, signature: str, timestamp: str, body: bytes) -> bool:
    """Whether ``signature`` (base64 DER) signs ``timestamp + body`` with SendGrid's key."""
    raw = decode_signature(signature)
    if raw is None:
        return False
    try:
        public_key.verify(raw, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True


class SendGridWebhook:
    """The endpoint; one instance per app."""

    def __init__(self, config: HttpConfig, client: redis.Redis, intake: Intake) -> None:
        self._config = config
        self._client = client
        self._intake = intake
        self._book = StatusBook(client)

    def _refuse(self, status: int, reason: str, message: str) -> Response:
        WEBHOOK_REFUSED.labels(provider="sendgrid", reason=reason).inc()
        return error(status, message)

    async def handle(self, request: Request) -> Response:
        received = time.time()
        public_key = self._config.sendgrid_public_key
        if public_key is None:
            return self._refuse(
                503, "not_configured", "the SendGrid webhook is not configured (SENDGRID_WEBHOOK_PUBLIC_KEY)"
            )
        # Header checks first: an unsigned, stale or malformed request is refused before its body is read.
        signature = request.headers.get(SIGNATURE_HEADER)
        timestamp = request.headers.get(TIMESTAMP_HEADER)
        if not signature or not timestamp:
            return self._refuse(403, "unsigned", f"missing {SIGNATURE_HEADER} or {TIMESTAMP_HEADER}")
        stamp = ascii_number(timestamp, MAX_TIMESTAMP_DIGITS)
        if stamp is None or abs(received - stamp) > self._config.webhook_tolerance:
            return self._refuse(403, "stale", "the webhook timestamp is missing, malformed or too old")
        if decode_signature(signature) is None:
            return self._refuse(403, "forged", "the webhook signature is not a base64 ECDSA signature")
        limit = self._config.sendgrid_max_body
        body = await read_body(request, limit)
        if body is None:
            return self._refuse(413, "too_large", f"the request body is larger than {limit} bytes")
        if not verify_signature(public_key, signature, timestamp, body):
            return self._refuse(403, "forged", "the webhook signature does not match")
        digest = hashlib.sha256(timestamp.encode() + b"." + body).hexdigest()
        return await run_in_threadpool(self._accept, digest, body, received)

    def _accept(self, digest: str, body: bytes, received: float) -> Response:
        # Parsed before the replay marker is set: a body that can never be read leaves no marker.
        try:
            events = parse_json_list(body)
        except InputError as exc:
            return self._refuse(400, "malformed", str(exc))
        marker = keys.webhook_seen("sendgrid", digest)
        # Remember the payload for twice the tolerance: a replay after that is refused as stale.
        if not self._client.set(marker, "1", nx=True, ex=2 * self._config.webhook_tolerance):
            return self._refuse(409, "replayed", "this signed payload was already accepted")
        try:
            handled = sum(self._handle(event, received) for event in events)
        except BaseException:
            # Forget the payload so SendGrid's retry of it is not refused as a replay.
            self._client.delete(marker)
            raise
        return JSONResponse({"received": len(events), "handled": handled})

    def _handle(self, raw: Any, received: float) -> bool:
        if not isinstance(raw, dict):
            return False
        kind = raw.get("event")
        if not isinstance(kind, str) or kind not in STATUSES:
            WEBHOOK_EVENTS.labels(provider="sendgrid", event="ignored").inc()
            return False
        try:
            event = sendgrid_event(raw, kind, received)
        except BadField as bad:
            # Skipped, never written; the field is named, its value (the request's) is not.
            WEBHOOK_REFUSED.labels(provider="sendgrid", reason="invalid_event").inc()
            log.warning("sendgrid %s event skipped: its %s is not valid", kind, bad.field)
            return False
        WEBHOOK_EVENTS.labels(provider="sendgrid", event=kind).inc()
        if event.idempotency_key:
            self._book.record(event.idempotency_key, STATUSES[kind], event.at)
        hard_bounce = kind == "bounce" and event.bounce_type == "bounce"
        if event.email and (hard_bounce or kind == "spamreport"):
            consent.suppress(self._client, event.email, f"sendgrid:{kind}")
        if event.customer_id and kind in WITHDRAWALS:
            consent.set_consent(self._client, event.customer_id, "email", False, source=f"sendgrid:{kind}", at=event.at)
        name = ENGAGEMENT.get(kind)
        if event.customer_id and name:
            self._engagement(event.customer_id, name, event)
        return True

    def _engagement(self, customer_id: str, name: str, event: SendGridEvent) -> None:
        properties: dict[str, Any] = {"provider": "sendgrid"}
        for field, value in (
            ("journey_id", event.journey_id),
            ("run_id", event.run_id),
            ("step_id", event.step_id),
            ("idempotency_key", event.idempotency_key),
        ):
            if value:
                properties[field] = value
        if name == "email.clicked" and event.url:
            properties["url"] = event.url
        try:
            self._intake.track(customer_id, name, properties, event_id=event.event_id)
        except InputError as exc:
            # A malformed event from the provider must not make SendGrid retry the whole batch forever.
            log.warning("sendgrid event %s refused by intake: its %s is not valid", name, exc.field or "body")
            WEBHOOK_REFUSED.labels(provider="sendgrid", reason="intake").inc()
