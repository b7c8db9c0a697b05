-- KEYS: profile, consent, runs, seen, measurement windows.  ARGV: event id ("" = none), "1" to mark the event applied
-- when unseen (events that do not change the profile need no second call), seen ttl.
-- One call instead of several commands: the Python cost of a command is what a cohort pays per
-- customer.  Reply: {profile, consent, live runs, last entries, seen, open windows}.  Needs split, index.
local seen = false
if ARGV[1] ~= '' then
  seen = redis.call('HGET', KEYS[4], ARGV[1])
  if not seen and ARGV[2] == '1' then
    redis.call('HSET', KEYS[4], ARGV[1], 'applied')
    redis.call('EXPIRE', KEYS[4], tonumber(ARGV[3]))
  end
end
local live, last = index(KEYS[3])
return {redis.call('GET', KEYS[1]), redis.call('HGETALL', KEYS[2]), live, last, seen, redis.call('HGETALL', KEYS[5])}
