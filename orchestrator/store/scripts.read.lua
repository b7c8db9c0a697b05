-- KEYS: profile, consent, runs, seen.  ARGV: event id ("" = none), "1" to mark the event applied
-- when unseen (events that do not change the profile need no second call), seen ttl, now (epoch
-- seconds of the runtime's clock; "" = never drop a window).
-- One call instead of several commands: the Python cost of a command is what a cohort pays per
-- customer.  Reply: {profile, consent, live runs, last entries, seen, open windows}; windows
-- closed by now are dropped from the runs hash here.  Needs split, index, window_end.
local seen = false
if ARGV[1] ~= '' then
  seen = redis.call('HGET', KEYS[4], ARGV[1])
  if not seen and ARGV[2] == '1' then
    redis.call('HSET', KEYS[4], ARGV[1], 'applied')
    redis.call('EXPIRE', KEYS[4], tonumber(ARGV[3]))
  end
end
local live, last, wins = index(KEYS[3])
if ARGV[4] and ARGV[4] ~= '' and #wins > 0 then
  local now, open = tonumber(ARGV[4]), {}
  for i = 1, #wins, 2 do
    if window_end(split(wins[i + 1])) < now then
      redis.call('HDEL', KEYS[3], '~|' .. wins[i])
    else
      open[#open + 1] = wins[i]
      open[#open + 1] = wins[i + 1]
    end
  end
  wins = open
end
return {redis.call('GET', KEYS[1]), redis.call('HGETALL', KEYS[2]), live, last, seen, wins}
