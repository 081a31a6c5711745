--[[
  Replaces a voice call's record (store/call-scripts.ts) only if it is still the one its writer
  read: the call's webhooks (a key press, the final status callback, a pick-up) come in no set
  order, sometimes at the same moment, and each works out its change from what it read. A record
  changed meanwhile is not written: its writer reads it again and works its change out anew, so
  that no webhook's write is lost under another's (a score under the call's end, or the end under
  the score). The record keeps its expiry; `keepMs` (the call's end) shortens it, never lengthens.
  A record that names a call anew (its callSid, or a second call's outcome) binds that call to the
  follow-up in the same step, so that no other follow-up's retry takes it for its own
  (adoptable-call.lua).

  Input:
    KEYS[1]     the call's record (string: JSON)
    KEYS[1 + i] i from 1, each call the record written names and the record read did not: that
                call's binding (string: the follow-up id)

    ARGV[1] the record as its writer read it (exact bytes)
    ARGV[2] the record to write
    ARGV[3] keep it at most this long from now (ms); 0: keep its expiry
    ARGV[4] with bindings: the follow-up id
    ARGV[5] with bindings: keep each binding this long (ms)

  Output: 1 written, 0 changed since it was read (nothing written), -1 gone (nothing written)
]]
local current = redis.call('GET', KEYS[1])
if not current then return -1 end
if current ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
local keepMs = tonumber(ARGV[3])
if keepMs > 0 then
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl < 0 or ttl > keepMs then redis.call('PEXPIRE', KEYS[1], keepMs) end
end
for i = 2, #KEYS do redis.call('SET', KEYS[i], ARGV[4], 'PX', ARGV[5]) end
return 1
