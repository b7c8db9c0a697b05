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
START/YES/UNSTOP grant it again, HELP answers with a short TwiML reply.

Twilio's signature has no timestamp and its signed string no separators, so a captured request
stays valid until the auth token changes and can be re-split into other parameters (a new
``MessageSid``) under the same signature.  Every request that changes consent is therefore handled
once by the digest of its *signed string*, kept :data:`REPLAY_TTL`; and each consent change is
dated by its receipt, so an opt-in older than the last opt-out is refused by
:func:`orchestrator.gate.consent.set_consents`.  The form is limited (``twilio_max_body``, 200
fields) before it is parsed, and the numbers and message ids in it are checked like ``/v1``'s.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
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
from orchestrator.http.webhook_input import BadField, message_sid, phone
from orchestrator.language.inputs import check_customer_id
from orchestrator.runtime.message_status import MessageRef, StatusBook
from orchestrator.store import keys

SIGNATURE_HEADER = "X-Twilio-Signature"
#: A base64 HMAC-SHA1 is 28 characters; a longer header is not a signature.
MAX_SIGNATURE_CHARS = 64
#: Form fields Twilio sends: about 20, up to 40 more for an MMS's media; more is not Twilio.
MAX_FORM_FIELDS = 200
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
#: How long a signed request that changed consent is remembered.  Twilio's signature carries no
#: time, so a captured request verifies until the auth token changes: longer than a year, so that
#: with a yearly token rotation no captured request outlives its marker.
REPLAY_TTL = 400 * 86400
CONTACT_TTL = 365 * 86400
SUPPRESS_REASON = "twilio:stop"

log = logging.getLogger("loyaloop.http.twilio")


def signed_string(url: str, params: Iterable[tuple[str, str]]) -> str:
    """What Twilio signs: the URL, then every parameter sorted by name as ``name + value``.

    There are no separators, so one string has many splittings into parameters
    (``MessageSid=SM1`` and ``MessageSi=dSM1`` sign alike): replays are recognised by this string,
    never by a parameter parsed out of it.
    """
    return url + "".join(name + value for name, value in sorted(params))


