--[[
  A customer's thank-you group (shared; included, not called) lives in their history hash: `tl`
  the leading event id, `ts` its thank-you step id, `tg` the rest in one short field (base 36,
  space-separated: when the leader's thank-you is due, the window's start and end, how many
  purchases joined, 1 once closed (the leader's thank-you went) else 0, and when the group ends),
  and `tm:<event id>` each joined purchase's time. Key layout 4 and before kept a group in a key of
  its own (`ty`: `lead`, `step`, `due`, `start`, `until`, `n`, `closed`, `m:<event id>`), whose
  expiry the group's end now stands for: the history lives two years, and a group whose leader's
  thank-you never went (refunded, skipped) must still end.
  Needs lib/base36.lua.

  readGroup(historyKey, legacyKey, now)
    the group as a table { lead, step, due, start, ends, members, closed, expires }, or false:
    a group kept the older way is moved into the history first (the older key keeps only its
    filings `f:<event id>`, read until it expires), and one that has ended is dropped.
  writeGroup(historyKey, group)
  dropGroup(historyKey)
  keepGroup(historyKey, group, keepMs, now)
    the group lasts at least `keepMs` from `now` (and the history with it); writes it.
]]
local function groupNumber(n)
  return toBase36(math.max(0, math.floor(n)))
end

local function writeGroup(historyKey, group)
  redis.call('HSET', historyKey, 'tl', group.lead, 'ts', group.step, 'tg', table.concat({
    groupNumber(group.due), groupNumber(group.start), groupNumber(group.ends),
    groupNumber(group.members), group.closed and '1' or '0', groupNumber(group.expires)
  }, ' '))
end

local function dropGroup(historyKey)
  local gone = { 'tl', 'ts', 'tg' }
  for _, field in ipairs(redis.call('HKEYS', historyKey)) do
    if string.sub(field, 1, 3) == 'tm:' then gone[#gone + 1] = field end
  end
  redis.call('HDEL', historyKey, unpack(gone))
end

local function adoptGroup(historyKey, legacyKey)
  if redis.call('EXISTS', legacyKey) == 0 or redis.call('HEXISTS', historyKey, 'tl') == 1 then
    return
  end
  local old = redis.call('HGETALL', legacyKey)
  local fields, members, gone = {}, {}, {}
  for i = 1, #old, 2 do
    local name = old[i]
    if string.sub(name, 1, 2) ~= 'f:' then
      gone[#gone + 1] = name
      if string.sub(name, 1, 2) == 'm:' then
        members[#members + 1] = 't' .. name
        members[#members + 1] = old[i + 1]
      else
        fields[name] = old[i + 1]
      end
    end
  end
  if not fields.lead then return end
  local expiresAt = redis.call('PEXPIRETIME', legacyKey)
  writeGroup(historyKey, {
    lead = fields.lead, step = fields.step or '', due = tonumber(fields.due or '0'),
    start = tonumber(fields.start or '0'), ends = tonumber(fields['until'] or '0'),
    members = tonumber(fields.n or '0'), closed = fields.closed ~= nil,
    expires = expiresAt > 0 and expiresAt or 0
  })
  if #members > 0 then redis.call('HSET', historyKey, unpack(members)) end
  redis.call('HDEL', legacyKey, unpack(gone))
  -- A history that had expired comes back for as long as the group would have lasted.
  if redis.call('PTTL', historyKey) < 0 and expiresAt > 0 then
    redis.call('PEXPIREAT', historyKey, expiresAt)
  end
end

local function readGroup(historyKey, legacyKey, now)
  adoptGroup(historyKey, legacyKey)
  local stored = redis.call('HMGET', historyKey, 'tl', 'ts', 'tg')
  if not stored[1] then return false end
  local due, start, ends, members, closed, expires =
    string.match(stored[3] or '', '^(%w+) (%w+) (%w+) (%w+) ([01]) (%w+)$')
  -- Unreadable (nothing writes it so): no group rather than one that never ends.
  if not due then
    dropGroup(historyKey)
    return false
  end
  local group = {
    lead = stored[1], step = stored[2] or '', due = fromBase36(due or '0'),
    start = fromBase36(start or '0'), ends = fromBase36(ends or '0'),
    members = fromBase36(members or '0'), closed = closed == '1',
    expires = fromBase36(expires or '0')
  }
  -- A group moved without an expiry (its older key had none) lasts until it is next kept.
  if group.expires > 0 and group.expires <= now then
    dropGroup(historyKey)
    return false
  end
  return group
end

local function keepGroup(historyKey, group, keepMs, now)
  if group.expires < now + keepMs then group.expires = now + keepMs end
  writeGroup(historyKey, group)
  if redis.call('PTTL', historyKey) < keepMs then redis.call('PEXPIRE', historyKey, keepMs) end
end
