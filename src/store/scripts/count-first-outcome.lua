--[[
  Counts a message's final outcome reported by a provider's webhook, once, unless the contradicting
  outcome was counted first: Twilio posts each status of a message on its own, in no set order, so
  an SMS may be reported delivered and then undelivered (or the reverse), and is counted once, as
  the first said. The receipt is remembered in the same step as the count, as in count-once.lua;
  both outcomes' receipts are read in that step, so two contradicting reports handled at the same
  moment never both count.

  Input:
    KEYS[1]   this outcome's receipt
    KEYS[2]   the contradicting outcome's receipt
    KEYS[3]   ledger hour of now

    ARGV[1]   how long the receipt is remembered (s)
    ARGV[2]   how long a ledger hour is kept (ms)
    ARGV[3..] ledger fields to count by one

  Output: 1 when counted, 0 when this outcome's receipt was seen before, -1 when the
  contradicting outcome was counted (nothing counted, nothing written)
]]
--!include lib/count-fields.lua
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
countFields(KEYS[3], ARGV[2], 3)
redis.call('SET', KEYS[1], '1', 'EX', ARGV[1])
return 1
