--[[
  Remembers when a purchase's steps under a cooldown fall due: a field per rule (`r:<rule id>`)
  or kind (`k:<kind>`), step and purchase, `<r:… or k:…> <step id> <event id>` = `<due>`, so the
  customer's later purchases check their cooldowns against every step of their other purchases
  (a call's and its fallback's too), not only the latest due. A purchase planned again (a re-plan
  that moved its step) replaces its own due times. Versions before kept one field per rule or
  kind, `<due> <event id>` of the latest due: such a field of this purchase gives way to its own;
  others stay until they are pruned. Fields due before the pruning time can no longer hold back a
  step and go. One script, so two purchases of one customer taken in at once each keep their own,
  and a purchase made before its customer was erased writes nothing back after the erasure forgot
  them.

  Input:
    KEYS[1] the customer's recent steps (hash)
    KEYS[2] the customer's erasure marker (epoch ms)

    ARGV[1] the purchase time (epoch ms)
    ARGV[2] keep the hash this long from now (ms)
    ARGV[3] the event id
    ARGV[4] prune fields due before this (epoch ms)
    ARGV[5 + 2i] the field of entry i without the event id (`r:<rule id> <step id>`,
                 `k:<kind> <step id>`), i from 0
    ARGV[6 + 2i] its due time (epoch ms)

  Output: how many entries were written; -1 when the customer was erased after the purchase
]]
local erasedAt = redis.call('GET', KEYS[2])
if erasedAt and tonumber(erasedAt) >= tonumber(ARGV[1]) then return -1 end
local eventId = ARGV[3]
local suffix = ' ' .. eventId
local written = 0
for i = 5, #ARGV, 2 do
  local field = ARGV[i]
  redis.call('HSET', KEYS[1], field .. suffix, ARGV[i + 1])
  written = written + 1
  local legacyField = string.match(field, '^[^ ]+')
  local legacy = redis.call('HGET', KEYS[1], legacyField)
  if legacy and string.sub(legacy, -#suffix) == suffix then
    redis.call('HDEL', KEYS[1], legacyField)
  end
end
if written == 0 then return 0 end
local pruneBefore = tonumber(ARGV[4])
local all = redis.call('HGETALL', KEYS[1])
for j = 1, #all, 2 do
  local due = tonumber(string.match(all[j + 1], '^(%-?%d+)'))
  if due and due < pruneBefore then redis.call('HDEL', KEYS[1], all[j]) end
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return written
