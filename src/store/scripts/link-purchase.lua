--[[
  Files a purchase whose steps are recorded in the global indexes, in one step: its customer
  under its addresses (as remember-customer.lua) and its event under its order, unless the
  customer was erased after the purchase (the marker is written before an erasure reads the
  index): then nothing is filed. Returns the order, refunds included: a refund recorded before is
  in the answer, one recorded after will find the link. Links are packed
  (lib/packed-index.lua): `<11 characters of the order id's idHash><event id>` →
  `s<shard>:<epoch ms it expires at>`. Intake asks in the same call which suppression lists hold
  the customer by id (as opt-outs.lua; all of these are global keys): run after the purchase is
  stored where an opt-out's knownAddresses finds it, an opt-out by id written after this call
  finds its addresses, and one written before is in the answer.

  Input:
    KEYS[1]     order (hash: `r:<refundId>` refunds; `e:<eventId>` links of versions of key
                layout 3 and before, valued `s<shard>`, or `1` as linked before shards: shard 0)
    KEYS[2]     the order's bucket of order links
    KEYS[3]     the customer's erasure marker in the global slot (epoch ms)
    KEYS[4 + i] the address index bucket of each of the purchase's addresses, i from 0 to n - 1
                (n: the count of ARGV[10 + i])
    KEYS[4 + n + j] a suppression list (set), j from 0 (none: no opt-outs asked)

    ARGV[1]     the purchase event id
    ARGV[2]     keep the order link at least this long (ms)
    ARGV[3]     the link's value: `s<shard>`, the shard the event lives in
    ARGV[4]     the order's part of its entries in KEYS[2]
    ARGV[5]     now (epoch ms)
    ARGV[6]     customer id
    ARGV[7]     keep an address entry this long after it was last filed (ms)
    ARGV[8]     the purchase time (epoch ms)
    ARGV[9]     the members to look for in each suppression list (JSON array of arrays, in the
                order of KEYS[4 + n + j]; `[]` with none)
    ARGV[10 + i] the address's part of its entry in KEYS[4 + i]

  Output: { the order's fields and values, flat, its links as `e:<eventId>`
            (lib/order-fields.lua), per suppression list 1 if it holds any of its members, else 0 };
          -1 when the customer was erased after the purchase (nothing filed, nothing asked)
]]
--!include lib/packed-index.lua
--!include lib/order-fields.lua
--!include lib/customer-entries.lua
--!include lib/opt-out-flags.lua
local now = tonumber(ARGV[5])
local purchased = tonumber(ARGV[8])
if erasedSince(KEYS[3], purchased) then return -1 end
local buckets = #ARGV - 9
fileCustomer(4, 10, buckets, ARGV[6], purchased, now + tonumber(ARGV[7]), now)
fileEntry(KEYS[2], ARGV[4] .. ARGV[1], ARGV[3] .. ':', now + tonumber(ARGV[2]), now)
local lists = {}
for i = 4 + buckets, #KEYS do lists[#lists + 1] = KEYS[i] end
local flags = {}
if #lists > 0 then flags = optOutFlags(lists, cjson.decode(ARGV[9])) end
return { orderFields(KEYS[1], KEYS[2], ARGV[4], now), flags }
