"""The store's Lua scripts and how long its records live.

Scripts touch only keys of one customer (one hash tag) so they stay valid on Redis Cluster.
"""

from __future__ import annotations

#: Finished enrollments are kept this long for reports and webhooks, then expire.
FINISHED_TTL = 90 * 86400
#: Seen event ids are kept this long (a replay older than this is treated as new).
SEEN_TTL = 30 * 86400
PROVIDER_ID_TTL = 30 * 86400

# KEYS: enrollment hash, live hash, last-entry hash, delivered hash
# ARGV: expected rev ("-1" = create), new rev, doc, send json or "", journey id, run id, finished "1"/"0",
#       entered epoch or "", finished ttl, timer ("" keep, "x" drop, else "revision|due"),
#       send to claim ("" none), claim lease expiry, pending profile updates JSON ("" none)
# Claiming the new send here (only when the compare-and-set wins) saves the worker that sends it
# inline a round trip; an existing mark (claimed or done) is left alone.  The decision's profile
# updates are recorded under ``pending:<new rev>`` in the same atomic step, so a crash before they
# are applied leaves them for the re-drive timer (they are applied idempotently, see apply_update).
_CAS_FUNCTION = """
local function cas(k, a)
  local K1, K2, K3, K4 = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4]
  local A = {}
  for i = 1, 13 do A[i] = ARGV[a + i] end
  local cur = redis.call('HGET', K1, 'rev')
  if A[1] == '-1' then
    if cur then return 0 end
  elseif cur ~= A[1] then
    return 0
  end
  redis.call('HSET', K1, 'rev', A[2], 'doc', A[3])
  if A[4] == '' then redis.call('HDEL', K1, 'send') else redis.call('HSET', K1, 'send', A[4]) end
  if A[7] == '1' then
    redis.call('HDEL', K2, A[6])
    redis.call('HDEL', K1, 'timer')
    redis.call('EXPIRE', K1, tonumber(A[9]))
  else
    redis.call('HSET', K2, A[6], A[5])
  end
  if A[8] ~= '' then redis.call('HSET', K3, A[5], A[8]) end
  if A[10] == 'x' then redis.call('HDEL', K1, 'timer')
  elseif A[10] ~= '' and A[7] ~= '1' then redis.call('HSET', K1, 'timer', A[10]) end
  if A[11] ~= '' then redis.call('HSETNX', K4, A[11], 'claimed:' .. A[12]) end
  if A[13] ~= '' then redis.call('HSET', K1, 'pending:' .. A[2], A[13]) end
  return 1
end
"""
_CAS = _CAS_FUNCTION + "return cas(0, 0)\n"
#: Many compare-and-sets in one call (a cohort chunk): the same function per enrollment, one reply
#: (a list of 1/0).  Only ever given keys of one cluster slot (see Store.slot_groups).
_CAS_MANY = (
    _CAS_FUNCTION
    + """
local out = {}
for i = 0, #KEYS / 4 - 1 do out[i + 1] = cas(i * 4, i * 13) end
return out
"""
)

# KEYS: delivered hash.  ARGV: field, now epoch, lease seconds
_CLAIM = """
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v then
  if string.sub(v, 1, 5) == 'done:' then return v end
  local expiry = tonumber(string.sub(v, 9))
  if expiry and expiry > tonumber(ARGV[2]) then return 'busy:' .. tostring(expiry) end
end
redis.call('HSET', KEYS[1], ARGV[1], 'claimed:' .. tostring(tonumber(ARGV[2]) + tonumber(ARGV[3])))
return 'claimed'
"""

# KEYS: profile, seen hash.  ARGV: profile JSON read ("" = none), new JSON, event id, seen ttl.
_APPLY = """
local seen = redis.call('HGET', KEYS[2], ARGV[3])
if seen then return seen end
local cur = redis.call('GET', KEYS[1])
if (cur or '') ~= ARGV[1] then return 'conflict' end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[3], 'applied')
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[4]))
return 'new'
"""

# KEYS: profile, consent, live, last-entry, seen.  ARGV: event id ("" = none), "1" to mark the event
# applied when unseen (events that do not change the profile need no second call).
# One call instead of five commands: the Python cost of a command is what a cohort pays per customer.
_READ = """
local seen = false
if ARGV[1] ~= '' then
  seen = redis.call('HGET', KEYS[5], ARGV[1])
  if not seen and ARGV[2] == '1' then
    redis.call('HSET', KEYS[5], ARGV[1], 'applied')
    redis.call('EXPIRE', KEYS[5], tonumber(ARGV[3]))
  end
end
return {redis.call('GET', KEYS[1]), redis.call('HGETALL', KEYS[2]), redis.call('HGETALL', KEYS[3]),
        redis.call('HGETALL', KEYS[4]), seen}
"""

# KEYS: profile, consent, live, last-entry of each customer.  One reply per customer: {profile,
# consent, live, last}, or {false} for an unknown one.  A cohort chunk reads in one call per slot.
_READ_MANY = """
local out = {}
for i = 1, #KEYS, 4 do
  local raw = redis.call('GET', KEYS[i])
  if raw then
    out[#out + 1] = {raw, redis.call('HGETALL', KEYS[i + 1]), redis.call('HGETALL', KEYS[i + 2]),
                     redis.call('HGETALL', KEYS[i + 3])}
  else
    out[#out + 1] = {false}
  end
end
return out
"""

SCRIPTS = {"cas": _CAS, "cas_many": _CAS_MANY, "claim": _CLAIM, "apply": _APPLY, "read": _READ, "read_many": _READ_MANY}
