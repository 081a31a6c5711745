--[[
  A customer's thank-you group (shared; included, not called) lives in their history hash, in
  fields `tl` (the leading event id), `ts` (its thank-you step id), `td` (when that is due),
  `tb` (the window's start), `tu` (its end), `tn` (how many joined), `tc` (closed once the
  leader's thank-you went), `tx` (when the group ends, epoch ms) and `tm:<event id>` (each joined
  purchase's time). Key layout 4 and before kept it in a key of its own (`ty`, with `lead`,
  `step`, … and `m:<event id>`), whose expiry `tx` now stands for: the history lives two years,
  and a group whose leader's thank-you never went (refunded, skipped) must still end.

  adoptGroup(historyKey, legacyKey)
    moves a group of the key of its own into the history, unless the history has one already;
    the older key keeps its filings (`f:<event id>`, read until it expires) and nothing else.
  dropGroup(historyKey)
    removes the group's fields.
  currentGroup(historyKey, legacyKey, now)
    adopts an older group, drops the group if it ended before `now`; the leading event id or false.
  keepGroup(historyKey, keepMs, now)
    makes the group last at least `keepMs` from `now` (and the history with it).
]]
local LEGACY_GROUP_FIELDS = {
  lead = 'tl', step = 'ts', due = 'td', start = 'tb', ['until'] = 'tu', n = 'tn', closed = 'tc'
}

local function adoptGroup(historyKey, legacyKey)
  if redis.call('EXISTS', legacyKey) == 0 or redis.call('HEXISTS', historyKey, 'tl') == 1 then
    return
  end
  local old = redis.call('HGETALL', legacyKey)
  local moved, gone = {}, {}
  for i = 1, #old, 2 do
    local name = LEGACY_GROUP_FIELDS[old[i]]
    if not name and string.sub(old[i], 1, 2) == 'm:' then name = 't' .. old[i] end
    if name then
      moved[#moved + 1] = name
      moved[#moved + 1] = old[i + 1]
      gone[#gone + 1] = old[i]
    end
  end
  if #moved == 0 then return end
  local expiresAt = redis.call('PEXPIRETIME', legacyKey)
  if expiresAt > 0 then
    moved[#moved + 1] = 'tx'
    moved[#moved + 1] = expiresAt
  end
  redis.call('HSET', historyKey, unpack(moved))
  redis.call('HDEL', legacyKey, unpack(gone))
  -- A history that had expired comes back for as long as the group would have lasted.
  if redis.call('PTTL', historyKey) < 0 and expiresAt > 0 then
    redis.call('PEXPIREAT', historyKey, expiresAt)
  end
end

local function dropGroup(historyKey)
  local gone = { 'tl', 'ts', 'td', 'tb', 'tu', 'tn', 'tc', 'tx' }
  for _, field in ipairs(redis.call('HKEYS', historyKey)) do
    if string.sub(field, 1, 3) == 'tm:' then gone[#gone + 1] = field end
  end
  redis.call('HDEL', historyKey, unpack(gone))
end

local function currentGroup(historyKey, legacyKey, now)
  adoptGroup(historyKey, legacyKey)
  local group = redis.call('HMGET', historyKey, 'tl', 'tx')
  if not group[1] then return false end
  if group[2] and tonumber(group[2]) <= now then
    dropGroup(historyKey)
    return false
  end
  return group[1]
end

local function keepGroup(historyKey, keepMs, now)
  local ends = now + keepMs
  if tonumber(redis.call('HGET', historyKey, 'tx') or '0') < ends then
    redis.call('HSET', historyKey, 'tx', ends)
  end
  if redis.call('PTTL', historyKey) < keepMs then redis.call('PEXPIRE', historyKey, keepMs) end
end
