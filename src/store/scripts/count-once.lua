--[[
  Counts an outcome reported by a provider's webhook once per delivery: the receipt (the
  provider's message id) is remembered in the same step as the count, so a retried webhook whose
  first attempt failed half-way counts it exactly once, and a replayed one not again.

  Input:
    KEYS[1]   the webhook receipt
    KEYS[2]   ledger hour of now

    ARGV[1]   how long the receipt is remembered (s)
    ARGV[2]   how long a ledger hour is kept (ms)
    ARGV[3..] ledger fields to count by one, or `<field>\n<amount>` to add an amount (revenue)

  The receipt is written last, so a script that fails on the way (a ledger hour of the wrong type,
  which fails at its first field) is counted by its retry; a script's writes before an error stay.

  Output: 1 when counted, 0 when the receipt was seen before
]]
--!include lib/count-fields.lua
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
countFields(KEYS[2], ARGV[2], 3)
redis.call('SET', KEYS[1], '1', 'EX', ARGV[1])
return 1
