--[[
  Files an unhappy reply for an owner's alert and says when the alert email goes out: at once when
  no alert went to the owner within the window (the window then starts now), else at the end of
  the current window, bundled with whatever else arrives until then.

  Input:
    KEYS[1] the owner's pending alerts (list of reply ids)
    KEYS[2] the owner's alert state (hash: `since` = when the current window started, epoch ms)
    ARGV[1] the reply id
    ARGV[2] now (epoch ms)
    ARGV[3] the window (ms)
    ARGV[4] how long pending alerts are kept unsent (ms)

  Output: { 0, now } send now; { 1, window end } bundled, send at the window's end
]]
local now = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
local since = tonumber(redis.call('HGET', KEYS[2], 'since') or '0')
if now >= since + window then
  redis.call('HSET', KEYS[2], 'since', now)
  redis.call('PEXPIRE', KEYS[2], window + tonumber(ARGV[4]))
  return { 0, now }
end
return { 1, since + window }
