--[[
  Once no step of a purchase is pending (shared; included, not called): the stored purchase is kept
  exactly as long as the event record, and the worker then replaces it by the part kept after the
  last step (FollowUpStore.trimIfFinished; Lua cannot decompress it). Earlier versions kept the
  purchase inside the record (field `event`): that copy goes at once.

  finishIfDone(recordKey, purchaseKey)
  Needs PENDING (lib/pending-states.lua).
]]
local function finishIfDone(recordKey, purchaseKey)
  local fields = redis.call('HGETALL', recordKey)
  for i = 1, #fields, 2 do
    if string.sub(fields[i], 1, 2) == 's:' and PENDING[cjson.decode(fields[i + 1]).s] then
      return
    end
  end
  local expiresAt = redis.call('PEXPIRETIME', recordKey)
  if expiresAt > 0 then redis.call('PEXPIREAT', purchaseKey, expiresAt) end
  -- Legacy layout (store/legacy-layout.ts): earlier versions kept the purchase in the record.
  redis.call('HDEL', recordKey, 'event')
end
