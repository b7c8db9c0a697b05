-- KEYS: timers, leases.  ARGV: now, lease expiry, limit.  Moves up to limit due timers, earliest
-- first, into the lease set scored by the lease expiry.  Returns member, due, member, due, ...
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[3]))
if #due == 0 then return due end
local members = {}
local leased = {}
for i = 1, #due, 2 do
  members[#members + 1] = due[i]
  leased[#leased + 1] = ARGV[2]
  leased[#leased + 1] = due[i]
end
redis.call('ZREM', KEYS[1], unpack(members))
redis.call('ZADD', KEYS[2], unpack(leased))
return due
