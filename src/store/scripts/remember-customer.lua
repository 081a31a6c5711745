--[[
  Files a customer under the addresses of a purchase: the console's and erasure's index from an
  address's keyed hash to customer ids (store/customer-index.ts), packed
  (lib/packed-index.lua): an entry is `<11 characters of the address's hash><customer id>` →
  `<their latest purchase with it, epoch seconds>:<the epoch ms it expires at>`, expiring `keep`
  after it was last filed. The purchase time orders an address's customers, latest first, however
  the workers' intake interleaved their events.

  Input:
    KEYS[1 + i] the bucket of each address, i from 0
    KEYS[n]     last, when ARGV[4 + n] is `erased`: the customer's erasure marker in the
                global slot (epoch ms): a purchase from before it files nothing

    ARGV[1]     customer id
    ARGV[2]     now (epoch ms)
    ARGV[3]     keep an entry this long after it was last filed (ms)
    ARGV[4]     the purchase time (epoch ms; entries keep it in seconds)
    ARGV[5 + i] the address part of the entry in KEYS[1 + i]

  Output: how many addresses were filed (-1: the customer was erased after the purchase)
]]
--!include lib/packed-index.lua
--!include lib/customer-entries.lua
local now = tonumber(ARGV[2])
local purchased = tonumber(ARGV[4])
local buckets = #KEYS
if ARGV[4 + #KEYS] == 'erased' then
  buckets = #KEYS - 1
  if erasedSince(KEYS[#KEYS], purchased) then return -1 end
end
fileCustomer(1, 5, buckets, ARGV[1], purchased, now + tonumber(ARGV[3]), now)
return buckets
