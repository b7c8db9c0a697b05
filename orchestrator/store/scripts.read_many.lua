-- KEYS: profile, consent, runs of each customer.  One reply per customer: {profile, consent, live,
-- last}, or {false} for an unknown one.  A cohort chunk reads in one call per slot.
-- Needs split, index.
local out = {}
for i = 1, #KEYS, 3 do
  local raw = redis.call('GET', KEYS[i])
  if raw then
    local live, last = index(KEYS[i + 2])
    out[#out + 1] = {raw, redis.call('HGETALL', KEYS[i + 1]), live, last}
  else
    out[#out + 1] = {false}
  end
end
return out
