-- KEYS: status hash.  ARGV: status, rank, at (epoch), ttl.  Records <status>_at always, and the
-- status itself only over one of lower or equal rank; returns the message's status afterwards.
local rank = tonumber(redis.call('HGET', KEYS[1], 'rank') or '0')
redis.call('HSET', KEYS[1], ARGV[1] .. '_at', ARGV[3])
if tonumber(ARGV[2]) >= rank then
  redis.call('HSET', KEYS[1], 'status', ARGV[1], 'rank', ARGV[2])
end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
return redis.call('HGET', KEYS[1], 'status')
