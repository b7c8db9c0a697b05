-- Hand one code of a pool to a run's step, once: the same code on every retry, never one code twice.
-- KEYS[1] free codes (list), KEYS[2] codes handed out (hash key -> code); ARGV[1] the run's key.
local given = redis.call('HGET', KEYS[2], ARGV[1])
if given then
  return given
end
local code = redis.call('LPOP', KEYS[1])
if not code then
  return false
end
redis.call('HSET', KEYS[2], ARGV[1], code)
return code
