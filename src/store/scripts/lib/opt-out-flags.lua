--[[
  Which suppression lists hold any of their asked members (shared; included, not called).

  optOutFlags(lists, asked)  lists: keys of sets; asked: per list, an array of members
                             → per list, 1 if it holds any of them, else 0
]]
local function optOutFlags(lists, asked)
  local found = {}
  for i, key in ipairs(lists) do
    found[i] = 0
    local members = asked[i]
    if members and #members > 0 then
      for _, flag in ipairs(redis.call('SMISMEMBER', key, unpack(members))) do
        if flag == 1 then
          found[i] = 1
          break
        end
      end
    end
  end
  return found
end
