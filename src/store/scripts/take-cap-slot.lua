--[[
  Reserves a frequency-cap slot for a follow-up if every cap allows it; a follow-up that already
  holds a slot (a retry) keeps it.

  Input:
    KEYS[1]   the customer's sends on the channel (sorted set: follow-up id by send time)
    ARGV[1]   follow-up id
    ARGV[2]   now (epoch ms)
    ARGV[3..] pairs of (max sends, per ms), one per cap

  Output: 0 when reserved, else the epoch ms at which the tightest cap frees up
]]
local now = tonumber(ARGV[2])
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
local freeAt = 0
local longest = 0
for i = 3, #ARGV, 2 do
  local max = tonumber(ARGV[i])
  local per = tonumber(ARGV[i + 1])
  if per > longest then longest = per end
  local inWindow = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. (now - per), '+inf', 'WITHSCORES')
  local count = #inWindow / 2
  if count >= max then
    local oldestBlocking = tonumber(inWindow[(count - max) * 2 + 2])
    local frees = oldestBlocking + per
    if frees > freeAt then freeAt = frees end
  end
end
if freeAt > 0 then return freeAt end
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - longest)
redis.call('PEXPIRE', KEYS[1], longest)
return 0
