-- KEYS: 1 send log (zset), 2 consent (hash); both under the customer's hash tag (cluster-safe).
-- ARGV: 1 now ms, 2 log member (idempotency key first), 3 consent key,
--       4 flags: consent mode ('-' skip, '1'/'0' what the profile says), quiet ('1'), record ('1'),
--       5 log horizon ms, then 5 per rule: window ms, max, channel, category, tag ('' = any)
-- Returns one string: a (allowed, recorded), d (allowed, already recorded), p (allowed, not
-- recorded), n (no consent), q (quiet), c<rule number>,<retry ms or -1> (capped).
-- The suppression list is global, so it is read outside (see the module docstring).
-- Few redis.call()s on purpose: each costs more than the Lua around it.
local flags = ARGV[4]
local mode = string.sub(flags, 1, 1)
if mode ~= '-' then
  local flag = redis.call('HGET', KEYS[2], ARGV[3])
  if flag == '0' or (flag ~= '1' and mode ~= '1') then
    return 'n'
  end
end
if string.sub(flags, 2, 2) == '1' then
  return 'q'
end
local record = string.sub(flags, 3, 3) == '1'
local nrules = (#ARGV - 5) / 5
if (not record) and nrules == 0 then
  return 'p'
end
local log = KEYS[1]
local now = tonumber(ARGV[1])
local horizon = tonumber(ARGV[5])
local cutoff = now - horizon
local item = ARGV[2]
local idem = string.match(item, '^(.-)\31')
local entries = redis.call('ZRANGE', log, 0, -1, 'WITHSCORES')
local n = #entries
if n > 0 and tonumber(entries[2]) <= cutoff then
  redis.call('ZREMRANGEBYSCORE', log, '-inf', cutoff)
end
local since, limit, rch, rcat, rtag, counts = {}, {}, {}, {}, {}, {}
for r = 1, nrules do
  local b = 5 + (r - 1) * 5
  since[r] = now - tonumber(ARGV[b + 1])
  limit[r] = tonumber(ARGV[b + 2])
  rch[r] = ARGV[b + 3]
  rcat[r] = ARGV[b + 4]
  local tag = ARGV[b + 5]
  rtag[r] = tag ~= '' and (',' .. tag .. ',') or false
  counts[r] = 0
end
local parsed = {}
for i = 1, n, 2 do
  local score = tonumber(entries[i + 1])
  if score > cutoff then
    local eidem, ech, ecat, etags = string.match(entries[i], '^(.-)\31(.-)\31(.-)\31(.*)$')
    if eidem == idem then
      return 'd'
    end
    for r = 1, nrules do
      local tag = rtag[r]
      if score > since[r] and (rch[r] == '' or rch[r] == ech) and (rcat[r] == '' or rcat[r] == ecat)
          and ((not tag) or (etags and string.find(etags, tag, 1, true))) then
        counts[r] = counts[r] + 1
        parsed[#parsed + 1] = r
        parsed[#parsed + 1] = score
      end
    end
  end
end
local worst, worst_key, worst_retry = 0, 0, 0
for r = 1, nrules do
  local count, lim = counts[r], limit[r]
  if count >= lim then
    local retry, key = -1, math.huge
    if lim > 0 then
      local want, seen = count - lim + 1, 0
      for j = 1, #parsed, 2 do
        if parsed[j] == r then
          seen = seen + 1
          if seen == want then
            retry = parsed[j + 1] + (now - since[r])
            break
          end
        end
      end
      key = retry
    end
    if worst == 0 or key > worst_key then
      worst, worst_key, worst_retry = r, key, retry
    end
  end
end
if worst > 0 then
  return 'c' .. worst .. ',' .. string.format('%d', worst_retry)
end
if record then
  redis.call('ZADD', log, now, item)
  redis.call('PEXPIRE', log, horizon)
end
return 'a'
