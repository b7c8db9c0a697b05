"""Consent per customer and channel, and the global suppression list of addresses.

Two different promises, kept apart on purpose:

* **consent** is the customer's choice about *marketing* on a channel (``keys.consent``: channel →
  ``"1"``/``"0"``, plus an append-only history stream as proof of who changed it, when and how).
  Withdrawing it stops marketing; receipts and password resets still arrive.
* **suppression** is about an *address* that must never be used again (hard bounce, spam complaint,
  carrier block).  It blocks every send to that address, transactional included.  Addresses are
  stored only as SHA-256 digests of their normalized form, so the list holds no address in clear.

Every door that changes consent (identify, the Twilio and SendGrid webhooks, the unsubscribe page
and ``loyaloop unsubscribe``, a provider's permanent error) goes through :func:`set_consent` or
:func:`set_consents`: the rules of a change live here, the one write that keeps the history is
the store's :func:`~orchestrator.store.profiles.queue_consent` (a profile save that changes consent
uses it too).  Nothing else writes these keys.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections.abc import Mapping
from typing import Any

import redis

from orchestrator.errors import InputError
from orchestrator.store import keys
from orchestrator.store.profiles import CONSENT_HISTORY_LENGTH, queue_consent

_PHONE = re.compile(r"^\+?[\d\s().-]{5,}$")
_PHONE_NOISE = re.compile(r"[\s().-]")
#: History entries kept per customer (the newest win); enough for any audit, bounded for Redis.
HISTORY_LENGTH = CONSENT_HISTORY_LENGTH


def normalize_address(address: str) -> str:
    """The canonical form two spellings of one address share.

    E-mail addresses are lower-cased (providers report bounces in any case), phone numbers lose
    their spacing and punctuation (``+31 6-1234 5678`` → ``+31612345678``); anything else (a push
    token) is only stripped, because tokens are case-sensitive.
    """
    text = address.strip()
    if "@" in text:
        return text.lower()
    if _PHONE.match(text):
        return _PHONE_NOISE.sub("", text)
    return text


def address_hash(address: str) -> str:
    """Hex SHA-256 of the normalized address: the only form in which an address is stored."""
    return hashlib.sha256(normalize_address(address).encode("utf-8")).hexdigest()


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def set_consent(
    client: redis.Redis, customer_id: str, channel: str, granted: bool, *, source: str, at: float | None = None
) -> bool:
    """Record the customer's marketing consent on ``channel`` and why (``source``: ``unsubscribe``, ``api`` …).

    The hash write and the history entry happen in one MULTI so the proof can never disagree
    with the state.  Every call is recorded, also one that repeats the current choice: each is a
    request the customer (or a provider on their behalf) made.  ``at`` dates a change that was
    made earlier than now (see :func:`set_consents`); False when an opt-in was refused for being
    older than the opt-out it would undo.
    """
    return bool(set_consents(client, customer_id, {channel: granted}, source=source, at=at))


def set_consents(
    client: redis.Redis, customer_id: str, changes: Mapping[str, bool], *, source: str, at: float | None = None
) -> dict[str, bool]:
    """Record several channels' consent at once (``identify`` with ``consent: {...}``), one history
    entry per channel, all in one MULTI; returns the changes recorded.

    ``at`` (epoch seconds) is when the change was made, for a door that learns of it later or out of
    order: a provider's own event time, or the moment a webhook was received.  Such a change is
    ordered against the history: an **opt-in older than the channel's last opt-out is refused**, so a
    replayed or delayed ``START`` can never undo a ``STOP`` that came after it.  An opt-out always
    applies (a late one errs towards sending less, never more).  Without ``at`` the change is made
    now, by the customer or on their word, and applies as it is.
    """
    if not customer_id:
        raise InputError("a consent change needs a customer id", field="customer_id")
    for channel in changes:
        if not channel:
            raise InputError("a consent change needs a channel such as 'email'", field="channel")
    if not source:
        raise InputError("say where a consent change came from (source='unsubscribe', 'api', …)", field="source")
    if at is not None and not math.isfinite(at):
        raise InputError(f"a consent change's time must be epoch seconds, got {at!r}", field="at")
    wanted = {channel: bool(granted) for channel, granted in changes.items()}
    if not wanted:
        return {}
    if at is None or not any(wanted.values()):
        pipe = client.pipeline(transaction=True)
        queue_consent(pipe, customer_id, wanted, source=source, at=time.time() if at is None else at)
        pipe.execute()
        return wanted
    return _set_in_order(client, customer_id, wanted, source=source, at=at)


def _set_in_order(
    client: redis.Redis, customer_id: str, wanted: dict[str, bool], *, source: str, at: float
) -> dict[str, bool]:
    """Write ``wanted`` leaving out opt-ins older than their channel's last opt-out, read from the
    history under WATCH so an opt-out written meanwhile is seen (the MULTI is then retried)."""
    history = keys.consent_history(customer_id)
    with client.pipeline(transaction=True) as pipe:
        while True:
            try:
                pipe.watch(history)  # type: ignore[no-untyped-call]
                last_out = _last_opt_outs(pipe.xrevrange(history), set(wanted))
                applied = {
                    channel: granted
                    for channel, granted in wanted.items()
                    if not granted or at >= last_out.get(channel, -math.inf)
                }
                if not applied:
                    return applied
                pipe.multi()
                queue_consent(pipe, customer_id, applied, source=source, at=at)
                pipe.execute()
                return applied
            except redis.WatchError:
                continue


def _last_opt_outs(entries: Any, channels: set[str]) -> dict[str, float]:
    """The time of each channel's newest opt-out in history ``entries`` (newest first)."""
    found: dict[str, float] = {}
    for _id, fields in entries:
        entry = {_text(k): _text(v) for k, v in fields.items()}
        channel = entry.get("channel", "")
        if channel in channels and entry.get("granted") == "0":
            try:
                moment = float(entry.get("at", ""))
            except ValueError:
                continue
            if math.isfinite(moment) and moment > found.get(channel, -math.inf):
                found[channel] = moment
    return found


