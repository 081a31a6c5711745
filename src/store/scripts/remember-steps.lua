--[[
  Remembers when a purchase's steps under a cooldown fall due, by rule (`r:<rule id>`) and by kind
  (`k:<kind>`), as "<due> <event id>", keeping the latest due time of each field: the customer's
  later purchases check their cooldowns against them. One script, so two purchases of one customer
  taken in at once cannot put an earlier due time over a later one, and a purchase made before its
  customer was erased writes nothing back after the erasure forgot them.

  Input:
    KEYS[1] the customer's recent steps (hash)
    KEYS[2] the customer's erasure marker (epoch ms)

    ARGV[1] the purchase time (epoch ms)
    ARGV[2] keep the hash this long from now (ms), when a field changes
    ARGV[3] the event id
    ARGV[4 + 2i] the field of entry i, i from 0
    ARGV[5 + 2i] its due time (epoch ms)

  Output: how many fields changed; -1 when the customer was erased after the purchase
]]
local erasedAt = redis.call('GET', KEYS[2])
if erasedAt and tonumber(erasedAt) >= tonumber(ARGV[1]) then return -1 end
local changed = 0
for i = 4, #ARGV, 2 do
  local field, due = ARGV[i], tonumber(ARGV[i + 1])
  local known = redis.call('HGET', KEYS[1], field)
  local before = known and tonumber(string.match(known, '^(%-?%d+)')) or 0
  if due >= before then
    redis.call('HSET', KEYS[1], field, ARGV[i + 1] .. ' ' .. ARGV[3])
    changed = changed + 1
  end
end
if changed > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return changed
