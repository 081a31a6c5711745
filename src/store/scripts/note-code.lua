--[[
  Notes a discount code issued to a customer in their history, so that an erasure finds it also
  after the record of the purchase whose step sent it has gone (a code is kept until it expires
  plus the attribution window, which can be longer than RECORD_RETENTION_DAYS): field
  `dc:<code hash>` = when the code's stored form expires (epoch ms). The customer's codes past
  that are taken out here. Only in a history that exists: a new key here would have no expiry,
  and an erased customer has none (their sender revokes the code itself, settle-sent.lua).

  Input:
    KEYS[1] the customer's history (hash)

    ARGV[1] the code's hash (discountCodeHash, as the step record and the code's key name it)
    ARGV[2] when the code's stored form expires (epoch ms)
    ARGV[3] now (epoch ms)

  Output: 1 noted, 0 no history to note it in
]]
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local now = tonumber(ARGV[3])
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  if string.sub(fields[i], 1, 3) == 'dc:' and (tonumber(fields[i + 1]) or 0) < now then
    redis.call('HDEL', KEYS[1], fields[i])
  end
end
redis.call('HSET', KEYS[1], 'dc:' .. ARGV[1], ARGV[2])
return 1