def read_consent(client: redis.Redis, customer_id: str) -> dict[str, bool]:
    """The customer's recorded consent per channel; a channel never recorded is absent (not given)."""
    raw: dict[Any, Any] = client.hgetall(keys.consent(customer_id))  # type: ignore[assignment,unused-ignore]
    return {_text(channel): _text(flag) == "1" for channel, flag in raw.items()}


def consent_history(client: redis.Redis, customer_id: str) -> list[dict[str, str]]:
    """Every recorded consent change for the customer, oldest first (for audits and support)."""
    entries: list[Any] = client.xrange(keys.consent_history(customer_id))  # type: ignore[assignment]
    return [{_text(k): _text(v) for k, v in fields.items()} for _id, fields in entries]


def suppress(client: redis.Redis, address: str, reason: str) -> None:
    """Never send to ``address`` again, on any channel or journey, until :func:`unsuppress`."""
    if not address or not address.strip():
        raise InputError("cannot suppress an empty address", field="address")
    client.hset(keys.suppressed(), address_hash(address), reason or "unspecified")


def unsuppress(client: redis.Redis, address: str) -> bool:
    """Lift a suppression (a customer fixed their mailbox); ``False`` when it was not suppressed."""
    return bool(client.hdel(keys.suppressed(), address_hash(address)))


def is_suppressed(client: redis.Redis, address: str) -> bool:
    """Whether ``address`` is on the suppression list."""
    return bool(client.hexists(keys.suppressed(), address_hash(address)))


def suppression_reason(client: redis.Redis, address: str) -> str | None:
    """Why ``address`` was suppressed, or ``None``."""
    value = client.hget(keys.suppressed(), address_hash(address))
    return None if value is None else _text(value)
