--[[
  Reads an order in one round trip (read-only): its own hash and its unexpired links in its
  bucket, without sending the bucket's other orders (a bucket holds dozens at a million orders).
  Intake asks in the same round trip which suppression lists hold the customer or their
  addresses (as opt-outs.lua; all of these are global keys).

  Input:
    KEYS[1] order (hash: `r:<refundId>` refunds; `e:<eventId>` links of key layout 3 and before)
    KEYS[2] the order's bucket of order links
    KEYS[2 + i] a suppression list (set), i from 1 (none: no opt-outs asked)
    ARGV[1] the order's part of its entries in KEYS[2]
    ARGV[2] now (epoch ms): links expired by then are left out
    ARGV[3] with suppression lists: the members to look for in each (JSON array of arrays)

  Output: { the order's fields and values, flat, its links as `e:<eventId>`
            (lib/order-fields.lua), per suppression list 1 if it holds any of its members, else 0 }
]]
--!include lib/packed-index.lua
--!include lib/order-fields.lua
--!include lib/opt-out-flags.lua
local lists = {}
for i = 3, #KEYS do lists[#lists + 1] = KEYS[i] end
local flags = {}
if #lists > 0 then flags = optOutFlags(lists, cjson.decode(ARGV[3])) end
return { orderFields(KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[2])), flags }
