--[[
  Remembers when a purchase's steps under a cooldown fall due: a field per rule (`r:<rule id>`)
  or kind (`k:<kind>`), step and purchase, `<r:… or k:…> <step id> <event id>` = `<due>`, so the
  customer's later purchases check their cooldowns against every step of their other purchases
  (a call's and its fallback's too), not only the latest due. A purchase planned again (a re-plan
  that moved its step) replaces its own due times; a re-plan names the steps it re-planned, and
  their other entries go (a step it skipped or cancelled, a kind it changed): the customer is then
  held to what the re-plan left, as fresh planning would hold them. Versions before kept one
  field per rule or kind, `<due> <event id>` of the latest due: such a field of this purchase
  gives way to its own; others stay until they are pruned. Fields due before the pruning time can
  no longer hold back a step and go. A purchase made before its customer was erased writes
  nothing back after the erasure forgot them.

  Two purchases of one customer taken in at once must not both pass a cooldown that each checked
  before the other's step was written: each rule and kind counts the writes that changed a due
  time under it (`v:<r:… or k:…>` = `#<count>`; absent, as in hashes of versions before, is
  none), a purchase reads the counts with the due times it is planned from, and a write checked
  against counts that have moved since is refused whole (-2): its purchase is planned again
  against the step written meanwhile. The first to write keeps its step. A count's value does not
  begin with a digit, so the pruning (this version's and the ones before) leaves it.

  A re-plan's write is also refused (-3) when a write of a newer rules generation for the same
  purchase came first (the event record's `rg`, written with each write that gives one): a
  worker on older rules whose re-plan then fails must not leave its due times in place of the
  newer ones.

  Input:
    KEYS[1] the customer's recent steps (hash)
    KEYS[2] the customer's erasure marker (epoch ms)
    KEYS[3] the purchase's event record (hash; `rg` the generation of its latest write here)

    ARGV[1] the purchase time (epoch ms)
    ARGV[2] keep the hash this long from now (ms)
    ARGV[3] the event id
    ARGV[4] prune fields due before this (epoch ms)
    ARGV[5] the rules generation the steps were planned with ('' for none: not checked, not kept)
    ARGV[6] n, how many counts to check (0: write unchecked)
    ARGV[7 + 2c] a rule or kind (`r:<rule id>`, `k:<kind>`) written below, c from 0 to n - 1
    ARGV[8 + 2c] its count as read (`#<count>`, or '' when there was none)
    ARGV[7 + 2n] m, how many step ids follow whose entries not written below go (0 at intake)
    ARGV[8 + 2n + j] a step id of this purchase that was re-planned, j from 0 to m - 1
    ARGV[8 + 2n + m + 2i] the field of entry i without the event id (`r:<rule id> <step id>`,
                          `k:<kind> <step id>`), i from 0
    ARGV[9 + 2n + m + 2i] its due time (epoch ms)

  A removed entry counts as a write under its rule or kind, as a changed due time does.

  Output: how many entries were written; -1 when the customer was erased after the purchase,
          -2 when a count checked has moved since it was read, -3 when a newer generation wrote
          for this purchase (nothing written)
]]
local erasedAt = redis.call('GET', KEYS[2])
if erasedAt and tonumber(erasedAt) >= tonumber(ARGV[1]) then return -1 end
local generation = tonumber(ARGV[5])
if generation and tonumber(redis.call('HGET', KEYS[3], 'rg') or '0') > generation then
  return -3
end
local checks = tonumber(ARGV[6])
for c = 0, checks - 1 do
  local count = redis.call('HGET', KEYS[1], 'v:' .. ARGV[7 + 2 * c]) or ''
  if count ~= ARGV[8 + 2 * c] then return -2 end
end
-- Only on a record that exists: a new key here would have no expiry.
if generation and redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('HSET', KEYS[3], 'rg', ARGV[5])
end
local eventId = ARGV[3]
local suffix = ' ' .. eventId
local counted = {}
local function count(key)
  if counted[key] then return end
  counted[key] = true
  local seen = redis.call('HGET', KEYS[1], 'v:' .. key)
  local n = seen and tonumber(string.sub(seen, 2)) or 0
  redis.call('HSET', KEYS[1], 'v:' .. key, '#' .. string.format('%d', n + 1))
end
local replanned = {}
local replannedCount = tonumber(ARGV[7 + 2 * checks])
for j = 0, replannedCount - 1 do
  replanned[' ' .. ARGV[8 + 2 * checks + j] .. suffix] = true
end
local kept = {}
local written = 0
for i = 8 + 2 * checks + replannedCount, #ARGV, 2 do
  local field = ARGV[i]
  local key = string.match(field, '^[^ ]+')
  kept[field .. suffix] = true
  if redis.call('HGET', KEYS[1], field .. suffix) ~= ARGV[i + 1] then
    redis.call('HSET', KEYS[1], field .. suffix, ARGV[i + 1])
    count(key)
  end
  written = written + 1
  local legacy = redis.call('HGET', KEYS[1], key)
  if legacy and string.sub(legacy, -#suffix) == suffix then
    redis.call('HDEL', KEYS[1], key)
  end
end
if written == 0 and replannedCount == 0 then return 0 end
local pruneBefore = tonumber(ARGV[4])
local all = redis.call('HGETALL', KEYS[1])
for j = 1, #all, 2 do
  local field = all[j]
  local key, rest = string.match(field, '^([^ ]+)( .*)$')
  local due = tonumber(string.match(all[j + 1], '^(%-?%d+)'))
  if rest and replanned[rest] and not kept[field] then
    -- A re-planned step's entry that the re-plan did not write: the step ended, or took a kind
    -- (or a rule's cooldown) it is no longer remembered under.
    redis.call('HDEL', KEYS[1], field)
    count(key)
  elseif due and due < pruneBefore then
    redis.call('HDEL', KEYS[1], field)
  end
end
if written == 0 then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return written
