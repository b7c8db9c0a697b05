-- Many compare-and-sets in one call (a cohort chunk): the same function per enrollment, 6 KEYS and
-- 22 ARGV each, one reply (a list of 1/0).  Only ever given keys of one cluster slot (see
-- Store.slot_groups).
local out = {}
for i = 0, #KEYS / 6 - 1 do out[i + 1] = cas(i * 6, i * 22) end
return out
