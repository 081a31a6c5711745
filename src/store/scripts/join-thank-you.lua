--[[
  Files a purchase's coalescing thank-you with the customer's open group: it leads a new group,
  joins the open one (its own thank-you then waits behind the leader's, see delivery), or stays
  alone. The answer is remembered in the purchase's record (`ty`), so filing it again (a
  re-published event) gives the same answer even after the group has moved on. An open group is
  never replaced: its leader's thank-you has not gone yet, and it lists the purchases that joined.

  Input:
    KEYS[1]  the customer's history (hash; the group's fields, lib/thank-you-group.lua)
    KEYS[2]  the purchase's event record (hash; `ty` = how it was filed: "alone" or
             "joined\n<lead>\n<step>\n<due>")
    KEYS[3]  the customer's thank-you group as key layout 4 and before kept it (its group is moved
             into KEYS[1]; its filings `f:<event id>` are read until it expires)

    ARGV[1]  event id
    ARGV[2]  its thank-you step id
    ARGV[3]  purchase time (epoch ms)
    ARGV[4]  the coalesce window (ms)
    ARGV[5]  the thank-you's due time (epoch ms): a new group's leader's
    ARGV[6]  keep the group (and the filing) at least this long (ms)
    ARGV[7]  how many purchases may join one group; later ones stay alone
    ARGV[8]  now (epoch ms): a group ends ARGV[6] after the last purchase filed with it

  Output: {"lead"}, {"alone"}, or {"joined", leader event id, leader step id, leader due time}
]]
--!include lib/thank-you-group.lua
local now = tonumber(ARGV[8])
local function remember(answer)
  redis.call('HSET', KEYS[2], 'ty', answer)
  -- The record exists (intake counted the purchase first); one that does not gets an expiry.
  if redis.call('PTTL', KEYS[2]) < 0 then redis.call('PEXPIRE', KEYS[2], ARGV[6]) end
  if redis.call('HEXISTS', KEYS[1], 'tl') == 1 then keepGroup(KEYS[1], tonumber(ARGV[6]), now) end
end
local function answer(filed)
  local lead, step, due = string.match(filed, '^joined\n(.-)\n(.-)\n(.*)$')
  if lead then return {'joined', lead, step, due} end
  return {filed}
end

currentGroup(KEYS[1], KEYS[3], now)
local filed = redis.call('HGET', KEYS[2], 'ty') or redis.call('HGET', KEYS[3], 'f:' .. ARGV[1])
if filed then return answer(filed) end
local group = redis.call('HMGET', KEYS[1], 'tl', 'ts', 'td', 'tb', 'tu', 'tn', 'tc')
local lead, step, due, start, ends, members, closed =
  group[1], group[2], group[3], tonumber(group[4]), tonumber(group[5]), tonumber(group[6]),
  group[7]
-- The leader itself: leaders are not filed (they never join a later group, see below).
if lead == ARGV[1] then return {'lead'} end

local at = tonumber(ARGV[3])
local window = tonumber(ARGV[4])
if lead then
  if at < ends and at > start - window then
    -- Within the window, but its thank-you has gone, or it lists enough orders: on its own.
    if closed or members >= tonumber(ARGV[7]) then
      remember('alone')
      return {'alone'}
    end
    redis.call('HSET', KEYS[1], 'tm:' .. ARGV[1], ARGV[3], 'tn', members + 1)
    local joined = 'joined\n' .. lead .. '\n' .. step .. '\n' .. due
    remember(joined)
    return answer(joined)
  end
  -- An older purchase arriving late, or a later one while the group's thank-you has not gone.
  -- (A new group starts after its predecessor's window, so its leader is older than any later
  -- group's window: it is never listed twice.)
  if at <= start - window or not closed then
    remember('alone')
    return {'alone'}
  end
  -- The last group is over: its members' times go, the filings stay with their purchases.
  dropGroup(KEYS[1])
end
redis.call('HSET', KEYS[1], 'tl', ARGV[1], 'ts', ARGV[2], 'td', ARGV[5], 'tb', ARGV[3],
  'tu', at + window, 'tn', 0)
keepGroup(KEYS[1], tonumber(ARGV[6]), now)
return {'lead'}
