-- KEYS: list, lease.  ARGV: token, lease ms.  A failed drainer hands its shard back at once.
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('SET', KEYS[2], 'queued', 'PX', ARGV[2]) end
return 0
