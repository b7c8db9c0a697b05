-- KEYS: 1 send log; ARGV: 1 idempotency key.  Removes that send so it no longer counts.
local prefix = ARGV[1] .. '\31'
local entries = redis.call('ZRANGE', KEYS[1], 0, -1)
for i = 1, #entries do
  if string.sub(entries[i], 1, #prefix) == prefix then
    redis.call('ZREM', KEYS[1], entries[i])
    return 1
  end
end
return 0
