--[[
  Whether a thank-you that joined an earlier purchase's (join-thank-you.lua) goes, in one read of
  both purchases: its filing and the leader's thank-you. Read apart, a leader that left this
  purchase out of its message (leave-thank-you.lua) and went out between the two reads would have
  it skipped as thanked for. It is skipped only once the leader's thank-you went and listed it
  (the leader's `tj`, written as it closed the group: close-thank-you.lua); it waits while that one
  may still go; otherwise it is filed alone (a later retry of the leader's leaves it out) and goes.
  What the rules say now does not matter here: only the filing and the leader's record.

  A leader's thank-you sent by a version before `tj` (it wrote none) listed every purchase still
  joined when it closed the group, and closing is what it did as it went: when the group it led is
  still open (in the customer's history, or in the older group key), it went without closing it
  (no rule coalesced then), listed none, and this one goes.

  A leader's thank-you still `scheduled` after its grace period (and the margin) has no job behind
  it that could send it (its job lost): the send guard would skip it as past due. This one stops
  waiting then, and goes, filed alone, so that the leader's, if its job turns up after all (rules
  with a longer grace period by then), does not list it.

  A leader's thank-you still `sending` is stuck once the later of its grace end and its claim
  (`t`) plus the send lease has passed, and the margin: a live send ends within its lease, and a
  run of its job that takes it over (a stalled job's, or a retry's) claims it anew (a later `t`)
  or, past its grace end, skips it as past due. Its worker died mid-send and its job is gone. This
  one stops waiting then too, and goes, filed alone: never waiting for ever, and never skipped,
  since that message may never have left. When the leader's message listed this one (its `tj`,
  or, sent by a version before `tj`, a group it closed) it may have reached the customer: this
  one is then a possible duplicate, counted in its own step record (`r`, as a takeover is) as it
  is decided, once (it is filed alone then).

  Input:
    KEYS[1]  the purchase's event record (hash; `ty` = how it was filed, see join-thank-you.lua)
    KEYS[2]  the customer's thank-you group as key layout 4 and before kept it (its filing
             `f:<event id>` is read when the record has none; `lead`, `closed` its group)
    KEYS[3]  the leader's event record (hash; its thank-you step `s:<step id>`, and `tj` =
             "<the step that closed the group>\n<the event ids it listed, space-separated>")
    KEYS[4]  the customer's history (hash; `tl` the group's leader, `tg` its numbers, the fifth
             1 once closed: lib/thank-you-group.lua)

    ARGV[1]  the purchase's event id
    ARGV[2]  the leader's event id (its filing names it)
    ARGV[3]  the thank-you grace period (ms), or '' to wait on a scheduled leader however long
    ARGV[4]  a margin after the leader's grace end (ms)
    ARGV[5]  now (epoch ms)
    ARGV[6]  the send lease (ms): how long a claimed send may be live (DELIVERY_LEASE_MS)
    ARGV[7]  this purchase's thank-you step id (its record counts a possible duplicate), or ''

  Output: {"coalesced"}, {"wait", the leader's thank-you step record as stored}, {"own"} (filed
          alone, or not joined to that leader: its own thank-you goes), {"own", "lost"} (the
          leader's is still scheduled past its grace period: filed alone, its own goes), or
          {"own", "stuck"} (the leader's is still sending past the bound above: filed alone, its
          own goes), {"own", "stuck", "listed"} when that message listed this one
]]
--!include lib/base36.lua
--!include lib/step-codec.lua
local filed = redis.call('HGET', KEYS[1], 'ty') or redis.call('HGET', KEYS[2], 'f:' .. ARGV[1])
local lead, step
if filed then lead, step = string.match(filed, '^joined\n(.-)\n(.-)\n') end
if lead ~= ARGV[2] then return {'own'} end
local function alone(...)
  if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'ty', 'alone') end
  return {'own', ...}
end
local listed = true
local closed = redis.call('HGET', KEYS[3], 'tj')
if closed then
  local closer, ids = string.match(closed, '^([^\n]*)\n(.*)$')
  step = closer or step
  listed = false
  for id in string.gmatch(ids or '', '%S+') do
    if id == ARGV[1] then listed = true end
  end
end
local raw = redis.call('HGET', KEYS[3], 's:' .. step)
local rec = raw and decodeStep(raw)
local state = rec and rec.s
if (state == 'sent' or state == 'sending') and listed and not closed then
  -- Sent by a version before `tj`: listed only if it closed the group it led. (A leader of this
  -- version records `tj` as it closes its group, before its message goes: one being sent without
  -- it has not closed it yet, and its group says so.)
  local history = redis.call('HMGET', KEYS[4], 'tl', 'tg')
  if history[1] == ARGV[2] and string.match(history[2] or '', '^%w+ %w+ %w+ %w+ 0 ') then
    listed = false
  end
  local older = redis.call('HMGET', KEYS[2], 'lead', 'closed')
  if older[1] == ARGV[2] and not older[2] then listed = false end
end
if (state == 'scheduled' or state == 'sending') and ARGV[3] ~= '' then
  local graceEnds = tonumber(rec.e) or ((tonumber(rec.d) or 0) + tonumber(ARGV[3]))
  local latest = math.max(graceEnds, tonumber(rec.w) or 0)
  if state == 'sending' then
    latest = math.max(latest, (tonumber(rec.t) or 0) + (tonumber(ARGV[6]) or 0))
  end
  if tonumber(ARGV[5]) >= latest + tonumber(ARGV[4]) then
    if state == 'scheduled' then return alone('lost') end
    if not listed then return alone('stuck') end
    local own = ARGV[7] ~= '' and redis.call('HGET', KEYS[1], 's:' .. ARGV[7])
    if own then
      local mine = decodeStep(own)
      if mine.s == 'scheduled' or mine.s == 'sending' then
        mine.r = (tonumber(mine.r) or 0) + 1
        redis.call('HSET', KEYS[1], 's:' .. ARGV[7], encodeStep(mine))
      end
    end
    return alone('stuck', 'listed')
  end
end
if state == 'scheduled' or state == 'sending' then return {'wait', raw} end
if state == 'sent' and listed then return {'coalesced'} end
return alone()