def compute_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """Twilio's request signature for ``url`` and form ``params`` (repeated names allowed)."""
    digest = hmac.new(auth_token.encode(), signed_string(url, params).encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def signed_url(auth_token: str, urls: Sequence[str], params: Sequence[tuple[str, str]], signature: str) -> str | None:
    """The candidate URL ``signature`` is Twilio's for (every one is checked), or None."""
    matched = None
    for url in urls:
        if hmac.compare_digest(compute_signature(auth_token, url, params).encode(), signature.encode()):
            matched = url
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


@dataclass(frozen=True)
class Verified:
    """A request whose signature holds: its form, the digest of what was signed, when it arrived."""

    form: dict[str, str]
    digest: str
    received: float


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

    async def _verified(self, request: Request) -> Verified | Response:
        received = time.time()
        token = self._config.twilio_auth_token
        if token is None:
            return self._refuse(503, "not_configured", "the Twilio webhooks are not configured (TWILIO_AUTH_TOKEN)")
        signature = request.headers.get(SIGNATURE_HEADER)
        if not signature:  # refused before the body is read
            return self._refuse(403, "unsigned", f"missing {SIGNATURE_HEADER}")
        if len(signature) > MAX_SIGNATURE_CHARS or not signature.isascii():
            return self._refuse(403, "forged", f"{SIGNATURE_HEADER} is not a Twilio signature")
        limit = self._config.twilio_max_body
        body = await read_body(request, limit)
        if body is None:
            return self._refuse(413, "too_large", f"the request body is larger than {limit} bytes")
        try:
            params = parse_qsl(
                body.decode(), keep_blank_values=True, strict_parsing=bool(body), max_num_fields=MAX_FORM_FIELDS
            )
        except (UnicodeDecodeError, ValueError):
            return self._refuse(400, "malformed", f"the webhook body is not a form of at most {MAX_FORM_FIELDS} fields")
        query = f"?{request.url.query}" if request.url.query else ""
        url = signed_url(token, [f"{self._public_url}{request.url.path}{query}", str(request.url)], params, signature)
        if url is None:
            return self._refuse(403, "forged", "the webhook signature does not match")
        digest = hashlib.sha256(signed_string(url, params).encode()).hexdigest()
        return Verified(dict(params), digest, received)

    async def status(self, request: Request) -> Response:
        """A message status callback."""
        verified = await self._verified(request)
        if isinstance(verified, Response):
            return verified
        await run_in_threadpool(self._status, verified)
        return Response(status_code=204)

    async def inbound(self, request: Request) -> Response:
        """An SMS a customer sent to one of our numbers."""
        verified = await self._verified(request)
        if isinstance(verified, Response):
            return verified
        reply = await run_in_threadpool(self._inbound, verified)
        return twiml(reply)

    def _skip(self, what: str, bad: BadField) -> None:
        # Skipped, never written; the field is named, its value (the request's) is not.
        WEBHOOK_REFUSED.labels(provider="twilio", reason="invalid_event").inc()
        log.warning("twilio %s skipped: its %s is not valid", what, bad.field)

    def _first_time(self, verified: Verified) -> str | None:
        """The replay marker of this signed request, newly set; None when it was handled before."""
        marker = keys.webhook_seen("twilio", verified.digest)
        return marker if self._client.set(marker, "1", nx=True, ex=REPLAY_TTL) else None

    def _status(self, verified: Verified) -> None:
        form = verified.form
        status = STATUSES.get((form.get("MessageStatus") or form.get("SmsStatus") or "").lower())
        WEBHOOK_EVENTS.labels(provider="twilio", event=status or "ignored").inc()
        try:
            sid = message_sid(form.get("MessageSid") or form.get("SmsSid"))
            number = phone(form.get("To"), "To")
        except BadField as bad:
            self._skip("status callback", bad)
            return
        if not sid or status is None:
            return
        ref = self._book.lookup(sid)
        if ref is None:
            return  # not ours, or older than the runtime keeps the index
        try:
            check_customer_id(ref.customer_id)
        except InputError:
            self._skip("status callback", BadField("customer_id"))
            return
        code = form.get("ErrorCode") or ""
        marker = None
        if code in OPTED_OUT_CODES or code in DEAD_NUMBER_CODES:
            # A callback that changes consent or suppression is handled once: replaying it (exactly,
            # or re-split into other parameters) changes nothing, not even a withdrawal again.
            marker = self._first_time(verified)
            if marker is None:
                return
        try:
            self._apply_status(ref, status, number, code, sid, verified.received)
        except BaseException:
            if marker is not None:
                self._client.delete(marker)  # so Twilio's retry of this callback is handled, not skipped
            raise

    def _apply_status(
        self, ref: MessageRef, status: str, number: str | None, code: str, sid: str, received: float
    ) -> None:
        self._book.record(ref.idempotency_key, status, received)
        if number:
            self._client.set(keys.sms_contact(consent.address_hash(number)), ref.customer_id, ex=CONTACT_TTL)
        if code in OPTED_OUT_CODES:
            consent.set_consent(self._client, ref.customer_id, "sms", False, source=f"twilio:{code}", at=received)
        if code in DEAD_NUMBER_CODES and number:
            consent.suppress(self._client, number, f"twilio:{code}")
        if status == "delivered":
            properties = {"provider": "twilio", "run_id": ref.run_id, "step_id": ref.step_id}
            properties["idempotency_key"] = ref.idempotency_key
            try:
                self._intake.track(ref.customer_id, "sms.delivered", properties, event_id=f"twilio:{sid}:delivered")
            except InputError as exc:
                log.warning("twilio delivery event refused by intake: its %s is not valid", exc.field or "body")

    def _inbound(self, verified: Verified) -> str | None:
        form = verified.form
        kind = keyword_kind(form.get("Body") or "")
        WEBHOOK_EVENTS.labels(provider="twilio", event=f"inbound_{kind}").inc()
        if kind == "help":
            return self._config.sms_help_text
        if kind == "other":
            return None
        try:
            sid = message_sid(form.get("MessageSid") or form.get("SmsSid"))
            number = phone(form.get("From"), "From")
        except BadField as bad:
            self._skip("inbound message", bad)
            return None
        if not sid or not number:
            return None
        # Keyed on what was signed, not on the MessageSid parsed from it: a re-split replay of an
        # old START shows a new MessageSid but signs the same string.
        marker = self._first_time(verified)
        if marker is None:
            return None  # this exact signed request was handled already (a retry or a replay)
        try:
            self._change_consent(kind, number, verified.received)
        except BaseException:
            self._client.delete(marker)  # so Twilio's retry of this message is handled, not skipped
            raise
        return None

    def _contact(self, number: str) -> str | None:
        """The customer last texted at ``number`` (None when unknown, or not a valid customer id)."""
        raw = self._client.get(keys.sms_contact(consent.address_hash(number)))
        customer_id = raw.decode() if isinstance(raw, bytes) else raw
        if not customer_id:
            return None
        try:
            return check_customer_id(customer_id)
        except InputError:
            self._skip("inbound message", BadField("customer_id"))
            return None

    def _change_consent(self, kind: str, number: str, received: float) -> None:
        customer_id = self._contact(number)
        if kind == "stop":
            consent.suppress(self._client, number, SUPPRESS_REASON)
            if customer_id:
                consent.set_consent(self._client, customer_id, "sms", False, source="twilio:stop", at=received)
            return
        if customer_id and not consent.set_consent(
            self._client, customer_id, "sms", True, source="twilio:start", at=received
        ):
            # Older than the customer's last opt-out: neither consent nor the number comes back.
            WEBHOOK_REFUSED.labels(provider="twilio", reason="out_of_order").inc()
            log.warning("twilio START refused: it is older than the last SMS opt-out")
            return
        if consent.suppression_reason(self._client, number) == SUPPRESS_REASON:
            consent.unsuppress(self._client, number)
