-- KEYS: list, lease.  ARGV: lease ms, records...  Returns 1 when a drain message must be sent (no
-- drain was queued or running), 0 when one will see these events anyway.
redis.call('RPUSH', KEYS[1], unpack(ARGV, 2))
if redis.call('SET', KEYS[2], 'queued', 'NX', 'PX', ARGV[1]) then return 1 end
return 0
