--[[
  Reads an order in one round trip (read-only): its own hash and its unexpired links in its
  bucket, without sending the bucket's other orders (a bucket holds dozens at a million orders).

  Input:
    KEYS[1] order (hash: `r:<refundId>` refunds; `e:<eventId>` links of key layout 3 and before)
    KEYS[2] the order's bucket of order links
    ARGV[1] the order's part of its entries in KEYS[2]
    ARGV[2] now (epoch ms): links expired by then are left out

  Output: the order's fields and values, flat, its links as `e:<eventId>` (lib/order-fields.lua)
]]
--!include lib/packed-index.lua
--!include lib/order-fields.lua
return orderFields(KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[2]))
