--[[
  Moves one address's index of versions of key layout 3 and before (a hash of its own: customer id →
  latest purchase time, kept `keep` after the latest filing) into its bucket of the packed index
  (remember-customer.lua), each entry expiring when the key would have, and deletes it. Running it
  again finds nothing to move.

  Input:
    KEYS[1] the address's own index (hash), of a version of key layout 3 or before
    KEYS[2] its bucket in the packed index

    ARGV[1] the address part of the entries in KEYS[2]
    ARGV[2] now (epoch ms)
    ARGV[3] how long an entry is kept after it was last filed (ms): for a key without expiry

  Output: how many customers were moved
]]
--!include lib/packed-index.lua
local now = tonumber(ARGV[2])
local ttl = redis.call('PTTL', KEYS[1])
if ttl == -2 then return 0 end
local expiresAt = now + tonumber(ARGV[3])
if ttl >= 0 then expiresAt = now + ttl end
local customers = redis.call('HGETALL', KEYS[1])
for i = 1, #customers, 2 do
  fileEntry(KEYS[2], ARGV[1] .. customers[i], '', expiresAt, now)
end
redis.call('DEL', KEYS[1])
return #customers / 2
