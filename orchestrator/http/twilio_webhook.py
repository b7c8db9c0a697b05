"""``POST /webhooks/twilio/status`` and ``/webhooks/twilio/inbound``, verified by ``X-Twilio-Signature``.

Twilio's documented algorithm: take the full URL Twilio requested, append every POST parameter
sorted by name as ``name + value``, HMAC-SHA1 it with the account's auth token and base64 the
digest.  The URL is rebuilt from ``public_url`` (what Twilio was told to call, behind any proxy)
and, as a fallback, from the request itself; the comparison is constant-time.

Status callbacks update the message's status (looked up by ``MessageSid`` in the runtime's index),
turn ``delivered`` into an ``sms.delivered`` event, and remember which customer was texted at the
number so that an inbound ``STOP`` (which carries only the number) finds whose consent to withdraw.
Inbound keywords follow Twilio's defaults: STOP/STOPALL/UNSUBSCRIBE/CANCEL/END/QUIT withdraw SMS
consent and suppress the number (Twilio itself then blocks every message to it),
START/YES/UNSTOP grant it again, HELP answers with a short TwiML reply.  Each inbound message is
handled once (by ``MessageSid``), so a replayed START cannot undo a later STOP.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time
from collections.abc import Iterable, Sequence
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

import redis
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from orchestrator.errors import InputError
from orchestrator.gate import consent
from orchestrator.http.config import HttpConfig
from orchestrator.http.limits import read_body
from orchestrator.http.observability import WEBHOOK_EVENTS, WEBHOOK_REFUSED
from orchestrator.http.protocol import Intake
from orchestrator.http.responses import error
from orchestrator.runtime.message_status import StatusBook
from orchestrator.store import keys

SIGNATURE_HEADER = "X-Twilio-Signature"
MAX_BODY = 64 * 1024
STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
START_WORDS = frozenset({"START", "YES", "UNSTOP"})
HELP_WORDS = frozenset({"HELP", "INFO"})
#: Twilio status → normalised message status.
STATUSES = {
    "accepted": "accepted",
    "scheduled": "accepted",
    "queued": "accepted",
    "sending": "sent",
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "undelivered": "undelivered",
    "failed": "failed",
    "canceled": "failed",
}
#: Error codes that mean the customer opted out at the carrier (withdraw SMS consent).
OPTED_OUT_CODES = frozenset({"21610"})
#: Error codes that mean the number can never receive SMS (suppress it).
DEAD_NUMBER_CODES = frozenset({"21211", "21614", "30005", "30006"})
INBOUND_SEEN_TTL = 90 * 86400
CONTACT_TTL = 365 * 86400
SUPPRESS_REASON = "twilio:stop"

log = logging.getLogger("loyaloop.http.twilio")


def compute_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """Twilio's request signature for ``url`` and form ``params`` (repeated names allowed)."""
    payload = url + "".join(name + value for name, value in sorted(params))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def signature_matches(auth_token: str, urls: Sequence[str], params: Sequence[tuple[str, str]], signature: str) -> bool:
    """Whether ``signature`` is Twilio's for any of the candidate ``urls`` (every one is checked)."""
    matched = False
    for url in urls:
        if hmac.compare_digest(compute_signature(auth_token, url, params).encode(), signature.encode()):
            matched = True
    return matched


def keyword_kind(body: str) -> str:
    """``stop``, ``start``, ``help`` or ``other``: what the first word of an inbound SMS asks for."""
    words = body.strip().split()
    keyword = words[0].upper().strip(".!") if words else ""
    if keyword in STOP_WORDS:
        return "stop"
    if keyword in START_WORDS:
        return "start"
    return "help" if keyword in HELP_WORDS else "other"


def twiml(message: str | None = None) -> Response:
    """A TwiML answer: empty, or one reply message."""
    inner = f"<Message>{escape(message)}</Message>" if message else ""
    body = f'<?xml version="1.0" encoding="UTF-8"?><Response>{inner}</Response>'
    return Response(body, media_type="application/xml")


