-- incr(K, text): add a figures text ("<field>\t<amount>" lines) to the shard hash K.  Money fields
-- (names ending in "sum" or "sumsq") by HINCRBYFLOAT, every other count by HINCRBY.
local function incr(K, text)
  for f, n in string.gmatch(text, '([^\t\n]+)\t([^\n]+)') do
    if string.sub(f, -3) == 'sum' or string.sub(f, -5) == 'sumsq' then
      redis.call('HINCRBYFLOAT', K, f, n)
    else
      redis.call('HINCRBY', K, f, n)
    end
  end
end
-- keep(W, expires, now): the windows hash W lives at least until epoch second expires (plus a minute).
local function keep(W, expires, now)
  local need = math.ceil(tonumber(expires) - tonumber(now)) + 60
  if need < 60 then need = 60 end
  local ttl = redis.call('TTL', W)
  if ttl < need then redis.call('EXPIRE', W, need) end
end
