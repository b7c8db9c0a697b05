-- Many compare-and-sets in one call (a cohort chunk), all of one journey version and one cluster
-- slot (see EnrollmentStore.create_enrollments); one reply, a list of 1/0 (see cas in
-- scripts.lib_cas.lua).
-- KEYS: the figures shard of the journey version, then 4 per enrollment (cas's).
-- ARGV: G, the number of measurement shapes; G times 4 (figures text, window, first sent, split
-- arm, as scripts.cas.lua takes them); then 18 per enrollment: cas's 17 and its shape (1 to G, or
-- 0 for none).  Entrants of a chunk mostly share one shape (arm, steps, day, window), so each
-- shape's counts are added once, times the entrants whose compare-and-set won: a few HINCRBY per
-- call instead of a few per entrant, in the same atomic step, and nothing for a run that existed.
local shapes = tonumber(ARGV[1])
local first = 1 + shapes * 4
local out, won, marks = {}, {}, {}
for g = 1, shapes do
  local s = 1 + (g - 1) * 4
  marks[g] = ARGV[s + 2] ~= '' or ARGV[s + 3] ~= '' or ARGV[s + 4] ~= ''  -- a window to open or stamp
end
for i = 0, (#KEYS - 1) / 4 - 1 do
  local a = first + i * 18
  local ok = cas(1 + i * 4, a)
  out[i + 1] = ok
  local g = tonumber(ARGV[a + 18])
  if ok == 1 and g > 0 then
    won[g] = (won[g] or 0) + 1
    if marks[g] then
      local s = 1 + (g - 1) * 4
      mark_window(KEYS[2 + i * 4], ARGV[a + 3], ARGV[s + 2], ARGV[s + 3], ARGV[s + 4])
    end
  end
end
for g = 1, shapes do
  local text = ARGV[2 + (g - 1) * 4]
  if won[g] and text ~= '' then incr(KEYS[1], text, won[g]) end
end
return out
