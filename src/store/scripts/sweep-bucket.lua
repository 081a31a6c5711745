--[[
  Sweeps one bucket of a packed index (lib/packed-index.lua) of its expired entries, whether or not
  it is written again: the workers walk every bucket once a day (queue/packed-index-sweeper.ts), so an
  entry, a customer id among them, stays in Redis at most about a day past its expiry. A bucket
  left with no entry goes.

  Input:
    KEYS[1] the bucket
    ARGV[1] now (epoch ms)

  Output: how many entries were dropped
]]
--!include lib/packed-index.lua
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local removed = sweepBucket(KEYS[1], tonumber(ARGV[1]))
if redis.call('HLEN', KEYS[1]) <= 1 then redis.call('DEL', KEYS[1]) end
return removed
