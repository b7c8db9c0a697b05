"""The store's Lua scripts and how long its records live.

Scripts touch only keys of one customer (one hash tag) so they stay valid on Redis Cluster.
"""

from __future__ import annotations

#: Finished enrollments are kept this long for reports and webhooks, then expire.
FINISHED_TTL = 90 * 86400
#: Seen event ids are kept this long (a replay older than this is treated as new).
SEEN_TTL = 30 * 86400
PROVIDER_ID_TTL = 30 * 86400

# Splitting a run's core (see orchestrator.store.run_codec) into its slots.
_SPLIT = """
local function split(s)
  local t, i = {}, 1
  while true do
    local j = string.find(s, '|', i, true)
    if not j then t[#t + 1] = string.sub(s, i); return t end
    t[#t + 1] = string.sub(s, i, j - 1)
    i = j + 1
  end
end
"""

# A compare-and-set with timer "keep": the new moments get the stored run's timer, its revision
# made explicit (the run's own changes) and, should the run's entry or update time change, the
# base its due time was written against (``@<entered>@<updated>``).
_KEEP_TIMER = """
local function keep_timer(orev, om, nm)
  local o, n = split(om or ''), split(nm)
  for i = #n + 1, 4 do n[i] = '' end
  local t = o[4] or ''
  if t ~= '' then
    local c = string.find(t, ':', 1, true)
    local r, d = orev, t
    if c then r, d = string.sub(t, 1, c - 1), string.sub(t, c + 1) end
    if string.sub(d, 1, 1) ~= '!' and not string.find(d, '@', 1, true)
       and (o[1] ~= n[1] or (o[2] or '') ~= n[2]) then
      d = d .. '@' .. o[1] .. '@' .. (o[2] or '')
    end
    t = r .. ':' .. d
  end
  n[4] = t
  return table.concat(n, '|')
end
"""

# KEYS: runs hash, finished-run hash, pending-updates hash, delivered hash
# ARGV: expected rev ("-1" = create), new rev, run id, journey id, finished "1"/"0", entry epoch
#       microseconds or "", finished ttl, "1" to keep the stored timer, core (after revision and
#       handle), moments, trigger, outcomes, extra, send (parts "" = none), send to claim ("" none),
#       claim lease expiry, pending profile updates JSON ("" none)
# A live run is the field ``<run>`` (its core: ``rev|handle|…``) of the customer's runs hash, and
# its parts ``<handle>|m|t|o|x|s``: the handle is the smallest number no other live run holds,
# so part names stay a few bytes long.  A finished run moves to its own hash (fields r, m, t, o,
# x, s) that expires after the finished ttl.  Creating fails when the run exists, live or
# finished.  Claiming the new send here (only when the compare-and-set wins) saves the worker that
# sends it inline a round trip; an existing mark (claimed or done) is left alone.  The decision's
# profile updates are recorded under ``<run>|<new rev>`` in the customer's pending hash in the
# same atomic step, so a crash before they are applied leaves them for the re-drive timer (they are
# applied idempotently, see apply_update).
_CAS_FUNCTION = (
    _SPLIT
    + _KEEP_TIMER
    + """
local PARTS = {'m', 't', 'o', 'x', 's'}
local function cas(k, a)
  local R, F, P, D = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4]
  local A = {}
  for i = 1, 17 do A[i] = ARGV[a + i] end
  local run = A[3]
  local live = redis.call('HGET', R, run)
  local cur = live
  if not cur then cur = redis.call('HGET', F, 'r') end
  if A[1] == '-1' then
    if cur then return 0 end
  elseif not cur or string.match(cur, '^[^|]*') ~= A[1] then
    return 0
  end
  local old = live and split(live)
  if A[5] == '1' then
    if live then
      local h = old[2]
      redis.call('HDEL', R, run, h .. '|m', h .. '|t', h .. '|o', h .. '|x', h .. '|s')
    end
    if cur then redis.call('DEL', F) end
    local set = {'r', A[2] .. '||' .. A[9]}
    for i = 1, 5 do
      if A[9 + i] ~= '' then set[#set + 1] = PARTS[i]; set[#set + 1] = A[9 + i] end
    end
    redis.call('HSET', F, unpack(set))
    redis.call('EXPIRE', F, tonumber(A[7]))
  else
    local h
    if live then
      h = old[2]
    else
      h = 1
      while redis.call('HEXISTS', R, h .. '|m') == 1 do h = h + 1 end
      h = tostring(h)
      if cur then redis.call('DEL', F) end
    end
    local moments = A[10]
    if A[8] == '1' and live then moments = keep_timer(old[1], redis.call('HGET', R, h .. '|m'), moments) end
    local set, drop = {run, A[2] .. '|' .. h .. '|' .. A[9], h .. '|m', moments}, {}
    for i = 2, 5 do
      local name = h .. '|' .. PARTS[i]
      if A[9 + i] ~= '' then set[#set + 1] = name; set[#set + 1] = A[9 + i] else drop[#drop + 1] = name end
    end
    redis.call('HSET', R, unpack(set))
    if live and #drop > 0 then redis.call('HDEL', R, unpack(drop)) end
  end
  if A[6] ~= '' then redis.call('HSET', R, '|' .. A[4], A[6]) end
  if A[15] ~= '' then redis.call('HSETNX', D, A[15], 'claimed:' .. A[16]) end
  if A[17] ~= '' then redis.call('HSET', P, run .. '|' .. A[2], A[17]) end
  return 1
end
"""
)
_CAS = _CAS_FUNCTION + "return cas(0, 0)\n"
#: Many compare-and-sets in one call (a cohort chunk): the same function per enrollment, one reply
#: (a list of 1/0).  Only ever given keys of one cluster slot (see Store.slot_groups).
_CAS_MANY = (
    _CAS_FUNCTION
    + """
local out = {}
for i = 0, #KEYS / 4 - 1 do out[i + 1] = cas(i * 4, i * 17) end
return out
"""
)

