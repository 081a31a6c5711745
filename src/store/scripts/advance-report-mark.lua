--[[
  Moves an owner's report mark (the local date, YYYY-MM-DD, up to which, exclusive, the reports
  sent to them cover) forward to the end of a report just sent; never back, so a late retry of an
  older run, or a run taken twice, cannot make the next report cover days reported already.

  Input:
    KEYS[1]   the owner's report mark

    ARGV[1]   the local date the sent report's period ends at (exclusive), YYYY-MM-DD
    ARGV[2]   how long the mark is kept (ms)

  Output: 1 when the mark moved forward (or was set), 0 when it was that date or later
]]
local current = redis.call('GET', KEYS[1])
if current and current >= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
