-- KEYS: runs hash, then the finished-run hash of each run.  ARGV: run ids.  One reply per run:
-- {core, moments, trigger, outcomes, extra, send} (false where absent), live or finished.
-- Needs split.
local out = {}
for i = 1, #ARGV do
  local core = redis.call('HGET', KEYS[1], ARGV[i])
  if core then
    local h = split(core)[2]
    local parts = redis.call('HMGET', KEYS[1], h .. '|m', h .. '|t', h .. '|o', h .. '|x', h .. '|s')
    out[i] = {core, parts[1], parts[2], parts[3], parts[4], parts[5]}
  else
    out[i] = redis.call('HMGET', KEYS[i + 1], 'r', 'm', 't', 'o', 'x', 's')
  end
end
return out
