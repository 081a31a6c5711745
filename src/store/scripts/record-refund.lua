--[[
  Records one refund once per refund event id (a redelivered refund changes nothing).

  Input:
    KEYS[1] order (hash: `e:<eventId>` links, `r:<refundId>` refunds)
    ARGV[1] the refund event id
    ARGV[2] the amount, "<minor units> <currency>", or "full"
    ARGV[3] keep the order this long (ms)

  Output: the order's fields and values afterwards, flat
]]
redis.call('HSETNX', KEYS[1], 'r:' .. ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return redis.call('HGETALL', KEYS[1])
