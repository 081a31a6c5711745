--[[
  Files a purchase's coalescing thank-you with the customer's open group: it leads a new group,
  joins the open one (its thank-you is then the leader's), or stays alone. Repeating a call for
  the same purchase gives the same answer while the group lives.

  Input:
    KEYS[1]  the customer's thank-you group (hash: lead, step, start, until, closed, and
             m:<event id> = each joined purchase, encoded: the leader's thank-you renders it)

    ARGV[1]  event id
    ARGV[2]  its thank-you step id
    ARGV[3]  purchase time (epoch ms)
    ARGV[4]  the coalesce window (ms)
    ARGV[5]  keep a new group this long (ms): until its thank-you is surely sent
    ARGV[6]  the purchase, encoded (purchase-codec), kept while it waits to be thanked for
    ARGV[7]  how many purchases may join one group; later ones stay alone

  Output: {"lead"}, {"alone"}, or {"joined", leader event id, leader step id}
]]
local at = tonumber(ARGV[3])
local window = tonumber(ARGV[4])
local group = redis.call('HMGET', KEYS[1], 'lead', 'step', 'start', 'until', 'closed')
local lead, step, start, ends, closed = group[1], group[2], tonumber(group[3]), tonumber(group[4]), group[5]
if lead == ARGV[1] then return {'lead'} end
if lead and redis.call('HEXISTS', KEYS[1], 'm:' .. ARGV[1]) == 1 then return {'joined', lead, step} end
if lead and at < ends and at > start - window then
  -- Within the window but the group's thank-you has gone: this purchase gets its own.
  if closed then return {'alone'} end
  -- A thank-you lists a handful of orders at most: an open group has 4 fields and one per member.
  if redis.call('HLEN', KEYS[1]) - 4 >= tonumber(ARGV[7]) then return {'alone'} end
  redis.call('HSET', KEYS[1], 'm:' .. ARGV[1], ARGV[6])
  return {'joined', lead, step}
end
-- An older purchase arriving late never replaces a newer group.
if lead and at <= start - window then return {'alone'} end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'lead', ARGV[1], 'step', ARGV[2], 'start', ARGV[3], 'until', at + window)
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return {'lead'}
