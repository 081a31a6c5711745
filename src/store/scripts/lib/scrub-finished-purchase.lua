--[[
  Deletes the stored purchase once no step of it is pending (shared; included, not called): its
  contact details are kept only while a follow-up needs them.

  scrubIfDone(recordKey, purchaseKey)
  Needs PENDING (lib/pending-states.lua).
]]
local function scrubIfDone(recordKey, purchaseKey)
  local fields = redis.call('HGETALL', recordKey)
  for i = 1, #fields, 2 do
    if string.sub(fields[i], 1, 2) == 's:' and PENDING[cjson.decode(fields[i + 1]).s] then
      return
    end
  end
  redis.call('DEL', purchaseKey)
  -- Legacy layout (store/legacy-layout.ts): earlier versions kept the purchase in the record.
  redis.call('HDEL', recordKey, 'event')
end
