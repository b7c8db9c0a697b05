-- KEYS: list, lease.  ARGV: lease ms.  1 when the shard has events and nobody drains it (the
-- lease is set 'queued': the caller sends the drain message).
if redis.call('LLEN', KEYS[1]) > 0 and redis.call('SET', KEYS[2], 'queued', 'NX', 'PX', ARGV[1]) then
  return 1
end
return 0
