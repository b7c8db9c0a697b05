-- KEYS: list, lease.  ARGV: token, events handled, lease ms, batch size, "1" to hand over.
-- False when the lease was lost (another drainer took the shard: it re-reads these events and
-- finds them done).  Else {events left, next batch...}; handing over (or nothing left) returns no
-- batch and leaves the lease 'queued' (or deleted), so whoever comes next may take the shard.
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return false end
redis.call('LTRIM', KEYS[1], tonumber(ARGV[2]), -1)
local left = redis.call('LLEN', KEYS[1])
if left == 0 then
  redis.call('DEL', KEYS[2])
  return {0}
end
if ARGV[5] == '1' then
  redis.call('SET', KEYS[2], 'queued', 'PX', ARGV[3])
  return {left}
end
redis.call('PEXPIRE', KEYS[2], ARGV[3])
local out = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[4]) - 1)
table.insert(out, 1, left)
return out
