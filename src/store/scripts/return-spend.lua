--[[
  Takes a message's charge back: it was not sent after all. Nothing happens for a message that
  was not charged, or whose charge was already taken back.

  Input:
    KEYS[1]  the channel's spend of the month
    KEYS[2]  what each message of the month was charged (hash: charge id → micros)

    ARGV[1]  charge id

  Output: the micros taken back (0 when none)
]]
local charged = redis.call('HGET', KEYS[2], ARGV[1])
if not charged then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('DECRBY', KEYS[1], charged)
return tonumber(charged)
