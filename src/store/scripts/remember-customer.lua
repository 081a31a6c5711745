--[[
  Files a customer under the addresses of a purchase: the console's and erasure's index from an
  address's keyed hash to customer ids (store/customer-index.ts), packed
  (lib/packed-index.lua): an entry is `<11 characters of the address's hash><customer id>` → the
  epoch ms it expires at, `keep` after it was last filed.

  Input:
    KEYS[1 + i] the bucket of each address, i from 0

    ARGV[1]     customer id
    ARGV[2]     now (epoch ms)
    ARGV[3]     keep an entry this long after it was last filed (ms)
    ARGV[4 + i] the address part of the entry in KEYS[1 + i]

  Output: how many addresses were filed
]]
--!include lib/packed-index.lua
local now = tonumber(ARGV[2])
local expiresAt = now + tonumber(ARGV[3])
for i, key in ipairs(KEYS) do
  fileEntry(key, ARGV[3 + i] .. ARGV[1], '', expiresAt, now)
end
return #KEYS
