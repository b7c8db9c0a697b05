-- KEYS: lease.  ARGV: token, lease ms.  Keeps a working drainer's lease (1), unless it was lost (0).
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
