--[[
  A customer's thank-you group (shared; included, not called) lives in their history hash, in
  fields `tl` (the leading event id), `ts` (its thank-you step id), `td` (when that is due),
  `tb` (the window's start), `tu` (its end), `tn` (how many joined), `tc` (closed once the
  leader's thank-you went) and `tm:<event id>` (each joined purchase's time). Key layout 4 and
  before kept it in a key of its own (`ty`, with `lead`, `step`, … and `m:<event id>`).

  adoptGroup(historyKey, legacyKey)
    moves a group of the key of its own into the history, unless the history has one already;
    the older key keeps its filings (`f:<event id>`, read until it expires) and nothing else.
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
  redis.call('HSET', historyKey, unpack(moved))
  redis.call('HDEL', legacyKey, unpack(gone))
  -- A history that had expired comes back for as long as the group would have lasted.
  if redis.call('PTTL', historyKey) < 0 and expiresAt > 0 then
    redis.call('PEXPIREAT', historyKey, expiresAt)
  end
end
