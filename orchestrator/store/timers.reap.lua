-- KEYS: timers, leases.  ARGV: now, limit.  Expired leases go back to the timers, due now.
-- Returns how many went back.
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #expired == 0 then return 0 end
local back = {}
for i = 1, #expired do
  back[#back + 1] = ARGV[1]
  back[#back + 1] = expired[i]
end
redis.call('ZREM', KEYS[2], unpack(expired))
redis.call('ZADD', KEYS[1], unpack(back))
return #expired
