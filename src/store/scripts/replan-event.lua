--[[
  Applies a re-plan of one purchase's scheduled steps under a newer rules generation, once: a
  record already at this generation or a newer one is left alone, so concurrent workers and
  workers still on older rules change nothing. Each step changes only if it is still scheduled for
  the due time the plan was made from. Pending counts move with the steps (and an event planned
  before generations were kept is counted the current way from now on); the record remembers the
  generation.

  Input:
    KEYS[1]       event record (hash)
    KEYS[2]       stored purchase key of earlier versions (kept as long as the record)
    KEYS[3]       ledger hour of `now`
    KEYS[4]       schedule index
    KEYS[2 + 3i]  pending count of step i's planned due day, in the order of ARGV[4]
    KEYS[3 + 3i]  pending count of step i's new due day (its planned day when it does not move)
    KEYS[4 + 3i]  schedule bucket of step i's new due time (unused unless its due time changes)

    ARGV[1] the rules generation of this plan
    ARGV[2] now (epoch ms)
    ARGV[3] how long a ledger hour is kept (ms)
    ARGV[4] steps (JSON array of { id, d = planned due as read, a = keep | move | cancel | skip,
            nd = new due, ne = when its grace period ends if the new due time had passed (a
            moved step without one loses any it had), oc = channel counted under, c = channel, k = kind, r = rule id,
            x = reason (`code: text`), f = ledger fields to count, b = bucket number, bs = its start,
            t = bucket entry })
    ARGV[5] the record's and the purchase's expiry under this plan (epoch ms): the retention after
            its latest step, later when a step moved later, earlier when the latest one moved
            earlier or ended; moved steps' buckets are kept until at least then

  Output: how many steps changed, or -1 when the record is gone or already at this generation
]]
--!include lib/base36.lua
--!include lib/step-codec.lua
--!include lib/pending-states.lua
--!include lib/ledger-count.lua
--!include lib/finish-purchase.lua
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local generation = tonumber(ARGV[1])
local current = redis.call('HGET', KEYS[1], 'g')
if current and tonumber(current) >= generation then return -1 end
local now = tonumber(ARGV[2])
local steps = cjson.decode(ARGV[4])
local changed = 0
local ended = false
for i, step in ipairs(steps) do
  local field = 's:' .. step.id
  local raw = redis.call('HGET', KEYS[1], field)
  local rec = raw and decodeStep(raw)
  if rec and rec.s == 'scheduled' and rec.d == step.d then
    local oldDay, newDay, bucketKey = KEYS[2 + 3 * i], KEYS[3 + 3 * i], KEYS[4 + 3 * i]
    if redis.call('EXISTS', oldDay) == 1 then
      redis.call('HINCRBY', oldDay, pendingField(current, rec, step.oc, step.r), -1)
    end
    if step.a == 'move' then rec.e = step.ne end
    if step.a == 'keep' or step.a == 'move' then
      -- A postponement (note-postponed.lua) was of the job at the old due time.
      if step.nd ~= rec.d then
        rec.w = nil
        rec.wy = nil
      end
      rec.d = step.nd
      rec.c = step.c
      rec.k = step.k
      redis.call('HINCRBY', newDay, pendingField(generation, rec, step.c, step.r), 1)
      redis.call('PEXPIREAT', newDay, (math.floor(step.nd / 86400000) + 2) * 86400000)
      if step.a == 'move' then changed = changed + 1 end
      -- Filed again only where its due time changed: one rewritten where it stays (a new kind,
      -- channel or grace end) keeps its line, which the promoter reads from its record.
      if step.a == 'move' and step.nd ~= step.d then
        redis.call('RPUSH', bucketKey, step.t)
        redis.call('PEXPIREAT', bucketKey, ARGV[5], 'GT')
        if redis.call('PTTL', bucketKey) < 0 then redis.call('PEXPIREAT', bucketKey, ARGV[5]) end
        redis.call('ZADD', KEYS[4], step.bs, step.b)
      end
    else
      rec.s = step.a == 'cancel' and 'cancelled' or 'skipped'
      rec.x = step.x
      rec.t = now
      for _, f in ipairs(step.f) do redis.call('HINCRBY', KEYS[3], f, 1) end
      redis.call('PEXPIRE', KEYS[3], ARGV[3])
      changed = changed + 1
      ended = true
    end
    redis.call('HSET', KEYS[1], field, encodeStep(rec))
  end
end
redis.call('HSET', KEYS[1], 'g', generation)
-- The record and the purchase live as long as the plan needs them, no longer (a step moved
-- earlier or cancelled shortens it: personal data is kept only while a follow-up needs it).
if redis.call('PTTL', KEYS[1]) > 0 then redis.call('PEXPIREAT', KEYS[1], ARGV[5]) end
if redis.call('PTTL', KEYS[2]) > 0 then redis.call('PEXPIREAT', KEYS[2], ARGV[5]) end
if ended then finishIfDone(KEYS[1], KEYS[2]) end
return changed
