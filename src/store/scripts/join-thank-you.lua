--[[
  Files a purchase's coalescing thank-you with the customer's open group: it leads a new group,
  joins the open one (its own thank-you then waits behind the leader's, see delivery), or stays
  alone. The answer is remembered in the purchase's record (`ty`), so filing it again (a
  re-published event) gives the same answer even after the group has moved on. An open group is
  never replaced: its leader's thank-you has not gone yet, and it lists the purchases that joined.

  Input:
    KEYS[1]  the customer's history (hash; the group's fields, lib/thank-you-group.lua)
    KEYS[2]  the purchase's event record (hash; `ty` = how it was filed: "lead", "alone" or
             "joined\n<lead>\n<step>\n<due>"; a leader's says so, so that its thank-you, closing
             a group that has ended by then, says it listed none: close-thank-you.lua)
    KEYS[3]  the customer's thank-you group as key layout 4 and before kept it (its group is moved
             into KEYS[1]; its filings `f:<event id>` are read until it expires)
    KEYS[4]  the customer's erasure marker (epoch ms): a purchase made before they were erased
             files nothing (an erasure under way must not find the group written back after it)

    ARGV[1]  event id
    ARGV[2]  its thank-you step id
    ARGV[3]  purchase time (epoch ms)
    ARGV[4]  the coalesce window (ms)
    ARGV[5]  the thank-you's due time (epoch ms): a new group's leader's
    ARGV[6]  keep the group (and the filing) at least this long (ms)
    ARGV[7]  how many purchases may join one group; later ones stay alone
    ARGV[8]  now (epoch ms): a group ends ARGV[6] after the last purchase filed with it

  Output: {"lead"}, {"alone"}, {"joined", leader event id, leader step id, leader due time}, or
          {"erased"} when the customer was erased after the purchase (nothing written)
]]
--!include lib/base36.lua
--!include lib/thank-you-group.lua
local now = tonumber(ARGV[8])
local keepMs = tonumber(ARGV[6])
local function remember(answer, group)
  redis.call('HSET', KEYS[2], 'ty', answer)
  -- The record exists (intake counted the purchase first); one that does not gets an expiry.
  if redis.call('PTTL', KEYS[2]) < 0 then redis.call('PEXPIRE', KEYS[2], keepMs) end
  keepGroup(KEYS[1], group, keepMs, now)
  return answer
end
local function answer(filed)
  local lead, step, due = string.match(filed, '^joined\n(.-)\n(.-)\n(.*)$')
  if lead then return {'joined', lead, step, due} end
  return {filed}
end

local erasedAt = redis.call('GET', KEYS[4])
if erasedAt and tonumber(erasedAt) >= tonumber(ARGV[3]) then return {'erased'} end

local group = readGroup(KEYS[1], KEYS[3], now)
local filed = redis.call('HGET', KEYS[2], 'ty') or redis.call('HGET', KEYS[3], 'f:' .. ARGV[1])
if filed then return answer(filed) end
-- The leader itself, filed by a version that did not note leaders (they never join a later group).
if group and group.lead == ARGV[1] then return {'lead'} end

local at = tonumber(ARGV[3])
local window = tonumber(ARGV[4])
if group then
  if at < group.ends and at > group.start - window then
    -- Within the window, but its thank-you has gone, or it lists enough orders: on its own.
    if group.closed or group.members >= tonumber(ARGV[7]) then
      return answer(remember('alone', group))
    end
    group.members = group.members + 1
    redis.call('HSET', KEYS[1], 'tm:' .. ARGV[1], ARGV[3])
    return answer(remember(
      'joined\n' .. group.lead .. '\n' .. group.step .. '\n' .. string.format('%.0f', group.due),
      group))
  end
  -- An older purchase arriving late, or a later one while the group's thank-you has not gone.
  -- (A new group starts after its predecessor's window, so its leader is older than any later
  -- group's window: it is never listed twice.)
  if at <= group.start - window or not group.closed then return answer(remember('alone', group)) end
  -- The last group is over: its members' times go, the filings stay with their purchases.
  dropGroup(KEYS[1])
end
return answer(remember('lead', {
  lead = ARGV[1], step = ARGV[2], due = tonumber(ARGV[5]), start = at, ends = at + window,
  members = 0, closed = false, expires = 0
}))
