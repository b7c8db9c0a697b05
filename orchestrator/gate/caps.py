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

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import redis

from orchestrator.errors import InputError
from orchestrator.language.timeparse import format_duration
from orchestrator.settings import CapRule

_hiredis_pack: Callable[[tuple[Any, ...]], bytes] | None
try:
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # pragma: no cover - hiredis is a dependency, but the gate works without it
    _hiredis_pack = None

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MILLISECOND = timedelta(milliseconds=1)
SEP = "\x1f"
GATE_SCRIPT = r"""
-- KEYS: 1 send log (zset), 2 consent (hash); both under the customer's hash tag (cluster-safe).
-- ARGV: 1 now ms, 2 log member (idempotency key first), 3 consent key,
--       4 flags: consent mode ('-' skip, '1'/'0' what the profile says), quiet ('1'), record ('1'),
--       5 log horizon ms, then 5 per rule: window ms, max, channel, category, tag ('' = any)
-- Returns one string: a (allowed, recorded), d (allowed, already recorded), p (allowed, not
-- recorded), n (no consent), q (quiet), c<rule number>,<retry ms or -1> (capped).
-- The suppression list is global, so it is read outside (see the module docstring).
-- Few redis.call()s on purpose: each costs more than the Lua around it.
local flags = ARGV[4]
local mode = string.sub(flags, 1, 1)
if mode ~= '-' then
  local flag = redis.call('HGET', KEYS[2], ARGV[3])
  if flag == '0' or (flag ~= '1' and mode ~= '1') then
    return 'n'
  end
end
if string.sub(flags, 2, 2) == '1' then
  return 'q'
end
local record = string.sub(flags, 3, 3) == '1'
local nrules = (#ARGV - 5) / 5
if (not record) and nrules == 0 then
  return 'p'
end
local log = KEYS[1]
local now = tonumber(ARGV[1])
local horizon = tonumber(ARGV[5])
local cutoff = now - horizon
local item = ARGV[2]
local idem = string.match(item, '^(.-)\31')
local entries = redis.call('ZRANGE', log, 0, -1, 'WITHSCORES')
local n = #entries
if n > 0 and tonumber(entries[2]) <= cutoff then
  redis.call('ZREMRANGEBYSCORE', log, '-inf', cutoff)
end
local since, limit, rch, rcat, rtag, counts = {}, {}, {}, {}, {}, {}
for r = 1, nrules do
  local b = 5 + (r - 1) * 5
  since[r] = now - tonumber(ARGV[b + 1])
  limit[r] = tonumber(ARGV[b + 2])
  rch[r] = ARGV[b + 3]
  rcat[r] = ARGV[b + 4]
  local tag = ARGV[b + 5]
  rtag[r] = tag ~= '' and (',' .. tag .. ',') or false
  counts[r] = 0
end
local parsed = {}
for i = 1, n, 2 do
  local score = tonumber(entries[i + 1])
  if score > cutoff then
    local eidem, ech, ecat, etags = string.match(entries[i], '^(.-)\31(.-)\31(.-)\31(.*)$')
    if eidem == idem then
      return 'd'
    end
    for r = 1, nrules do
      local tag = rtag[r]
      if score > since[r] and (rch[r] == '' or rch[r] == ech) and (rcat[r] == '' or rcat[r] == ecat)
          and ((not tag) or (etags and string.find(etags, tag, 1, true))) then
        counts[r] = counts[r] + 1
        parsed[#parsed + 1] = r
        parsed[#parsed + 1] = score
      end
    end
  end
end
local worst, worst_key, worst_retry = 0, 0, 0
for r = 1, nrules do
  local count, lim = counts[r], limit[r]
  if count >= lim then
    local retry, key = -1, math.huge
    if lim > 0 then
      local want, seen = count - lim + 1, 0
      for j = 1, #parsed, 2 do
        if parsed[j] == r then
          seen = seen + 1
          if seen == want then
            retry = parsed[j + 1] + (now - since[r])
            break
          end
        end
      end
      key = retry
    end
    if worst == 0 or key > worst_key then
      worst, worst_key, worst_retry = r, key, retry
    end
  end
end
if worst > 0 then
  return 'c' .. worst .. ',' .. string.format('%d', worst_retry)
end
if record then
  redis.call('ZADD', log, now, item)
  redis.call('PEXPIRE', log, horizon)
end
return 'a'
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


#: Commands packed and written per socket write while streaming a pipeline.
CHUNK = 128


def evalsha_many(client: redis.Redis, sha: str, commands: Iterable[tuple[Any, ...]]) -> list[Any]:
    """Run ``EVALSHA sha *command`` for every command as one pipeline (see :func:`pipeline_many`)."""
    return pipeline_many(client, (("EVALSHA", sha, *command) for command in commands))


def pipeline_many(client: redis.Redis, commands: Iterable[tuple[Any, ...]]) -> list[Any]:
    """Run every command (name first) as one pipeline; error replies come back as exceptions.

    On a real server the commands are written in chunks as they are produced, and the replies to
    one chunk are read while Redis works on the next, so Redis is busy while Python prepares and
    parses: still one round trip of latency, but Python and Redis overlap instead of taking turns.
    Any other client (fakeredis in the embedded demo) gets an ordinary redis-py pipeline.
    """
    pool = getattr(client, "connection_pool", None)
    if pool is None or not _streams(pool.connection_class):
        pipe = client.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)  # type: ignore[no-untyped-call]
        return list(pipe.execute(raise_on_error=False))
    try:
        connection = pool.get_connection()
    except TypeError:  # redis-py before 5.3 wants a command name
        connection = pool.get_connection("EVALSHA")  # any name: it only picks a pool
    sent = 0
    results: list[Any] = []

    def read(upto: int) -> None:
        while len(results) < upto:
            try:
                results.append(connection.read_response())
            except redis.exceptions.ResponseError as error:
                results.append(error)

    try:
        chunk: list[tuple[Any, ...]] = []
        for command in commands:
            chunk.append(command)
            if len(chunk) >= CHUNK:
                connection.send_packed_command(_pack(connection, chunk), check_health=sent == 0)
                # Collect the chunk before this one, which Redis has (nearly) finished, while it
                # works on the one just sent.
                read(sent)
                sent += len(chunk)
                chunk = []
        if chunk:
            connection.send_packed_command(_pack(connection, chunk), check_health=sent == 0)
            sent += len(chunk)
        read(sent)
        return results
    except BaseException:
        # Replies may still be in flight: this connection cannot be reused.
        connection.disconnect()
        raise
    finally:
        pool.release(connection)


def _pack(connection: Any, chunk: list[tuple[Any, ...]]) -> Any:
    """RESP bytes for a chunk of commands: hiredis's C packer when present, else redis-py's."""
    if _hiredis_pack is None:
        return connection.pack_commands(chunk)
    return [b"".join([_hiredis_pack(command) for command in chunk])]


def _streams(connection_class: type) -> bool:
    """A redis-py connection to a real server (fakeredis subclasses it but has no socket)."""
    if connection_class.__module__.startswith("fakeredis"):
        return False
    return issubclass(connection_class, redis.connection.AbstractConnection)


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
