--[[
  Which suppression lists hold any of the given members: one round trip for every channel and
  scope a purchase is checked against (read-only).

  Input:
    KEYS[1 + i] a suppression list (set), i from 0

    ARGV[1] the members to look for in each list (JSON array of arrays, in the order of KEYS)

  Output: per list, 1 if it holds any of its members, else 0
]]
local asked = cjson.decode(ARGV[1])
local found = {}
for i, key in ipairs(KEYS) do
  found[i] = 0
  for _, member in ipairs(asked[i]) do
    if redis.call('SISMEMBER', key, member) == 1 then
      found[i] = 1
      break
    end
  end
end
return found
