--[[
  Revokes a discount code whose customer was erased: what tied it to them goes (the issuing event,
  step and shard, the customer's keyed hash, when it was issued, and the order that redeemed it),
  and `w` notes when. A till then hears `revoked` for a code never redeemed, and `redeemed` (by no
  order named) for one redeemed before: neither can be redeemed again, and the redemption already
  counted in the ledger stays counted once. The code keeps its expiry.

  Input:
    KEYS[1] the code (hash, as redeem-code.lua reads it)
    ARGV[1] now, epoch ms

  Output: 0 when there is no such code, 1 when revoked now, 2 when it had been redeemed
]]
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local redeemed = redis.call('HEXISTS', KEYS[1], 'r') == 1 or redis.call('HEXISTS', KEYS[1], 'ra') == 1
redis.call('HDEL', KEYS[1], 'e', 's', 'h', 'k', 'i', 'r')
redis.call('HSETNX', KEYS[1], 'w', ARGV[1])
if redeemed then return 2 end
return 1
