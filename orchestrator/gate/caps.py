"""Frequency caps: the one Lua script that checks every rule for a customer and records the send.

Why a script: the check ("fewer than N sends in the window?") and the record ("this is one more")
must be one atomic step, or two workers both see N-1 and both send.  Redis runs a script alone, so
any number of processes and threads sharing the log stay under every cap.

The log is a sorted set per customer (``keys.send_log``, under the ``{customer_id}`` hash tag),
scored by send time in milliseconds.  Each member is ``idempotency key ␟ channel ␟ category ␟
,tag,tag,`` so a rule can count only what it is about (``sms``, ``marketing``, tag ``promo``) and a
retried send is found by its idempotency key and never counted twice.

The same call also reads the customer's consent hash; every key the script touches carries the
customer's ``{customer_id}`` hash tag, so it runs on Redis Cluster too (a script whose keys span
slots is refused there with CROSSSLOT).  The global suppression list (``keys.suppressed()``) is
therefore read beside the script, by an ``HMGET`` in the same pipeline (one per chunk of sends),
and the gate combines the two answers: still one round trip per send, or per batch pipelined.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from orchestrator.errors import InputError
from orchestrator.language.timeparse import format_duration
from orchestrator.settings import CapRule
from orchestrator.store import batch, lua

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MILLISECOND = timedelta(milliseconds=1)
SEP = "\x1f"
#: ``caps.gate.lua`` decides one send (consent, quiet hours, every cap rule) and records it;
#: ``caps.release.lua`` removes a recorded send by its idempotency key.
GATE = lua.script(__name__, "gate")
RELEASE = lua.script(__name__, "release")

#: Sends per suppression-list ``HMGET``: a chunk of sends rides on about one write of the packer.
CHUNK = batch.CHUNK


def to_ms(moment: datetime) -> int:
    """Exact integer milliseconds since the epoch (no float rounding between workers)."""
    if moment.tzinfo is None:
        raise ValueError(f"now must be timezone-aware, got naive {moment!r}; pass datetime.now(UTC)")
    return (moment - EPOCH) // MILLISECOND


def from_ms(value: int) -> datetime:
    return EPOCH + value * MILLISECOND


def applies(rule: CapRule, channel: str, category: str, tags: Sequence[str]) -> bool:
    """Whether a send (or a logged send) with these attributes falls under ``rule``."""
    return (
        (rule.channel == "any" or rule.channel == channel)
        and (rule.category is None or rule.category == category)
        and (rule.tag is None or rule.tag in tags)
    )


@lru_cache(maxsize=1024)
def encode_rules(rules: tuple[CapRule, ...]) -> tuple[str, ...]:
    """The script's rule arguments: window ms, max, channel, category, tag per rule ('' = any)."""
    out: list[str] = []
    for rule in rules:
        channel = "" if rule.channel == "any" else rule.channel
        out += [str(rule.window // MILLISECOND), str(rule.max), channel, rule.category or "", rule.tag or ""]
    return tuple(out)


@lru_cache(maxsize=1024)
def describe(rule: CapRule) -> str:
    """A rule in words, for decision reasons: ``cap: at most 2 sms messages per 1w (tag promo)``."""
    what = "messages" if rule.channel == "any" else f"{rule.channel} messages"
    narrow = [f"{rule.category}" if rule.category else "", f"tag {rule.tag}" if rule.tag else ""]
    extra = ", ".join(part for part in narrow if part)
    text = f"cap: at most {rule.max} {what} per {format_duration(rule.window)}"
    return f"{text} ({extra})" if extra else text


def member(idempotency_key: str, channel: str, category: str, tags: Sequence[str]) -> str:
    """The log member for one send; refuses values that would break the encoding."""
    if not idempotency_key or SEP in idempotency_key:
        raise InputError(
            f"idempotency key {idempotency_key!r} must be non-empty without \\x1f", field="idempotency_key"
        )
    for tag in tags:
        if not tag or "," in tag or SEP in tag:
            raise InputError(f"journey tag {tag!r} must be a non-empty identifier", field="journey_tags")
    if SEP in channel or SEP in category:
        raise InputError(f"channel {channel!r} / category {category!r} must not contain \\x1f", field="channel")
    return SEP.join((idempotency_key, channel, category, "," + ",".join(sorted(set(tags))) + ","))


def text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
