--[[
  Counts what happens once per purchase event (its skips at planning, the order it brought back)
  into its shard's ledger hour, and marks it counted with a field of the event's record: the mark
  lives exactly as long as the record, which is as long as the event is recognised when it comes
  again, and costs no key of its own. The mark is written last, so a script that fails on the way
  (a ledger hour of the wrong type, which fails at its first field) is counted by its retry; a
  script's writes before an error stay.

  Input:
    KEYS[1] the event record (hash)
    KEYS[2] the shard's ledger hour of now

    ARGV[1] the record field that marks it counted (`cs` skips at planning, `cb` brought back)
    ARGV[2] how long a ledger hour is kept (ms)
    ARGV[3..] ledger fields to count by one, or `<field>\n<amount>` to add an amount (revenue)

  Output: 1 when counted, 0 when counted before, -1 when the record is gone (nothing counted)
]]
--!include lib/count-fields.lua
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
countFields(KEYS[2], ARGV[2], 3)
redis.call('HSET', KEYS[1], ARGV[1], '1')
return 1
