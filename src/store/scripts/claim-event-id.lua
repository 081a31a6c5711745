--[[
  Claims an event id for one content (refunds and opt-outs; purchases do it in
  record-purchase.lua): the first event with the id keeps its fingerprint in the event record for as
  long as the record lives; the same content again is a repeat; other content is a conflict.

  Input:
    KEYS[1] event record (hash; field `f` = the fingerprint)
    ARGV[1] the event's fingerprint
    ARGV[2] keep a new record this long (ms)

  Output: 1 first sighting, 0 a repeat of the same event, -1 the id was used for other content
]]
local fingerprint = redis.call('HGET', KEYS[1], 'f')
-- One of 22 characters (key layout 4 and before) is the same event's when it begins with this one.
if fingerprint and string.sub(fingerprint, 1, #ARGV[1]) == ARGV[1] then return 0 end
if fingerprint then return -1 end
if redis.call('EXISTS', KEYS[1]) == 1 then
  -- A purchase's record from before fingerprints were kept: a refund or opt-out cannot share it.
  return -1
end
redis.call('HSET', KEYS[1], 'f', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
