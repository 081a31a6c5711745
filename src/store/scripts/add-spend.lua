--[[
  Adds what a message costs to its channel's spend of the month, unless the budget is reached and
  the message must respect it.

  Input:
    KEYS[1]  the channel's spend of the month (micros of the default currency)

    ARGV[1]  the message's cost (micros; 0 only checks)
    ARGV[2]  the monthly budget (micros; 0 = none)
    ARGV[3]  1 when a reached budget stops this message, else 0
    ARGV[4]  keep the month's count this long (ms)

  Output: {1 when added else 0, spend before, spend after}
]]
local before = tonumber(redis.call('GET', KEYS[1]) or '0')
local budget = tonumber(ARGV[2])
if ARGV[3] == '1' and budget > 0 and before >= budget then return {0, before, before} end
local after = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {1, before, after}
