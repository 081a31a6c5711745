--[[
  Once no step of a purchase is pending (shared; included, not called): the stored purchase is
  then replaced by the part kept after the last step, which the worker encodes (Lua cannot
  decompress it): in the same script when the worker passed it (update-step.lua, at a send),
  else by FollowUpStore.trimIfFinished right after. The purchase lives in the record (lib/purchase-fields.lua) and expires
  with it; a stored purchase key of versions before 2026-12-03 is given the record's expiry.
  Versions before 2026-11-30 kept the whole purchase as JSON in the record (field `event`):
  that copy goes at once.

  finishIfDone(recordKey, purchaseKey)  true when no step is pending (the purchase is finished)
  Needs PENDING (lib/pending-states.lua) and decodeStep (lib/step-codec.lua).
]]
local function finishIfDone(recordKey, purchaseKey)
  local fields = redis.call('HGETALL', recordKey)
  for i = 1, #fields, 2 do
    if string.sub(fields[i], 1, 2) == 's:' and PENDING[decodeStep(fields[i + 1]).s] then
      return false
    end
  end
  local expiresAt = redis.call('PEXPIRETIME', recordKey)
  if expiresAt > 0 then redis.call('PEXPIREAT', purchaseKey, expiresAt) end
  -- Legacy layout (store/legacy-layout.ts): earlier versions kept the purchase in the record.
  redis.call('HDEL', recordKey, 'event')
  return true
end
