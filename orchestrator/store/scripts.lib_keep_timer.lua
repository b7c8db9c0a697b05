-- keep_timer(orev, om, nm): a compare-and-set with timer "keep".  The new moments nm get the stored
-- run's timer (from its moments om), its revision orev made explicit (the run's own changes) and,
-- should the run's entry or update time change, the base its due time was written against
-- ('@<entered>@<updated>').  Needs split.
local function keep_timer(orev, om, nm)
  local o, n = split(om or ''), split(nm)
  for i = #n + 1, 4 do n[i] = '' end
  local t = o[4] or ''
  if t ~= '' then
    local c = string.find(t, ':', 1, true)
    local r, d = orev, t
    if c then r, d = string.sub(t, 1, c - 1), string.sub(t, c + 1) end
    if string.sub(d, 1, 1) ~= '!' and not string.find(d, '@', 1, true)
       and (o[1] ~= n[1] or (o[2] or '') ~= n[2]) then
      d = d .. '@' .. o[1] .. '@' .. (o[2] or '')
    end
    t = r .. ':' .. d
  end
  n[4] = t
  return table.concat(n, '|')
end
