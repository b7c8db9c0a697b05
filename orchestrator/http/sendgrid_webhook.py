"""``POST /webhooks/sendgrid``: SendGrid's Event Webhook, signed, fresh and heard once.

SendGrid signs ``timestamp + raw body`` with ECDSA P-256 / SHA-256 and sends the base64 DER
signature in ``X-Twilio-Email-Event-Webhook-Signature``.  A request is refused (403) when the
signature is missing or wrong or the timestamp is more than the tolerance (5 minutes) away from
now, and (409) when the same signed payload was already accepted.  Replays are recognised by a
digest of the signed bytes, not of the signature: ECDSA signatures are malleable, so a replayer
could re-encode the signature but not the payload.

Each event updates the message's status; hard bounces and spam reports put the address on the
suppression list; spam reports and unsubscribes withdraw e-mail consent; ``delivered``, ``open``
and ``click`` become ``email.delivered`` / ``email.opened`` / ``email.clicked`` events a journey can
wait for.  Nothing here logs the address.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
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
from orchestrator.http.limits import read_body
from orchestrator.http.observability import WEBHOOK_EVENTS, WEBHOOK_REFUSED
from orchestrator.http.protocol import Intake
from orchestrator.http.responses import error
from orchestrator.runtime.message_status import StatusBook
from orchestrator.store import keys

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
#: SendGrid posts up to a few MB of batched events.
MAX_BODY = 8 * 1024 * 1024

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


def verify_signature(public_key: ec.EllipticCurvePublicKey, signature: str, timestamp: str, body: bytes) -> bool:
    """Whether ``signature`` (base64 DER) signs ``timestamp + body`` with SendGrid's key."""
    try:
        raw = base64.b64decode(signature, validate=True)
        public_key.verify(raw, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


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
        public_key = self._config.sendgrid_public_key
        if public_key is None:
            return self._refuse(
                503, "not_configured", "the SendGrid webhook is not configured (SENDGRID_WEBHOOK_PUBLIC_KEY)"
            )
        # Header checks first: an unsigned or stale request is refused before its body is read.
        signature = request.headers.get(SIGNATURE_HEADER)
        timestamp = request.headers.get(TIMESTAMP_HEADER)
        if not signature or not timestamp:
            return self._refuse(403, "unsigned", f"missing {SIGNATURE_HEADER} or {TIMESTAMP_HEADER}")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > self._config.webhook_tolerance:
            return self._refuse(403, "stale", "the webhook timestamp is missing, malformed or too old")
        body = await read_body(request, MAX_BODY)
        if body is None:
            return self._refuse(413, "too_large", f"the request body is larger than {MAX_BODY} bytes")
        if not verify_signature(public_key, signature, timestamp, body):
            return self._refuse(403, "forged", "the webhook signature does not match")
        digest = hashlib.sha256(timestamp.encode() + b"." + body).hexdigest()
        return await run_in_threadpool(self._accept, digest, body)

    def _accept(self, digest: str, body: bytes) -> Response:
        marker = keys.webhook_seen("sendgrid", digest)
        # Remember the payload for twice the tolerance: a replay after that is refused as stale.
        if not self._client.set(marker, "1", nx=True, ex=2 * self._config.webhook_tolerance):
            return self._refuse(409, "replayed", "this signed payload was already accepted")
        try:
            events = json.loads(body)
        except ValueError:
            return self._refuse(400, "malformed", "the webhook body is not a JSON array of events")
        if not isinstance(events, list):
            return self._refuse(400, "malformed", "the webhook body is not a JSON array of events")
        try:
            handled = sum(self._handle(event) for event in events)
        except Exception:
            # Forget the payload so SendGrid's retry of it is not refused as a replay.
            self._client.delete(marker)
            raise
        return JSONResponse({"received": len(events), "handled": handled})

    def _handle(self, event: Any) -> bool:
        if not isinstance(event, dict):
            return False
        kind = _text(event.get("event"))
        if kind not in STATUSES:
            WEBHOOK_EVENTS.labels(provider="sendgrid", event="ignored").inc()
            return False
        WEBHOOK_EVENTS.labels(provider="sendgrid", event=kind).inc()
        at = event.get("timestamp")
        at = float(at) if isinstance(at, int | float) and not isinstance(at, bool) else time.time()
        customer_id = _text(event.get("customer_id"))
        run_id, step_id = _text(event.get("run_id")), _text(event.get("step_id"))
        idempotency_key = _text(event.get("idempotency_key")) or (f"{run_id}:{step_id}" if run_id and step_id else None)
        if idempotency_key:
            self._book.record(idempotency_key, STATUSES[kind], at)
        address = _text(event.get("email"))
        hard_bounce = kind == "bounce" and event.get("type", "bounce") == "bounce"
        if address and (hard_bounce or kind == "spamreport"):
            consent.suppress(self._client, address, f"sendgrid:{kind}")
        if customer_id and kind in {"spamreport", "unsubscribe", "group_unsubscribe"}:
            consent.set_consent(self._client, customer_id, "email", False, source=f"sendgrid:{kind}")
        name = ENGAGEMENT.get(kind)
        if customer_id and name:
            self._engagement(customer_id, name, event, run_id, step_id, idempotency_key)
        return True

    def _engagement(
        self,
        customer_id: str,
        name: str,
        event: dict[str, Any],
        run_id: str | None,
        step_id: str | None,
        idempotency_key: str | None,
    ) -> None:
        properties: dict[str, Any] = {"provider": "sendgrid"}
        for field, value in (("run_id", run_id), ("step_id", step_id), ("idempotency_key", idempotency_key)):
            if value:
                properties[field] = value
        if _text(event.get("journey_id")):
            properties["journey_id"] = event["journey_id"]
        if name == "email.clicked" and _text(event.get("url")):
            properties["url"] = event["url"]
        # sg_event_id is base64 (it may hold '+', '/', '='): a digest of it is a stable, valid event id.
        sg_event_id = _text(event.get("sg_event_id"))
        event_id = "sendgrid:" + hashlib.sha256(sg_event_id.encode()).hexdigest()[:32] if sg_event_id else None
        try:
            self._intake.track(customer_id, name, properties, event_id=event_id)
        except InputError as exc:
            # A malformed event from the provider must not make SendGrid retry the whole batch forever.
            log.warning("sendgrid event %s refused by intake: %s", name, exc)
            WEBHOOK_REFUSED.labels(provider="sendgrid", reason="intake").inc()
