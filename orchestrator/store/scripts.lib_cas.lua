-- cas(k, a): one compare-and-set, its keys from KEYS[k + 1] and its arguments from ARGV[a + 1].
-- KEYS: runs hash, finished-run hash, pending-updates hash, delivered hash, figures shard of the
--       run's journey version
-- ARGV: expected rev ("-1" = create), new rev, run id, journey id, finished "1"/"0", entry epoch
--       microseconds or "", finished ttl, "1" to keep the stored timer, core (after revision and
--       handle), moments, trigger, outcomes, extra, send (parts "" = none), send to claim ("" none),
--       claim lease expiry, pending profile updates JSON ("" none), figures text ("" none), window
--       to open ("" none), epoch of a delivered message to stamp on the window ("" none), split
--       arm to add to the window ("" none)
-- A live run is the field <run> (its core: rev|handle|...) of the customer's runs hash, and its
-- parts <handle>|m|t|o|x|s: the handle is the smallest number no other live run holds, so part
-- names stay a few bytes long.  A finished run moves to its own hash (fields r, m, t, o, x, s) that
-- expires after the finished ttl.  Creating fails when the run exists, live or finished.  Claiming
-- the new send here (only when the compare-and-set wins) saves the worker that sends it inline a
-- round trip; an existing mark (claimed or done) is left alone.  The decision's profile updates are
-- recorded under <run>|<new rev> in the customer's pending hash in the same atomic step, so a crash
-- before they are applied leaves them for the re-drive timer (they are applied idempotently, see
-- apply_update).  The decision's measurement counts are added, and the run's measurement window
-- opened or stamped, in the same atomic step and only when it wins, so a re-driven message (whose
-- compare-and-set loses) never counts twice.  The window ('~|<run>' in the runs hash, see
-- scripts.lib_figures.lua) outlives the run.  Returns 1 when written, 0 when the compare-and-set
-- lost.  Needs split, keep_timer, incr (and the window functions).
local PARTS = {'m', 't', 'o', 'x', 's'}
local function cas(k, a)
  local R, F, P, D = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4]
  local A = {}
  for i = 1, 21 do A[i] = ARGV[a + i] end
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
  if A[18] ~= '' then incr(KEYS[k + 5], A[18]) end
  local wf = '~|' .. run
  if A[19] ~= '' then
    redis.call('HSETNX', R, wf, A[19])
  elseif A[20] ~= '' or A[21] ~= '' then
    local rec = redis.call('HGET', R, wf)
    if rec then
      local s = split(rec)
      if A[21] ~= '' then s[2] = s[2] .. ',' .. A[21] end
      if A[20] ~= '' and slot(s, 7) == '' then
        s[7] = tostring(math.max(0, math.floor(tonumber(A[20]) - tonumber(s[3], 36))))
      end
      redis.call('HSET', R, wf, joined(s))
    end
  end
  return 1
end
