--[[
  Files a customer under the addresses of a purchase (the console's and erasure's index from an
  address's keyed hash to customer ids), each kept at least `keep` from now.

  Input:
    KEYS[1 + i] the index of each address, i from 0 (hash: customer id → latest purchase time)

    ARGV[1] customer id
    ARGV[2] the purchase time (epoch ms)
    ARGV[3] keep each index at least this long (ms)

  Output: how many addresses were filed
]]
for _, key in ipairs(KEYS) do
  redis.call('HSET', key, ARGV[1], ARGV[2])
  if redis.call('PTTL', key) < tonumber(ARGV[3]) then redis.call('PEXPIRE', key, ARGV[3]) end
end
return #KEYS
