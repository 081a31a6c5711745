--[[
  Files a purchase's coalescing thank-you with the customer's open group: it leads a new group,
  joins the open one (its own thank-you then waits behind the leader's, see delivery), or stays
  alone. The answer is remembered per purchase (f:<event id>), so filing it again (a re-published
  event) gives the same answer even after the group has moved on. An open group is never
  replaced: its leader's thank-you has not gone yet, and it lists the purchases that joined.

  Input:
    KEYS[1]  the customer's thank-you group (hash: lead, step, due, start, until, n (members),
             closed; m:<event id> = purchase time of each purchase that joined; f:<event id> =
             how each purchase was filed: "alone" or "joined\n<lead>\n<step>\n<due>")

    ARGV[1]  event id
    ARGV[2]  its thank-you step id
    ARGV[3]  purchase time (epoch ms)
    ARGV[4]  the coalesce window (ms)
    ARGV[5]  the thank-you's due time (epoch ms): a new group's leader's
    ARGV[6]  keep the group (and the filings) at least this long (ms)
    ARGV[7]  how many purchases may join one group; later ones stay alone

  Output: {"lead"}, {"alone"}, or {"joined", leader event id, leader step id, leader due time}
]]
local function keep()
  if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[6]) then redis.call('PEXPIRE', KEYS[1], ARGV[6]) end
end
local function remember(answer)
  redis.call('HSET', KEYS[1], 'f:' .. ARGV[1], answer)
  keep()
end
local function answer(filed)
  local lead, step, due = string.match(filed, '^joined\n(.-)\n(.-)\n(.*)$')
  if lead then return {'joined', lead, step, due} end
  return {filed}
end

local group = redis.call('HMGET', KEYS[1], 'lead', 'step', 'due', 'start', 'until', 'n', 'closed',
  'f:' .. ARGV[1])
local lead, step, due, start, ends, members, closed, filed =
  group[1], group[2], group[3], tonumber(group[4]), tonumber(group[5]), tonumber(group[6]),
  group[7], group[8]
if filed then return answer(filed) end
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
    redis.call('HSET', KEYS[1], 'm:' .. ARGV[1], ARGV[3], 'n', members + 1)
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
  -- The last group is over: its members' times go, the filings stay.
  local gone = {'lead', 'step', 'due', 'start', 'until', 'n', 'closed'}
  for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
    if string.sub(field, 1, 2) == 'm:' then gone[#gone + 1] = field end
  end
  redis.call('HDEL', KEYS[1], unpack(gone))
end
redis.call('HSET', KEYS[1], 'lead', ARGV[1], 'step', ARGV[2], 'due', ARGV[5], 'start', ARGV[3],
  'until', at + window, 'n', 0)
keep()
return {'lead'}
