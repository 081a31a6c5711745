--[[
  Moves one address's index of versions of key layout 3 and before (a hash of its own: customer
  id → their latest purchase time with the address, the key kept `keep` after its latest filing)
  into its bucket of the packed index (remember-customer.lua), and deletes it. Each entry expires
  `keep` after its customer's purchase, and no later than the key would have, and keeps the
  purchase time (in seconds) that orders the address's customers; one already past that is not
  moved. Running it again finds
  nothing to move.

  Input:
    KEYS[1] the address's own index (hash), of a version of key layout 3 or before
    KEYS[2] its bucket in the packed index

    ARGV[1] the address part of the entries in KEYS[2]
    ARGV[2] now (epoch ms)
    ARGV[3] how long an entry is kept after it was last filed (ms)

  Output: how many customers were moved
]]
--!include lib/packed-index.lua
local now = tonumber(ARGV[2])
local keep = tonumber(ARGV[3])
local ttl = redis.call('PTTL', KEYS[1])
if ttl == -2 then return 0 end
local keyExpiry = now + keep
if ttl >= 0 then keyExpiry = now + ttl end
local customers = redis.call('HGETALL', KEYS[1])
local moved = 0
for i = 1, #customers, 2 do
  local purchased = tonumber(customers[i + 1])
  local expiresAt = keyExpiry
  if purchased then expiresAt = math.min(keyExpiry, purchased + keep) end
  if expiresAt > now then
    fileEntry(KEYS[2], ARGV[1] .. customers[i],
      string.format('%d', math.floor((purchased or 0) / 1000)) .. ':', expiresAt, now)
    moved = moved + 1
  end
end
redis.call('DEL', KEYS[1])
return moved
