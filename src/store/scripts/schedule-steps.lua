--[[
  Records new steps as scheduled (a step that already has a record is left as it is), counts only
  the new ones, files the new ones due beyond the promotion horizon in the compact schedule, then
  saves the purchase in the record (lib/purchase-fields.lua; kept, never overwritten) with its
  expiry. (Its summary for reports, `m`, is written when the purchase is trimmed after its last
  step: until then reports read it from the purchase. Records of versions before 2026-12-03 have
  it from the start.) One script, so the purchase, its steps and their places in the schedule
  appear together.

  Input:
    KEYS[1]         event record (hash)
    KEYS[2]         stored purchase key of versions before 2026-12-03 (extended if it exists)
    KEYS[3]         ledger hour of `now`
    KEYS[4]         schedule index (sorted set of bucket numbers by start time)
    KEYS[3 + 2i]    pending count of step i's due day, in the order of ARGV[3]
    KEYS[4 + 2i]    schedule bucket of step i's due time
    KEYS[5 + 2n]    with ARGV[8]: the customer's erasure marker (epoch ms), after the n steps' keys
    KEYS[#KEYS - 1] the generation the schedule's re-planning walk began for (string; none before
                    any walk): when present, with KEYS[#KEYS] and ARGV[9]
    KEYS[#KEYS]     purchases planned under older rules than that walk's (set of event ids)

    ARGV[1] now (epoch ms)
    ARGV[2] how long a ledger hour is kept (ms)
    ARGV[3] steps (JSON array of { id, d = due epoch ms, c = channel, k = kind, r = rule id,
            e = when its grace period ends, only for a step planned late,
            f = ledger field, b = bucket number or 0 when BullMQ gets the step directly, bs = its start,
            t = the bucket entry })
    ARGV[4] the encoded purchase
    ARGV[5] keep the record, the purchase and the buckets until (epoch ms)
    ARGV[6] the rules generation the steps were planned with (kept as the record's `g`)
    ARGV[7] optional: the W3C traceparent of the intake span, kept as the record's `tp` (only
            while tracing is on; the first intake that leaves a step pending keeps it); '' for
            none when ARGV[8] follows
    ARGV[8] optional: the purchase time (epoch ms): a purchase made before its customer was
            erased (the marker, written before an erasure reads their purchases) schedules nothing;
            '' for none when ARGV[9] follows
    ARGV[9] optional: the event id. A purchase that files a step in the schedule under an older
            generation than the walk that began (a worker still on older rules in a rolling
            deploy, or one that planned it just before it loaded newer rules) is noted in
            KEYS[#KEYS], at most ARGV[10] of them, for the workers on the newer rules to re-plan:
            the walk may have passed its bucket already
    ARGV[10] the most purchases KEYS[#KEYS] holds

  Output: how many steps were new; -1 when the customer was erased after the purchase
]]
--!include lib/base36.lua
--!include lib/step-codec.lua
--!include lib/pending-states.lua
--!include lib/ledger-count.lua
--!include lib/purchase-fields.lua
local steps = cjson.decode(ARGV[3])
if ARGV[8] and ARGV[8] ~= '' then
  local erasedAt = redis.call('GET', KEYS[5 + 2 * #steps])
  if erasedAt and tonumber(erasedAt) >= tonumber(ARGV[8]) then return -1 end
end
-- An event planned before generations were kept (it has a summary but no `g`) keeps counting
-- its pending steps the old way, so that their counts still add up when they change.
if redis.call('HEXISTS', KEYS[1], 'g') == 0 and redis.call('HEXISTS', KEYS[1], 'm') == 0 then
  redis.call('HSET', KEYS[1], 'g', ARGV[6])
end
local generation = redis.call('HGET', KEYS[1], 'g')
local added = 0
local pending = false
local filed = false
for i, step in ipairs(steps) do
  local field = 's:' .. step.id
  -- No `t` and no `a` while untouched: short enough to keep the hash a listpack.
  local rec = { s = 'scheduled', d = step.d, c = step.c, k = step.k, e = step.e }
  if redis.call('HSETNX', KEYS[1], field, encodeStep(rec)) == 1 then
    added = added + 1
    pending = true
    redis.call('HINCRBY', KEYS[3], step.f, 1)
    redis.call('PEXPIRE', KEYS[3], ARGV[2])
    local dayKey = KEYS[3 + 2 * i]
    redis.call('HINCRBY', dayKey, pendingField(generation, rec, step.c, step.r), 1)
    redis.call('PEXPIREAT', dayKey, (math.floor(step.d / 86400000) + 2) * 86400000)
    if step.b ~= 0 then
      local bucketKey = KEYS[4 + 2 * i]
      redis.call('RPUSH', bucketKey, step.t)
      redis.call('PEXPIREAT', bucketKey, ARGV[5], 'GT')
      if redis.call('PTTL', bucketKey) < 0 then redis.call('PEXPIREAT', bucketKey, ARGV[5]) end
      redis.call('ZADD', KEYS[4], step.bs, step.b)
      filed = true
    end
  elseif PENDING[decodeStep(redis.call('HGET', KEYS[1], field)).s] then
    pending = true
  end
end
-- Kept only while a step is pending: a stale plan (the same event processed twice at once) must
-- not bring back the contact details that a finished purchase had deleted.
if pending then
  if redis.call('EXISTS', KEYS[2]) == 1 then
    redis.call('PEXPIREAT', KEYS[2], ARGV[5], 'GT')
  elseif not purchaseStored(KEYS[1]) then
    storePurchase(KEYS[1], ARGV[4])
  end
  if ARGV[7] and ARGV[7] ~= '' then redis.call('HSETNX', KEYS[1], 'tp', ARGV[7]) end
end
if filed and ARGV[9] then
  local walked = tonumber(redis.call('GET', KEYS[#KEYS - 1]) or '0')
  -- The record's generation, or this plan's when older (a retry on older rules adding a step).
  local planned = math.min(tonumber(generation or '0') or 0, tonumber(ARGV[6]) or 0)
  if planned < walked and redis.call('SCARD', KEYS[#KEYS]) < tonumber(ARGV[10]) then
    redis.call('SADD', KEYS[#KEYS], ARGV[9])
    -- Taken within a minute while a worker runs the newer rules; gone a week after the last
    -- noted when none does (the promoter still re-plans each step before it becomes a job).
    redis.call('PEXPIRE', KEYS[#KEYS], 604800000)
  end
end
-- Kept longer, never shorter; the history script gave the record its first expiry.
if redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIREAT', KEYS[1], ARGV[5])
else
  redis.call('PEXPIREAT', KEYS[1], ARGV[5], 'GT')
end
return added
