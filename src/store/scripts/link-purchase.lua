--[[
  Files a purchase whose steps are recorded in the global indexes, in one step: its customer
  under its addresses (as remember-customer.lua) and its event under its order, unless the
  customer was erased after the purchase (the marker is written before an erasure reads the
  index): then nothing is filed. Returns the order, refunds included: a refund recorded before is
  in the answer, one recorded after will find the link. Links are packed
  (lib/packed-index.lua): `<11 characters of the order id's idHash><event id>` →
  `s<shard>:<epoch ms it expires at>`.

  Input:
    KEYS[1]     order (hash: `r:<refundId>` refunds; `e:<eventId>` links of versions of key
                layout 3 and before, valued `s<shard>`, or `1` as linked before shards: shard 0)
    KEYS[2]     the order's bucket of order links
    KEYS[3]     the customer's erasure marker in the global slot (epoch ms)
    KEYS[4 + i] the address index bucket of each of the purchase's addresses, i from 0

    ARGV[1]     the purchase event id
    ARGV[2]     keep the order link at least this long (ms)
    ARGV[3]     the link's value: `s<shard>`, the shard the event lives in
    ARGV[4]     the order's part of its entries in KEYS[2]
    ARGV[5]     now (epoch ms)
    ARGV[6]     customer id
    ARGV[7]     keep an address entry this long after it was last filed (ms)
    ARGV[8]     the purchase time (epoch ms)
    ARGV[9 + i] the address's part of its entry in KEYS[4 + i]

  Output: the order's fields and values, flat, its links as `e:<eventId>`; -1 when the customer
  was erased after the purchase (nothing filed)
]]
--!include lib/packed-index.lua
--!include lib/order-fields.lua
--!include lib/customer-entries.lua
local now = tonumber(ARGV[5])
local purchased = tonumber(ARGV[8])
if erasedSince(KEYS[3], purchased) then return -1 end
fileCustomer(4, 9, #KEYS - 3, ARGV[6], purchased, now + tonumber(ARGV[7]), now)
fileEntry(KEYS[2], ARGV[4] .. ARGV[1], ARGV[3] .. ':', now + tonumber(ARGV[2]), now)
return orderFields(KEYS[1], KEYS[2], ARGV[4], now)
