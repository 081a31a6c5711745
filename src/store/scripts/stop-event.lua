--[[
  Marks an event so no further step of it is sent (full refund), or one step of it (`cx:<stepId>`:
  a step a refund or an operator cancelled while a live worker was sending it, so that a retry or a
  takeover after that attempt cancels instead of sending); claim-step.lua honours both markers.
  Only on a record that exists: an expired one has nothing left to stop, and a new key here would
  have no expiry.

  Input:
    KEYS[1] event record (hash)
    ARGV[1] the reason, as the cancelled steps will carry it (`<code>: <text>`)
    ARGV[2] the marker's field: `stop` for the whole event (the default), `cx:<stepId>` for a step

  Output: 1 when marked, 0 when there is no record
]]
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], ARGV[2] or 'stop', ARGV[1])
  return 1
end
return 0
