--[[
  Marks an event so no further step of it is sent (full refund); claim-step.lua honours the marker.
  Only on a record that exists: an expired one has nothing left to stop, and a new key here would
  have no expiry.

  Input:
    KEYS[1] event record (hash)
    ARGV[1] the reason, as the cancelled steps will carry it

  Output: 1 when marked, 0 when there is no record
]]
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'stop', ARGV[1])
  return 1
end
return 0
