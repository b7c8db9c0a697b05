-- Many compare-and-sets in one call (a cohort chunk): the same function per enrollment, 5 KEYS and
-- 21 ARGV each, one reply (a list of 1/0).  Only ever given keys of one cluster slot (see
-- Store.slot_groups).
local out = {}
for i = 0, #KEYS / 5 - 1 do out[i + 1] = cas(i * 5, i * 21) end
return out
