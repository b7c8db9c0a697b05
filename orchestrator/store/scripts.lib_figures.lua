-- incr(K, text, times): add a figures text ("<field>\t<amount>" lines) to the shard hash K, times
-- over (1 when not given: a cohort chunk adds each shape of entry once, times its entrants).  Money
-- fields (names ending in "sum" or "sumsq") by HINCRBYFLOAT once per time, as one at a time would
-- have added them; every other count by one HINCRBY of its amount times the times.
local function incr(K, text, times)
  times = times or 1
  for f, n in string.gmatch(text, '([^\t\n]+)\t([^\n]+)') do
    if string.sub(f, -3) == 'sum' or string.sub(f, -5) == 'sumsq' then
      for _ = 1, times do redis.call('HINCRBYFLOAT', K, f, n) end
    else
      redis.call('HINCRBY', K, f, string.format('%d', tonumber(n) * times))
    end
  end
end
-- A measurement window is the field '~|<run>' of the customer's runs hash; its value's slots (see
-- orchestrator/store/figures.py): 1 version, 2 arms (t, h, c or a split arm, comma-separated),
-- 3 entered (base-36 epoch seconds), 4 goal window, 5 KPI window (base-36 seconds), 6 trigger tag,
-- 7 first message (seconds after entry), 8 converted, 9 revenue, 10 converted after the first
-- message, 11 orders, 12 order revenue, 13 redeemed, 14 NPS answered, 15 journey (when the run id
-- does not name it).  Empty slots are zero or false; trailing empty slots are left out, so a
-- window stays under 64 bytes and the hash a listpack.
local WINDOW_SLOTS = 15
local ARMS = {t = 'treated', h = 'holdout', c = 'control'}
local function slot(s, i) return s[i] or '' end
local function joined(s)
  local last, out = 0, {}
  for i = 1, WINDOW_SLOTS do if slot(s, i) ~= '' then last = i end end
  for i = 1, last do out[i] = slot(s, i) end
  return table.concat(out, '|')
end
-- mark_window(R, run, window, first_sent, split_arm): open the run's measurement window (the
-- window text, when it has one: a new run) in the runs hash R, or stamp on its open window the
-- epoch of a first delivered message (slot 7, once) and a split arm it joined ("" = none of these).
local function mark_window(R, run, window, first_sent, split_arm)
  local wf = '~|' .. run
  if window ~= '' then
    redis.call('HSETNX', R, wf, window)
  elseif first_sent ~= '' or split_arm ~= '' then
    local rec = redis.call('HGET', R, wf)
    if rec then
      local s = split(rec)
      if split_arm ~= '' then s[2] = s[2] .. ',' .. split_arm end
      if first_sent ~= '' and slot(s, 7) == '' then
        s[7] = tostring(math.max(0, math.floor(tonumber(first_sent) - tonumber(s[3], 36))))
      end
      redis.call('HSET', R, wf, joined(s))
    end
  end
end
-- window_end(s): the epoch second after which a (split) window counts nothing.
local function window_end(s)
  local t, w, k = tonumber(s[3], 36), tonumber(s[4], 36), tonumber(s[5], 36)
  local e = t + math.max(w, k)
  if slot(s, 7) ~= '' then e = math.max(e, t + tonumber(s[7]) + w) end
  return e
end
-- day_of(t): the UTC day 'YYYY-MM-DD' of epoch second t (days from civil, proleptic Gregorian).
local function day_of(t)
  local z = math.floor(t / 86400) + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp + 3
  if mp >= 10 then m = mp - 9 end
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  return string.format('%04d-%02d-%02d', y, m, d)
end
