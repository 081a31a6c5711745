--[[
  Puts a customer and/or address on a channel's suppression list and, when one of them was not
  on it yet, counts the opt-out in the ledger: in one step, so an opt-out is never recorded
  without being counted or counted without being recorded. Marks that qualify the opt-out
  (`d:<keyed address hash>`: a number that declined calls other than by text, which a texted
  START leaves standing, see allow.lua) are added in the same step, never counted: a START
  handled at that moment sees the opt-out with its marks, or neither.

  Input:
    KEYS[1]   the channel's suppression set
    KEYS[2]   ledger hour of now

    ARGV[1]   how long a ledger hour is kept (ms)
    ARGV[2]   ledger fields to count (JSON array); '' to count nothing
    ARGV[3]   marks to add, separated by spaces; '' for none
    ARGV[4..] members to add (`k:<keyed customer hash>`, `h:<keyed address hash>`)

  Output: how many members were new
]]
local added = 0
for i = 4, #ARGV do added = added + redis.call('SADD', KEYS[1], ARGV[i]) end
for mark in string.gmatch(ARGV[3], '%S+') do redis.call('SADD', KEYS[1], mark) end
if added > 0 and ARGV[2] ~= '' then
  for _, field in ipairs(cjson.decode(ARGV[2])) do redis.call('HINCRBY', KEYS[2], field, 1) end
  redis.call('PEXPIRE', KEYS[2], ARGV[1])
end
return added
