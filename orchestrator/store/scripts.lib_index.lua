-- index(R): the customer's live runs (run id, journey id, ...), last entries (journey, epoch
-- microseconds, ...) and measurement windows (run id, window, ...) read from the runs hash R, as
-- orchestrator.store.run_codec.split_runs reads it.  Needs split.
local function index(R)
  local all = redis.call('HGETALL', R)
  local live, last, wins = {}, {}, {}
  for i = 1, #all, 2 do
    local f = all[i]
    if string.sub(f, 1, 2) == '~|' then
      wins[#wins + 1] = string.sub(f, 3)
      wins[#wins + 1] = all[i + 1]
    elseif string.sub(f, 1, 1) == '|' then
      last[#last + 1] = string.sub(f, 2)
      last[#last + 1] = all[i + 1]
    elseif not string.find(f, '|', 1, true) then
      local j = split(all[i + 1])[6] or ''
      if j == '' then j = string.match(f, '^(.*)%-') or '' end
      live[#live + 1] = f
      live[#live + 1] = j
    end
  end
  return live, last, wins
end
