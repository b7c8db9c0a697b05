-- KEYS: delivered hash.  ARGV: field, now epoch, lease seconds.
-- 'done:<outcome>' when the send is done, 'busy:<expiry>' while another claim holds it, else
-- 'claimed' (the claim is taken, or taken over once the previous one expired).
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v then
  if string.sub(v, 1, 5) == 'done:' then return v end
  local expiry = tonumber(string.sub(v, 9))
  if expiry and expiry > tonumber(ARGV[2]) then return 'busy:' .. tostring(expiry) end
end
redis.call('HSET', KEYS[1], ARGV[1], 'claimed:' .. tostring(tonumber(ARGV[2]) + tonumber(ARGV[3])))
return 'claimed'