class TwilioWebhooks:
    """Both Twilio endpoints; one instance per app."""

    def __init__(self, config: HttpConfig, client: redis.Redis, intake: Intake, public_url: str) -> None:
        self._config = config
        self._client = client
        self._intake = intake
        self._public_url = public_url.rstrip("/")
        self._book = StatusBook(client)

    def _refuse(self, status: int, reason: str, message: str) -> Response:
        WEBHOOK_REFUSED.labels(provider="twilio", reason=reason).inc()
        return error(status, message)

    async def _verified(self, request: Request) -> list[tuple[str, str]] | Response:
        token = self._config.twilio_auth_token
        if token is None:
            return self._refuse(503, "not_configured", "the Twilio webhooks are not configured (TWILIO_AUTH_TOKEN)")
        signature = request.headers.get(SIGNATURE_HEADER)
        if not signature:  # refused before the body is read
            return self._refuse(403, "unsigned", f"missing {SIGNATURE_HEADER}")
        body = await read_body(request, MAX_BODY)
        if body is None:
            return self._refuse(413, "too_large", f"the request body is larger than {MAX_BODY} bytes")
        try:
            params = parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=bool(body))
        except (UnicodeDecodeError, ValueError):
            return self._refuse(400, "malformed", "the webhook body is not a form")
        query = f"?{request.url.query}" if request.url.query else ""
        urls = [f"{self._public_url}{request.url.path}{query}", str(request.url)]
        if not signature_matches(token, urls, params, signature):
            return self._refuse(403, "forged", "the webhook signature does not match")
        return params

    async def status(self, request: Request) -> Response:
        """A message status callback."""
        verified = await self._verified(request)
        if isinstance(verified, Response):
            return verified
        await run_in_threadpool(self._status, dict(verified))
        return Response(status_code=204)

    async def inbound(self, request: Request) -> Response:
        """An SMS a customer sent to one of our numbers."""
        verified = await self._verified(request)
        if isinstance(verified, Response):
            return verified
        reply = await run_in_threadpool(self._inbound, dict(verified))
        return twiml(reply)

    def _status(self, form: dict[str, str]) -> None:
        sid = form.get("MessageSid") or form.get("SmsSid")
        status = STATUSES.get((form.get("MessageStatus") or form.get("SmsStatus") or "").lower())
        WEBHOOK_EVENTS.labels(provider="twilio", event=status or "ignored").inc()
        if not sid or status is None:
            return
        ref = self._book.lookup(sid)
        if ref is None:
            return  # not ours, or older than the runtime keeps the index
        self._book.record(ref.idempotency_key, status, time.time())
        number = form.get("To")
        if number:
            self._client.set(keys.sms_contact(consent.address_hash(number)), ref.customer_id, ex=CONTACT_TTL)
        code = form.get("ErrorCode") or ""
        if code in OPTED_OUT_CODES:
            consent.set_consent(self._client, ref.customer_id, "sms", False, source=f"twilio:{code}")
        if code in DEAD_NUMBER_CODES and number:
            consent.suppress(self._client, number, f"twilio:{code}")
        if status == "delivered":
            properties = {"provider": "twilio", "run_id": ref.run_id, "step_id": ref.step_id}
            properties["idempotency_key"] = ref.idempotency_key
            try:
                self._intake.track(ref.customer_id, "sms.delivered", properties, event_id=f"twilio:{sid}:delivered")
            except InputError as exc:
                log.warning("twilio delivery event refused by intake: %s", exc)

    def _inbound(self, form: dict[str, str]) -> str | None:
        sid, number = form.get("MessageSid") or form.get("SmsSid"), form.get("From")
        kind = keyword_kind(form.get("Body") or "")
        WEBHOOK_EVENTS.labels(provider="twilio", event=f"inbound_{kind}").inc()
        if kind == "help":
            return self._config.sms_help_text
        if kind == "other" or not sid or not number:
            return None
        marker = keys.webhook_seen("twilio", sid)
        if not self._client.set(marker, "1", nx=True, ex=INBOUND_SEEN_TTL):
            return None  # this exact message was handled already (a retry or a replay)
        try:
            self._change_consent(kind, number)
        except Exception:
            self._client.delete(marker)  # so Twilio's retry of this message is handled, not skipped
            raise
        return None

    def _change_consent(self, kind: str, number: str) -> None:
        raw_customer = self._client.get(keys.sms_contact(consent.address_hash(number)))
        customer_id = raw_customer.decode() if isinstance(raw_customer, bytes) else raw_customer
        if kind == "stop":
            consent.suppress(self._client, number, SUPPRESS_REASON)
            if customer_id:
                consent.set_consent(self._client, customer_id, "sms", False, source="twilio:stop")
        else:
            if consent.suppression_reason(self._client, number) == SUPPRESS_REASON:
                consent.unsuppress(self._client, number)
            if customer_id:
                consent.set_consent(self._client, customer_id, "sms", True, source="twilio:start")
