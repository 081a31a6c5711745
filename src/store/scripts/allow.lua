--[[
  Takes members off a channel's suppression lists (everything, and offers only), as a texted
  START does; but leaves a list alone that holds one of the given marks (`d:<keyed address hash>`:
  the number declined the channel other than by text). In one step with suppress.lua's marks, so
  a decline handled at the same moment is either seen here or made after.

  Input:
    KEYS[1]   the channel's suppression set (everything)
    KEYS[2]   the channel's suppression set of offers only

    ARGV[1]   marks that keep a list as it is, separated by spaces; '' for none
    ARGV[2..] members to remove

  Output: how many lists were kept because of a mark
]]
local kept = 0
for _, list in ipairs(KEYS) do
  local marked = false
  for mark in string.gmatch(ARGV[1], '%S+') do
    if redis.call('SISMEMBER', list, mark) == 1 then marked = true end
  end
  if marked then
    kept = kept + 1
  else
    for i = 2, #ARGV do redis.call('SREM', list, ARGV[i]) end
  end
end
return kept
