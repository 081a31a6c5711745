--[[
  Whether a thank-you that joined an earlier purchase's (join-thank-you.lua) goes, in one read of
  both purchases: its filing and the leader's thank-you. Read apart, a leader that left this
  purchase out of its message (leave-thank-you.lua) and went out between the two reads would have
  it skipped as thanked for. It is skipped only once the leader's thank-you went and listed it
  (the leader's `tj`, written as it closed the group: close-thank-you.lua); it waits while that one
  may still go; otherwise it is filed alone (a later retry of the leader's leaves it out) and goes.

  Input:
    KEYS[1]  the purchase's event record (hash; `ty` = how it was filed, see join-thank-you.lua)
    KEYS[2]  the customer's thank-you group as key layout 4 and before kept it (its filing
             `f:<event id>` is read when the record has none)
    KEYS[3]  the leader's event record (hash; its thank-you step `s:<step id>`, and `tj` =
             "<the step that closed the group>\n<the event ids it listed, space-separated>")

    ARGV[1]  the purchase's event id
    ARGV[2]  the leader's event id (its filing names it)

  Output: {"coalesced"}, {"wait", the leader's thank-you step record as stored}, or {"own"}
          (filed alone, or not joined to that leader: its own thank-you goes)
]]
--!include lib/base36.lua
--!include lib/step-codec.lua
local filed = redis.call('HGET', KEYS[1], 'ty') or redis.call('HGET', KEYS[2], 'f:' .. ARGV[1])
local lead, step
if filed then lead, step = string.match(filed, '^joined\n(.-)\n(.-)\n') end
if lead ~= ARGV[2] then return {'own'} end
-- A group closed by a version before `tj`: its thank-you listed every purchase still joined.
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
local state = raw and decodeStep(raw).s
if state == 'scheduled' or state == 'sending' then return {'wait', raw} end
if state == 'sent' and listed then return {'coalesced'} end
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'ty', 'alone') end
return {'own'}
