--[[
  Links a purchase event to its order and returns the order, refunds included, in one step: a
  refund recorded before is in the answer, one recorded after will find the link.

  Input:
    KEYS[1] order (hash: `e:<eventId>` links, valued `s<shard>` with the event's shard, or `1`
            as linked before shards: shard 0; `r:<refundId>` refunds)
    ARGV[1] the purchase event id
    ARGV[2] keep the order at least this long (ms)
    ARGV[3] the link's value: `s<shard>`, the shard the event lives in

  Output: the order's fields and values, flat
]]
redis.call('HSET', KEYS[1], 'e:' .. ARGV[1], ARGV[3])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return redis.call('HGETALL', KEYS[1])
