--[[
  Moves one address's index of versions before 2026-12-04 (a hash of its own: customer id →
  latest purchase time, kept `keep` after the latest filing) into its bucket of the packed index
  (remember-customer.lua), each entry dated when it was last filed (its key's expiry less `keep`),
  and deletes it. Running it again finds nothing to move.

  Input:
    KEYS[1] the address's own index (hash), of a version before 2026-12-04
    KEYS[2] its bucket in the packed index

    ARGV[1] the address part of the entries in KEYS[2]
    ARGV[2] now (epoch ms)
    ARGV[3] how long an entry is kept after it was last filed (ms)

  Output: how many customers were moved
]]
local now = tonumber(ARGV[2])
local keep = tonumber(ARGV[3])
local ttl = redis.call('PTTL', KEYS[1])
if ttl == -2 then return 0 end
local filed = now
if ttl >= 0 and ttl < keep then filed = now + ttl - keep end
local customers = redis.call('HGETALL', KEYS[1])
local moved = 0
for i = 1, #customers, 2 do
  local field = ARGV[1] .. customers[i]
  local known = tonumber(redis.call('HGET', KEYS[2], field) or '0')
  if known < filed then redis.call('HSET', KEYS[2], field, string.format('%d', filed)) end
  moved = moved + 1
end
local left = filed + keep - now
if left > 0 and redis.call('PTTL', KEYS[2]) < left then redis.call('PEXPIRE', KEYS[2], left) end
redis.call('DEL', KEYS[1])
return moved
