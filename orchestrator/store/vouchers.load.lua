-- Add codes to a pool; a code ever loaded before (free or handed out) is skipped, so loading the
-- same file twice, or an overlapping export, never puts a code in the pool twice.
-- KEYS[1] free codes (list), KEYS[2] every code ever loaded (set); ARGV the codes.
-- Returns how many were added.
local added = 0
for _, code in ipairs(ARGV) do
  if redis.call('SADD', KEYS[2], code) == 1 then
    redis.call('RPUSH', KEYS[1], code)
    added = added + 1
  end
end
return added
