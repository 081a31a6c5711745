--[[
  Counts a purchase into the customer's history once per event: the first call for an event
  records the count it saw in the event record, a repeated call returns that same count, so
  redelivered or re-published events neither count twice nor see themselves as an earlier purchase.

  Input:
    KEYS[1] event record (hash; field `h` = the count seen)
    KEYS[2] customer history (hash: `n` purchases, `last` latest purchase time)

    ARGV[1] the purchase time (ISO 8601, UTC, so it compares as text)
    ARGV[2] keep the customer's history this long after their latest purchase (ms)
    ARGV[3] keep a new event record this long (ms)

  Output: { earlier purchases, latest earlier purchase time or '', first sighting (0|1) }
]]
local seen = redis.call('HGET', KEYS[1], 'h')
if seen then return { tonumber(seen), redis.call('HGET', KEYS[2], 'last') or '', 0 } end
local count = tonumber(redis.call('HGET', KEYS[2], 'n') or '0')
local last = redis.call('HGET', KEYS[2], 'last') or ''
redis.call('HSET', KEYS[1], 'h', count)
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
redis.call('HINCRBY', KEYS[2], 'n', 1)
if ARGV[1] > last then redis.call('HSET', KEYS[2], 'last', ARGV[1]) end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return { count, last, 1 }