# KEYS: runs hash.  ARGV: run id, timer revision, due text ("!" and the epoch float).
# The live timer of a run moves without a new revision (a deferred or retried send).  A wait_until
# that read "the timer's due time" (``=``) keeps the old due time it meant.  A run that is not
# live (finished, or gone) is left alone: it has no timer to move.
_TIMER = (
    _SPLIT
    + """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return 0 end
local c = split(cur)
local name = c[2] .. '|m'
local s = split(redis.call('HGET', KEYS[1], name) or '')
for i = #s + 1, 4 do s[i] = '' end
if s[3] == '=' then
  local colon = string.find(s[4], ':', 1, true)
  s[3] = '=' .. (colon and string.sub(s[4], colon + 1) or s[4])
end
if ARGV[2] == c[1] then s[4] = ARGV[3] else s[4] = ARGV[2] .. ':' .. ARGV[3] end
redis.call('HSET', KEYS[1], name, table.concat(s, '|'))
return 1
"""
)

# KEYS: runs hash, then the finished-run hash of each run.  ARGV: run ids.  One reply per run:
# {core, moments, trigger, outcomes, extra, send} (false where absent), live or finished.
_GET = (
    _SPLIT
    + """
local out = {}
for i = 1, #ARGV do
  local core = redis.call('HGET', KEYS[1], ARGV[i])
  if core then
    local h = split(core)[2]
    local parts = redis.call('HMGET', KEYS[1], h .. '|m', h .. '|t', h .. '|o', h .. '|x', h .. '|s')
    out[i] = {core, parts[1], parts[2], parts[3], parts[4], parts[5]}
  else
    out[i] = redis.call('HMGET', KEYS[i + 1], 'r', 'm', 't', 'o', 'x', 's')
  end
end
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

# The customer's live runs (run id, journey id, ...) and last entries (journey, epoch µs, ...) read
# from the runs hash, as orchestrator.store.run_codec.split_runs reads it.
_INDEX = (
    _SPLIT
    + """
local function index(R)
  local all = redis.call('HGETALL', R)
  local live, last = {}, {}
  for i = 1, #all, 2 do
    local f = all[i]
    if string.sub(f, 1, 1) == '|' then
      last[#last + 1] = string.sub(f, 2)
      last[#last + 1] = all[i + 1]
    elseif not string.find(f, '|', 1, true) then
      local j = split(all[i + 1])[6] or ''
      if j == '' then j = string.match(f, '^(.*)%-') or '' end
      live[#live + 1] = f
      live[#live + 1] = j
    end
  end
  return live, last
end
"""
)

# KEYS: profile, consent, runs, seen.  ARGV: event id ("" = none), "1" to mark the event applied
# when unseen (events that do not change the profile need no second call), seen ttl.
# One call instead of several commands: the Python cost of a command is what a cohort pays per customer.
# Reply: {profile, consent, live runs, last entries, seen}.
_READ = (
    _INDEX
    + """
local seen = false
if ARGV[1] ~= '' then
  seen = redis.call('HGET', KEYS[4], ARGV[1])
  if not seen and ARGV[2] == '1' then
    redis.call('HSET', KEYS[4], ARGV[1], 'applied')
    redis.call('EXPIRE', KEYS[4], tonumber(ARGV[3]))
  end
end
local live, last = index(KEYS[3])
return {redis.call('GET', KEYS[1]), redis.call('HGETALL', KEYS[2]), live, last, seen}
"""
)

# KEYS: profile, consent, runs of each customer.  One reply per customer: {profile, consent, live,
# last}, or {false} for an unknown one.  A cohort chunk reads in one call per slot.
_READ_MANY = (
    _INDEX
    + """
local out = {}
for i = 1, #KEYS, 3 do
  local raw = redis.call('GET', KEYS[i])
  if raw then
    local live, last = index(KEYS[i + 2])
    out[#out + 1] = {raw, redis.call('HGETALL', KEYS[i + 1]), live, last}
  else
    out[#out + 1] = {false}
  end
end
return out
"""
)

# KEYS: profile.  ARGV: the profile JSON read ("" = none), the new JSON.  1 when written, 0 when the
# profile changed since it was read (the caller reads it again).
_SET_PROFILE = """
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
return 1
"""

SCRIPTS = {
    "set_profile": _SET_PROFILE,
    "cas": _CAS,
    "cas_many": _CAS_MANY,
    "timer": _TIMER,
    "get": _GET,
    "claim": _CLAIM,
    "apply": _APPLY,
    "read": _READ,
    "read_many": _READ_MANY,
}
