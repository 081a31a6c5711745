--[[
  Closes the customer's thank-you group as its leader's thank-you goes out: later purchases no
  longer join it. The purchases it lists are kept in the leader's record (`tj`, with the closing
  step's id), so that closing again (a retried send) gives the same ones even after the group has
  ended or a new one has started, and so that a joined purchase is skipped as thanked for only
  when it was listed (decide-joined-thank-you.lua). A leader (filed `lead` at its intake) whose
  group has ended before its thank-you went lists none, and says so in its record; so does one
  told to list none (no rule coalesces when it goes), which closes its group all the same.

  Input:
    KEYS[1]  the customer's history (hash; the group's fields, lib/thank-you-group.lua)
    KEYS[2]  the customer's thank-you group as key layout 4 and before kept it (moved first)
    KEYS[3]  the sending purchase's event record (hash; `ty` its filing, `tj` what it listed)

    ARGV[1]  the sending purchase's event id
    ARGV[2]  now (epoch ms): a group that has ended (lib/thank-you-group.lua) is not closed
    ARGV[3]  the sending thank-you's step id
    ARGV[4]  '1': list none (the purchases that joined get their own), else ''

  Output: the event ids of the purchases that joined (oldest first), or an empty list when this
  purchase does not lead the group
]]
--!include lib/base36.lua
--!include lib/thank-you-group.lua
local kept = redis.call('HGET', KEYS[3], 'tj')
if kept then
  local ids = {}
  for id in string.gmatch(string.match(kept, '^[^\n]*\n(.*)$') or '', '%S+') do
    ids[#ids + 1] = id
  end
  return ids
end
local group = readGroup(KEYS[1], KEYS[2], tonumber(ARGV[2]))
local leads = group and group.lead == ARGV[1]
local ids = {}
if leads then
  if not group.closed then
    group.closed = true
    writeGroup(KEYS[1], group)
  end
  if ARGV[4] ~= '1' then
    local members = {}
    local all = redis.call('HGETALL', KEYS[1])
    for i = 1, #all, 2 do
      local id = string.match(all[i], '^tm:(.*)$')
      if id then members[#members + 1] = { tonumber(all[i + 1]), id } end
    end
    table.sort(members, function(a, b) return a[1] < b[1] end)
    for i, member in ipairs(members) do ids[i] = member[2] end
  end
end
-- Only a record that exists (it has its expiry), and only a leader's: a purchase that joined or
-- stood alone lists nothing, and its record says nothing of it.
if (leads or redis.call('HGET', KEYS[3], 'ty') == 'lead')
    and redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('HSET', KEYS[3], 'tj', ARGV[3] .. '\n' .. table.concat(ids, ' '))
end
return ids
