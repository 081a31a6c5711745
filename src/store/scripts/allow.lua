--[[
  Takes members off a channel's suppression lists (everything, and offers only), as a texted
  START does; but leaves a list alone that holds one of the given marks (`d:<keyed address hash>`:
  the number declined the channel other than by text). In one step with suppress.lua's marks, so
  a decline handled at the same moment is either seen here or made after. With 'keep-offers', the
  list of offers only is left as it is (a START sent before an opt-out of offers, handled after it).

  Input:
    KEYS[1]   the channel's suppression set (everything)
    KEYS[2]   the channel's suppression set of offers only

    ARGV[1]   marks that keep a list as it is, separated by spaces; '' for none
    ARGV[2]   'keep-offers' to leave KEYS[2] as it is; '' to take the members off it too
    ARGV[3..] members to remove

  Output: how many lists were kept because of a mark
]]
local kept = 0
for index, list in ipairs(KEYS) do
  local marked = false
  for mark in string.gmatch(ARGV[1], '%S+') do
    if redis.call('SISMEMBER', list, mark) == 1 then marked = true end
  end
  if marked then
    kept = kept + 1
  elseif index == 1 or ARGV[2] ~= 'keep-offers' then
    for i = 3, #ARGV do redis.call('SREM', list, ARGV[i]) end
  end
end
return kept
