--[[
  Files a purchase that joined a thank-you group as standing alone after all: its leader's
  thank-you goes out without it (its stored purchase cannot be read), so its own thank-you must
  not be skipped as thanked for. Only a purchase filed as joined to that leader changes; nothing
  is written for a record that is gone.

  Input:
    KEYS[1]  the purchase's event record (hash; `ty` = how it was filed, see join-thank-you.lua)
    KEYS[2]  the customer's thank-you group as key layout 4 and before kept it (its filing
             `f:<event id>` is read when the record has none)

    ARGV[1]  the purchase's event id
    ARGV[2]  the leader's event id

  Output: 1 when it is now filed alone, else 0
]]
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local filed = redis.call('HGET', KEYS[1], 'ty') or redis.call('HGET', KEYS[2], 'f:' .. ARGV[1])
if not filed then return 0 end
local prefix = 'joined\n' .. ARGV[2] .. '\n'
if string.sub(filed, 1, #prefix) ~= prefix then return 0 end
redis.call('HSET', KEYS[1], 'ty', 'alone')
return 1
