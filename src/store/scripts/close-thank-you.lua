--[[
  Closes the customer's thank-you group as its leader's thank-you goes out: later purchases no
  longer join it. Closing again (a retried send) gives the same members.

  Input:
    KEYS[1]  the customer's history (hash; the group's fields, lib/thank-you-group.lua)
    KEYS[2]  the customer's thank-you group as key layout 4 and before kept it (moved first)

    ARGV[1]  the sending purchase's event id
    ARGV[2]  now (epoch ms): a group that has ended (lib/thank-you-group.lua) is not closed

  Output: the event ids of the purchases that joined (oldest first), or an empty list when this
  purchase does not lead the group
]]
--!include lib/base36.lua
--!include lib/thank-you-group.lua
local group = readGroup(KEYS[1], KEYS[2], tonumber(ARGV[2]))
if not group or group.lead ~= ARGV[1] then return {} end
if not group.closed then
  group.closed = true
  writeGroup(KEYS[1], group)
end
local members = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local id = string.match(all[i], '^tm:(.*)$')
  if id then members[#members + 1] = { tonumber(all[i + 1]), id } end
end
table.sort(members, function(a, b) return a[1] < b[1] end)
local ids = {}
for i, member in ipairs(members) do ids[i] = member[2] end
return ids
