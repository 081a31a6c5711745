--[[
  Notes on an order that a purchase of it arrived after the order was refunded in full, and was
  dropped (nothing planned, nothing of it kept): operators are then told it came, rather than
  that it is still awaited. Written beside the refunds, with their expiry; nothing is written
  once they are gone.

  Input:
    KEYS[1] order (hash: `r:<refundId>` refunds; `d:<eventId>` purchases dropped)

    ARGV[1] the purchase's event id
    ARGV[2] when it arrived (epoch ms)

  Output: 1 noted, 0 the order's refunds are gone
]]
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'd:' .. ARGV[1], ARGV[2])
return 1
