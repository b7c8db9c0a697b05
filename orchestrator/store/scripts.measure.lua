-- KEYS: measurement windows hash, seen-events hash, then the figures shard of each run given.
-- ARGV: event id, event epoch seconds, seen ttl, then 9 per run: run id, goal met ("1"/"0"), goal
-- value, value not a number ("1"/"0"), order ("1"/"0"), order value, order value not a number,
-- reward redeemed ("1"/"0"), NPS score ("" none).
-- Counts what one event did within the customer's open windows, once per event: the event's mark
-- 'm|<event id>' in the seen hash is set in the same atomic step, so a redelivered event (its
-- journeys part re-done after a crash) counts nothing again.  Each window keeps per customer what
-- the sums of squares need (revenue so far, orders so far) and whether the customer converted,
-- redeemed or answered already (counted once per entrant).  Window slots (see
-- orchestrator/store/figures.py): 1 journey, 2 version, 3 arms, 4 entry day, 5 entered, 6 goal
-- window, 7 KPI window, 8 expires, 9 trigger event, 10 first message, 11 converted, 12 revenue,
-- 13 converted after the first message, 14 orders, 15 order revenue, 16 redeemed, 17 NPS answered.
-- Returns 1 when counted, 0 for an event counted before.  Needs split, incr.
if redis.call('HSETNX', KEYS[2], 'm|' .. ARGV[1], '1') == 0 then return 0 end
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[3]))
local at = tonumber(ARGV[2])
local function fmt(x) return string.format('%.17g', x) end
for i = 0, (#ARGV - 3) / 9 - 1 do
  local B = {}
  for j = 1, 9 do B[j] = ARGV[3 + i * 9 + j] end
  local rec = redis.call('HGET', KEYS[1], B[1])
  if rec then
    local s = split(rec)
    local lines = {}
    local function add(name, amount, only)
      for arm in string.gmatch(s[3], '[^,]+') do
        if only == nil or arm == only then
          lines[#lines + 1] = 'a|' .. arm .. '|' .. s[4] .. '|' .. name .. '\t' .. amount
        end
      end
    end
    if B[2] == '1' then
      local v, r = tonumber(B[3]), tonumber(s[12])
      if s[11] == '0' then add('converters', '1'); s[11] = '1' end
      add('conversions', '1')
      if v ~= 0 then
        add('revenue_sum', B[3])
        add('revenue_sumsq', fmt(v * (2 * r + v)))
        s[12] = fmt(r + v)
      end
      if B[4] == '1' then add('non_numeric_values', '1') end
      if s[13] == '0' and s[10] ~= '' and at >= tonumber(s[10]) and at <= tonumber(s[10]) + tonumber(s[6]) then
        add('converters_after_message', '1', 'treated')
        s[13] = '1'
      end
    end
    if B[5] == '1' then
      local o, q, v = tonumber(s[14]), tonumber(s[15]), tonumber(B[6])
      if o == 0 then add('repeat_purchasers', '1') end
      add('orders', '1')
      if v ~= 0 then
        add('order_revenue_sum', B[6])
        add('order_revenue_sumsq', fmt(v * (2 * q + v)))
        s[15] = fmt(q + v)
      end
      if B[7] == '1' then add('non_numeric_order_values', '1') end
      s[14] = tostring(o + 1)
    end
    if B[8] == '1' and s[16] == '0' then add('redeemers', '1'); s[16] = '1' end
    if B[9] ~= '' and s[17] == '0' then
      local score = tonumber(B[9])
      add('nps_responses', '1')
      if score >= 9 then add('nps_promoters', '1') elseif score <= 6 then add('nps_detractors', '1') end
      s[17] = '1'
    end
    if #lines > 0 then incr(KEYS[3 + i], table.concat(lines, '\n')) end
    redis.call('HSET', KEYS[1], B[1], table.concat(s, '|'))
  end
end
return 1
