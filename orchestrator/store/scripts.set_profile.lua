-- KEYS: profile.  ARGV: the profile JSON read ("" = none), the new JSON.  1 when written, 0 when
-- the profile changed since it was read (the caller reads it again).
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
return 1
