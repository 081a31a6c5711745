--[[
  Links a purchase event to its order and returns the order, refunds included, in one step: a
  refund recorded before is in the answer, one recorded after will find the link. Links are
  packed (lib/packed-index.lua): `<11 characters of the order id's idHash><event id>` →
  `s<shard>:<epoch ms it expires at>`.

  Input:
    KEYS[1] order (hash: `r:<refundId>` refunds; `e:<eventId>` links of versions of key
            layout 3 and before, valued `s<shard>`, or `1` as linked before shards: shard 0)
    KEYS[2] the order's bucket of order links
    ARGV[1] the purchase event id
    ARGV[2] keep the link at least this long (ms)
    ARGV[3] the link's value: `s<shard>`, the shard the event lives in
    ARGV[4] the order's part of its entries in KEYS[2]
    ARGV[5] now (epoch ms)

  Output: the order's fields and values, flat, its links as `e:<eventId>`
]]
--!include lib/packed-index.lua
--!include lib/order-fields.lua
local now = tonumber(ARGV[5])
fileEntry(KEYS[2], ARGV[4] .. ARGV[1], ARGV[3] .. ':', now + tonumber(ARGV[2]), now)
return orderFields(KEYS[1], KEYS[2], ARGV[4], now)
