--[[
  Adds a hash of counts into another and deletes it, at once: when the shard count changes
  (`followups reshard`), the ledger hours and pending counts of a shard that no longer exists go to
  shard 0's (readers add up every shard's, so the totals stay). The sum keeps the later expiry.

  Input:
    KEYS[1] the counts to add (hash of integers), deleted
    KEYS[2] the counts they are added to (hash of integers, in the same slot)

  Output: how many fields were added
]]
local fields = redis.call('HGETALL', KEYS[1])
if #fields == 0 then return 0 end
local from = redis.call('PEXPIRETIME', KEYS[1])
local to = redis.call('PEXPIRETIME', KEYS[2])
for i = 1, #fields, 2 do redis.call('HINCRBY', KEYS[2], fields[i], fields[i + 1]) end
-- -2: KEYS[2] was new (it has no expiry yet); -1: it never expires, and neither does the sum.
if from > 0 and (to == -2 or (to > 0 and from > to)) then
  redis.call('PEXPIREAT', KEYS[2], from)
end
redis.call('DEL', KEYS[1])
return #fields / 2
