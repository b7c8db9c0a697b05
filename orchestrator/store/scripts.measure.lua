-- KEYS: runs hash, seen-events hash, then the figures shard of each run given.
-- ARGV: event id, now (epoch seconds), seen ttl, then 9 per run: run id, goal met ("1"/"0"), goal
-- value, value not a number ("1"/"0"), order ("1"/"0"), order value, order value not a number,
-- reward redeemed ("1"/"0"), NPS score ("" none).
-- Counts what one event did within the customer's open windows ('~|<run>' in the runs hash, slots
-- in scripts.lib_figures.lua), once per event: the event's mark 'm|<event id>' in the seen hash is
-- set in the same atomic step, so a redelivered event (its journeys part re-done after a crash)
-- counts nothing again.  Each window keeps per customer what the sums of squares need (revenue
-- so far, orders so far) and whether the customer converted, redeemed or answered already (each
-- counted once per entrant).  Returns 1 when counted, 0 for an event counted before.
-- Needs split, incr and the window functions.
if redis.call('HSETNX', KEYS[2], 'm|' .. ARGV[1], '1') == 0 then return 0 end
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[3]))
local at = tonumber(ARGV[2])
local function fmt(x) return string.format('%.12g', x) end
local function num(s, i) return tonumber(slot(s, i)) or 0 end
for i = 0, (#ARGV - 3) / 9 - 1 do
  local B = {}
  for j = 1, 9 do B[j] = ARGV[3 + i * 9 + j] end
  local wf = '~|' .. B[1]
  local rec = redis.call('HGET', KEYS[1], wf)
  if rec then
    local s = split(rec)
    local entered, w = tonumber(s[3], 36), tonumber(s[4], 36)
    local day = day_of(entered)
    local lines = {}
    local function add(name, amount, only)
      for code in string.gmatch(s[2], '[^,]+') do
        local arm = ARMS[code] or code
        if only == nil or arm == only then
          lines[#lines + 1] = 'a|' .. arm .. '|' .. day .. '|' .. name .. '\t' .. amount
        end
      end
    end
    if B[2] == '1' then
      local v, r = tonumber(B[3]), num(s, 9)
      if slot(s, 8) == '' then add('converters', '1'); s[8] = '1' end
      add('conversions', '1')
      if v ~= 0 then
        add('revenue_sum', B[3])
        add('revenue_sumsq', fmt(v * (2 * r + v)))
        s[9] = fmt(r + v)
      end
      if B[4] == '1' then add('non_numeric_values', '1') end
      if slot(s, 10) == '' and slot(s, 7) ~= '' then
        local m = entered + tonumber(s[7])
        if at >= m and at <= m + w then add('converters_after_message', '1', 'treated'); s[10] = '1' end
      end
    end
    if B[5] == '1' then
      local o, q, v = num(s, 11), num(s, 12), tonumber(B[6])
      if o == 0 then add('repeat_purchasers', '1') end
      add('orders', '1')
      if v ~= 0 then
        add('order_revenue_sum', B[6])
        add('order_revenue_sumsq', fmt(v * (2 * q + v)))
        s[12] = fmt(q + v)
      end
      if B[7] == '1' then add('non_numeric_order_values', '1') end
      s[11] = tostring(o + 1)
    end
    if B[8] == '1' and slot(s, 13) == '' then add('redeemers', '1'); s[13] = '1' end
    if B[9] ~= '' and slot(s, 14) == '' then
      local score = tonumber(B[9])
      add('nps_responses', '1')
      if score >= 9 then add('nps_promoters', '1') elseif score <= 6 then add('nps_detractors', '1') end
      s[14] = '1'
    end
    if #lines > 0 then incr(KEYS[3 + i], table.concat(lines, '\n')) end
    redis.call('HSET', KEYS[1], wf, joined(s))
  end
end
return 1
