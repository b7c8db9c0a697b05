"""Frequency caps: the one Lua script that checks every rule for a customer and records the send.

Why a script: the check ("fewer than N sends in the window?") and the record ("this is one more")
must be one atomic step, or two workers both see N-1 and both send.  Redis runs a script alone, so
any number of processes and threads sharing the log stay under every cap.

The log is a sorted set per customer (``keys.send_log``, under the ``{customer_id}`` hash tag),
scored by send time in milliseconds.  Each member is ``idempotency key ␟ channel ␟ category ␟
,tag,tag,`` so a rule can count only what it is about (``sms``, ``marketing``, tag ``promo``) and a
retried send is found by its idempotency key and never counted twice.

The same call also reads the suppression list and the consent hash, so the gate costs one round
trip per send.  That makes the script touch one global key (``keys.suppressed()``) beside the
customer's own keys: fine on a single Redis (what Dramatiq supports); on Redis Cluster the
suppression check would have to move into its own pipelined read.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from orchestrator.errors import InputError
from orchestrator.settings import CapRule
from orchestrator.timeparse import format_duration

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MILLISECOND = timedelta(milliseconds=1)
SEP = "\x1f"
#: ARGV slots before the rules, and per rule (see the script).
HEAD = 10
PER_RULE = 5

GATE_SCRIPT = r"""
-- KEYS: 1 send log (zset), 2 consent (hash), 3 suppression list (hash)
-- ARGV: 1 now ms, 2 idempotency key, 3 log member, 4 consent key, 5 address hash ('' = skip),
--       6 consent mode ('-' skip, '1'/'0' what the profile says), 7 quiet ('1'),
--       8 record ('1'), 9 log horizon ms, 10 rule count, then per rule:
--       window ms, max, channel ('' any), category ('' any), tag ('' any)
if ARGV[5] ~= '' and redis.call('HEXISTS', KEYS[3], ARGV[5]) == 1 then
  return {'suppressed'}
end
local mode = ARGV[6]
if mode ~= '-' then
  local flag = redis.call('HGET', KEYS[2], ARGV[4])
  if flag == '0' or (flag ~= '1' and mode ~= '1') then
    return {'no_consent'}
  end
end
if ARGV[7] == '1' then
  return {'quiet'}
end
local record = ARGV[8] == '1'
local nrules = tonumber(ARGV[10])
if (not record) and nrules == 0 then
  return {'allowed', 'pass'}
end
local log = KEYS[1]
local now = tonumber(ARGV[1])
local horizon = tonumber(ARGV[9])
local idem = ARGV[2]
redis.call('ZREMRANGEBYSCORE', log, '-inf', now - horizon)
local entries = redis.call('ZRANGE', log, 0, -1, 'WITHSCORES')
local since, window, limit, rch, rcat, rtag, counts, hits = {}, {}, {}, {}, {}, {}, {}, {}
for r = 1, nrules do
  local base = 10 + (r - 1) * 5
  window[r] = tonumber(ARGV[base + 1])
  since[r] = now - window[r]
  limit[r] = tonumber(ARGV[base + 2])
  rch[r] = ARGV[base + 3]
  rcat[r] = ARGV[base + 4]
  rtag[r] = ARGV[base + 5]
  counts[r] = 0
  hits[r] = {}
end
for i = 1, #entries, 2 do
  local eidem, ech, ecat, etags = string.match(entries[i], '^(.-)\31(.-)\31(.-)\31(.*)$')
  if eidem == idem then
    return {'allowed', 'dup'}
  end
  local score = tonumber(entries[i + 1])
  for r = 1, nrules do
    if score > since[r] and (rch[r] == '' or rch[r] == ech) and (rcat[r] == '' or rcat[r] == ecat)
        and (rtag[r] == '' or (etags and string.find(etags, ',' .. rtag[r] .. ',', 1, true))) then
      local n = counts[r] + 1
      counts[r] = n
      hits[r][n] = score
    end
  end
end
local worst, worst_key, worst_retry = 0, 0, 0
for r = 1, nrules do
  if counts[r] >= limit[r] then
    local retry, key = -1, math.huge
    if limit[r] > 0 then
      retry = hits[r][counts[r] - limit[r] + 1] + window[r]
      key = retry
    end
    if worst == 0 or key > worst_key then
      worst, worst_key, worst_retry = r, key, retry
    end
  end
end
if worst > 0 then
  return {'capped', worst, worst_retry}
end
if record then
  redis.call('ZADD', log, now, ARGV[3])
  redis.call('PEXPIRE', log, horizon)
end
return {'allowed', 'new'}
"""

RELEASE_SCRIPT = r"""
-- KEYS: 1 send log; ARGV: 1 idempotency key.  Removes that send so it no longer counts.
local prefix = ARGV[1] .. '\31'
local entries = redis.call('ZRANGE', KEYS[1], 0, -1)
for i = 1, #entries do
  if string.sub(entries[i], 1, #prefix) == prefix then
    redis.call('ZREM', KEYS[1], entries[i])
    return 1
  end
end
return 0
"""


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
def encode_rule(rule: CapRule) -> tuple[int, int, str, str, str]:
    """The five ARGV values of one rule."""
    return (
        rule.window // MILLISECOND,
        rule.max,
        "" if rule.channel == "any" else rule.channel,
        rule.category or "",
        rule.tag or "",
    )


def describe(rule: CapRule) -> str:
    """A rule in words, for decision reasons: ``cap: at most 2 sms per 1d (tag promo)``."""
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
