--[[
  Records one refund once per refund event id (a redelivered refund changes nothing).

  Input:
    KEYS[1] order (hash: `r:<refundId>` refunds, and `e:<eventId>` links of earlier versions)
    KEYS[2] the order's bucket of order links (link-purchase.lua)
    ARGV[1] the refund event id
    ARGV[2] the refund as order-store.ts writes it: "<minor units> <currency>", JSON, or "full"
    ARGV[3] keep the order this long (ms)
    ARGV[4] the order's part of its entries in KEYS[2]
    ARGV[5] now (epoch ms): links expired by then are left out

  Output: the order's fields and values afterwards, flat, its links as `e:<eventId>`
]]
--!include lib/packed-index.lua
--!include lib/order-fields.lua
redis.call('HSETNX', KEYS[1], 'r:' .. ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return orderFields(KEYS[1], KEYS[2], ARGV[4], tonumber(ARGV[5]))
