-- KEYS: runs hash [, delivered hash, figures shard].  ARGV: run id, timer revision, due text ("!"
-- and the epoch float) [, mark, figures text]: with the measurement part (a send deferred by quiet
-- hours or a cap), the figures text is counted once per mark (a field 'd|<run>|<rev>' of the
-- delivered hash: one send), in the same atomic step, and only for a live run.
-- The live timer of a run moves without a new revision (a deferred or retried send).  A wait_until
-- that read "the timer's due time" ('=') keeps the old due time it meant.  A run that is not live
-- (finished, or gone) is left alone: it has no timer to move.  Needs split, incr.
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return 0 end
local c = split(cur)
local name = c[2] .. '|m'
local s = split(redis.call('HGET', KEYS[1], name) or '')
for i = #s + 1, 4 do s[i] = '' end
if s[3] == '=' then
  local colon = string.find(s[4], ':', 1, true)
  s[3] = '=' .. (colon and string.sub(s[4], colon + 1) or s[4])
end
if ARGV[2] == c[1] then s[4] = ARGV[3] else s[4] = ARGV[2] .. ':' .. ARGV[3] end
redis.call('HSET', KEYS[1], name, table.concat(s, '|'))
if ARGV[4] and redis.call('HSETNX', KEYS[2], ARGV[4], '1') == 1 then incr(KEYS[3], ARGV[5]) end
return 1
