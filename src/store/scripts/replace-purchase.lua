--[[
  Replaces a finished purchase's stored purchase by the part kept after its last step
  (FollowUpStore.trimIfFinished; Lua cannot decompress it), if no step of it is pending and the
  record still holds the purchase the worker read: a step planned again meanwhile keeps the whole
  purchase, and an erased one gets nothing back.

  Input:
    KEYS[1] event record (hash: `s:<stepId>` step records, `p0`, `p1`, … the stored purchase)

    ARGV[1] the encoded purchase as read
    ARGV[2] the encoded part to keep
    ARGV[3] the summary reports show once the whole purchase is gone (JSON: order id, customer
            name), as the record's `m` (a record of an earlier version keeps the one it has)
    ARGV[4] epoch ms the record is kept until at the latest, now that its last step has ended
            (now + RECORD_RETENTION_DAYS: a step cancelled months before its planned time does
            not keep it longer); '' to leave its expiry as it is

  Output: 1 when replaced, 0 when not
]]
--!include lib/base36.lua
--!include lib/step-codec.lua
--!include lib/pending-states.lua
--!include lib/purchase-fields.lua
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  if string.sub(fields[i], 1, 2) == 's:' and PENDING[decodeStep(fields[i + 1]).s] then
    return 0
  end
end
if readPurchase(KEYS[1]) ~= ARGV[1] then return 0 end
storePurchase(KEYS[1], ARGV[2])
redis.call('HSETNX', KEYS[1], 'm', ARGV[3])
if ARGV[4] and ARGV[4] ~= '' then redis.call('PEXPIREAT', KEYS[1], ARGV[4], 'LT') end
return 1
