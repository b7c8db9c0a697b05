-- KEYS: profile, seen hash.  ARGV: profile JSON read ("" = none), new JSON, event id, seen ttl.
-- What the seen hash holds when the event was applied before, 'conflict' when the profile changed
-- since it was read (the caller reads it again), else 'new' (written, and the event marked seen).
local seen = redis.call('HGET', KEYS[2], ARGV[3])
if seen then return seen end
local cur = redis.call('GET', KEYS[1])
if (cur or '') ~= ARGV[1] then return 'conflict' end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[3], 'applied')
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[4]))
return 'new'
