-- GCRA (the generic cell rate algorithm): one "theoretical arrival time" (TAT) per bucket.
--
-- KEYS[1]  the bucket's key (one key: the script is valid on Redis Cluster)
-- ARGV[1]  microseconds between two events at the steady rate (the emission interval), >= 1
-- ARGV[2]  events allowed at once (the burst), >= 1
-- ARGV[3]  events this call asks for (the cost), >= 1
--
-- Returns 0 when the events are allowed (and counted), else the microseconds until they would be;
-- a refused call changes nothing.
--
-- Times are integer microseconds on the Redis clock.  Every value stays below 2^53, so Lua's
-- doubles hold them exactly, and the TAT is written with '%d': tostring() would print
-- 1.7333812345802e+15, dropping the last digits, and the limit would drift with every write.
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local allowed_at = tat + (cost - burst) * interval
if allowed_at > now then
  return allowed_at - now
end
local new_tat = tat + cost * interval
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1000)
return 0
