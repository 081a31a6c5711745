--[[
  Takes a customer out of some buckets of the address index (store/customer-index.ts): every
  entry that names them, under whichever address. An entry's name is 11 characters of its
  address's keyed hash followed by the customer id (remember-customer.lua), so an entry is theirs
  exactly when what follows those characters is their id. Erasure runs it over every bucket, a
  batch at a time: it finds the addresses that no stored purchase names any more.

  Input:
    KEYS[1 + i] buckets of the address index, i from 0
    ARGV[1]     the customer id
    ARGV[2]     how many characters of an entry's name come before the customer id

  Output: how many entries were removed
]]
local customerId = ARGV[1]
local before = tonumber(ARGV[2])
local length = before + #customerId
local removed = 0
for i = 1, #KEYS do
  local fields = redis.call('HKEYS', KEYS[i])
  for j = 1, #fields do
    local field = fields[j]
    if #field == length and string.sub(field, before + 1) == customerId then
      redis.call('HDEL', KEYS[i], field)
      removed = removed + 1
    end
  end
end
return removed
