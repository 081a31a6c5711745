--[[
  Files a purchase's coalescing thank-you with the customer's open group: it leads a new group,
  joins the open one (its own thank-you then waits behind the leader's, see delivery), or stays
  alone. The answer is remembered per purchase, so filing it again (a re-published event) gives
  the same answer even after the group has moved on. An open group is never replaced: its leader's
  thank-you has not gone yet, and it lists the purchases that joined.

  Input:
    KEYS[1]  the customer's thank-you group (hash: lead, step, due, start, until, closed, and
             m:<event id> = purchase time of each purchase that joined)
    KEYS[2]  the customer's filings (hash: event id → "lead", "alone" or "joined\n<lead>\n<step>\n<due>")

    ARGV[1]  event id
    ARGV[2]  its thank-you step id
    ARGV[3]  purchase time (epoch ms)
    ARGV[4]  the coalesce window (ms)
    ARGV[5]  the thank-you's due time (epoch ms): a new group's leader's
    ARGV[6]  keep a new group this long (ms): until its thank-you is surely sent
    ARGV[7]  how many purchases may join one group; later ones stay alone
    ARGV[8]  keep the filings at least this long (ms)

  Output: {"lead"}, {"alone"}, or {"joined", leader event id, leader step id, leader due time}
]]
local function remember(answer)
  redis.call('HSET', KEYS[2], ARGV[1], answer)
  if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[8]) then redis.call('PEXPIRE', KEYS[2], ARGV[8]) end
end
local function answer(filed)
  local lead, step, due = string.match(filed, '^joined\n(.-)\n(.-)\n(.*)$')
  if lead then return {'joined', lead, step, due} end
  return {filed}
end

local filed = redis.call('HGET', KEYS[2], ARGV[1])
if filed then return answer(filed) end

local at = tonumber(ARGV[3])
local window = tonumber(ARGV[4])
local group = redis.call('HMGET', KEYS[1], 'lead', 'step', 'due', 'start', 'until', 'closed')
local lead, step, due, start, ends, closed =
  group[1], group[2], group[3], tonumber(group[4]), tonumber(group[5]), group[6]
if lead then
  if at < ends and at > start - window then
    -- Within the window, but its thank-you has gone, or it lists enough orders: on its own.
    -- An open group has 5 fields and one per purchase that joined.
    if closed or redis.call('HLEN', KEYS[1]) - 5 >= tonumber(ARGV[7]) then
      remember('alone')
      return {'alone'}
    end
    redis.call('HSET', KEYS[1], 'm:' .. ARGV[1], ARGV[3])
    local joined = 'joined\n' .. lead .. '\n' .. step .. '\n' .. due
    remember(joined)
    return answer(joined)
  end
  -- An older purchase arriving late, or a later one while the group's thank-you has not gone.
  if at <= start - window or not closed then
    remember('alone')
    return {'alone'}
  end
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'lead', ARGV[1], 'step', ARGV[2], 'due', ARGV[5], 'start', ARGV[3],
  'until', at + window)
redis.call('PEXPIRE', KEYS[1], ARGV[6])
remember('lead')
return {'lead'}
