--[[
  Keeps a purchase's order link (link-purchase.lua) at least until a time: a re-plan that moves
  one of its steps later than the link was given at intake, so that a refund until then still
  finds the purchase. A link no longer there (expired, or forgotten by an erasure) is not brought
  back, and one that already lasts longer is left as it is.

  Input:
    KEYS[1] the order's bucket of order links
    ARGV[1] the link's field: the order's part of its entries in KEYS[1], then the event id
    ARGV[2] keep it until (epoch ms)
    ARGV[3] now (epoch ms)

  Output: 1 when the link lasts until then, 0 when there is none
]]
--!include lib/packed-index.lua
local now = tonumber(ARGV[3])
local value = redis.call('HGET', KEYS[1], ARGV[1])
if not value or expiryOf(value) < now then return 0 end
fileEntry(KEYS[1], ARGV[1], string.match(value, '^(.-)%d+$'), tonumber(ARGV[2]), now)
return 1
