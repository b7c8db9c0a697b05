-- cas(k, a): one compare-and-set, its keys from KEYS[k + 1] and its arguments from ARGV[a + 1].
-- KEYS: runs hash, finished-run hash, pending-updates hash, delivered hash
-- ARGV: expected rev ("-1" = create), new rev, run id, journey id, finished "1"/"0", entry epoch
--       microseconds or "", finished ttl, "1" to keep the stored timer, core (after revision and
--       handle), moments, trigger, outcomes, extra, send (parts "" = none), send to claim ("" none),
--       claim lease expiry, pending profile updates JSON ("" none)
-- A live run is the field <run> (its core: rev|handle|...) of the customer's runs hash, and its
-- parts <handle>|m|t|o|x|s: the handle is the smallest number no other live run holds, so part
-- names stay a few bytes long.  A finished run moves to its own hash (fields r, m, t, o, x, s) that
-- expires after the finished ttl.  Creating fails when the run exists, live or finished.  Claiming
-- the new send here (only when the compare-and-set wins) saves the worker that sends it inline a
-- round trip; an existing mark (claimed or done) is left alone.  The decision's profile updates are
-- recorded under <run>|<new rev> in the customer's pending hash in the same atomic step, so a crash
-- before they are applied leaves them for the re-drive timer (they are applied idempotently, see
-- apply_update).  Returns 1 when written, 0 when the compare-and-set lost: the scripts that call it
-- (scripts.cas.lua, scripts.cas_many.lua) add the decision's measurement counts and open or stamp
-- the run's measurement window in the same atomic step, and only when it returned 1, so a
-- re-driven message (whose compare-and-set loses) never counts twice.  Needs split, keep_timer.
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
