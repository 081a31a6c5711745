--[[
  Reserves a frequency-cap slot for a follow-up if every cap allows it, at `now`. A follow-up that
  already holds a slot (a retry, a send held back by a window after it took one) is checked again
  against the others' sends and, when allowed, moved to `now`: its send counts from when it goes,
  so a retry that goes hours later cannot bring a second message inside a cap's period.

  Input:
    KEYS[1]   the customer's sends on the channel (sorted set: follow-up id by send time)
    ARGV[1]   follow-up id
    ARGV[2]   now (epoch ms)
    ARGV[3..] pairs of (max sends, per ms), one per cap

  Output: 0 when reserved, else the epoch ms at which the tightest cap frees up (a slot the
          follow-up held stays held then; the caller gives it back if it gives up)
]]
local now = tonumber(ARGV[2])
local freeAt = 0
local longest = 0
for i = 3, #ARGV, 2 do
  local max = tonumber(ARGV[i])
  local per = tonumber(ARGV[i + 1])
  if per > longest then longest = per end
  local inWindow = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. (now - per), '+inf', 'WITHSCORES')
  -- The others' sends, oldest first (this follow-up's own slot does not block it).
  local times = {}
  for j = 1, #inWindow, 2 do
    if inWindow[j] ~= ARGV[1] then times[#times + 1] = tonumber(inWindow[j + 1]) end
  end
  local count = #times
  if count >= max then
    local frees = times[count - max + 1] + per
    if frees > freeAt then freeAt = frees end
  end
end
if freeAt > 0 then return freeAt end
local held = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]))
if not held or held < now then redis.call('ZADD', KEYS[1], now, ARGV[1]) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - longest)
redis.call('PEXPIRE', KEYS[1], longest)
return 0
