-- KEYS: list, lease.  ARGV: token, lease ms, batch size.  False when another drainer holds the
-- shard; else the first events (none: the shard is empty and its lease is gone).
local holder = redis.call('GET', KEYS[2])
if holder and holder ~= 'queued' and holder ~= ARGV[1] then return false end
if redis.call('LLEN', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[2])
  return {}
end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[3]) - 1)
